// Package diff implements `ckpt diff`: compare two checkpoints of any
// formats tensor by tensor with formats.Diff, print what differs (text or
// JSON), and exit 1 (cmdutil.ErrDifference) when they are not equal.
//
// Equal means the same names, dtypes, shapes and bytes; with --atol, values
// within the tolerance, where dtypes may differ if shapes agree.
package diff
