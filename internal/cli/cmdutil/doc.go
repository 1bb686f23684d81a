// Package cmdutil holds what every ckpt command shares: the I/O streams a
// command writes to, the errors that choose the process exit code (0 ok, 1
// difference, 2 usage or invalid input), file errors that name the file
// once, opening a checkpoint with those errors, human-readable units, the
// JSON layout of command output, and the terminal progress bar.
package cmdutil
