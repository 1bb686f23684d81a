package cmdutil

import (
	"errors"
	"fmt"
	"io"
)

// Exit codes shared by every command.
const (
	ExitOK         = 0 // success
	ExitDifference = 1 // a check ran and found a difference
	ExitInvalid    = 2 // usage error, or unreadable, invalid or refused input
	ExitInternal   = 3 // a bug in ckpt (a panic), never the input's fault
)

// IOStreams are the streams a command reads and writes. Commands never touch
// os.Stdout directly, so tests run them against buffers.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// ErrIsTerminal tells whether ErrOut is a terminal, where progress
	// bars may be drawn.
	ErrIsTerminal bool
}

// ExitError carries an exit code for an error. An error that is not an
// ExitError exits with ExitInvalid.
type ExitError struct {
	Code int
	Err  error
}

// Error returns the message of the wrapped error.
func (e *ExitError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *ExitError) Unwrap() error { return e.Err }

// ErrDifference reports that a check found a difference; the command has
// already printed its report, so nothing more is printed and ckpt exits 1.
var ErrDifference = &ExitError{Code: ExitDifference, Err: errors.New("difference found")}

// UsageError reports a mistake in the command line.
func UsageError(format string, args ...any) error {
	return &ExitError{Code: ExitInvalid, Err: fmt.Errorf(format, args...)}
}

// ExitCode returns the exit code for err: 0 for nil, the ExitError's code
// where err wraps one, ExitInvalid otherwise.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return ExitInvalid
}
