package cmdutil

import (
	"errors"
	"io/fs"
	"strings"

	"github.com/ckptkit/ckpt/formats"
)

// fileError is an error about one file, printed as "PATH: MESSAGE".
type fileError struct {
	path string
	msg  string
	err  error
}

func (e *fileError) Error() string { return e.path + ": " + e.msg }
func (e *fileError) Unwrap() error { return e.err }

// FileError returns err as an error about the file at path, whose message
// names the file once, first, as the user typed it: "evil.pt: pickle:
// forbidden global \"posix.system\"". The libraries name the file in
// different places ("(file PATH)", "(in PATH)", "PATH: ", "open PATH: "); those mentions
// are folded into the prefix, and a package prefix repeated by wrapping
// ("pickle: pickle: zip: ...") is said once. err stays reachable by
// errors.Is and errors.As; the exit code is ExitInvalid.
func FileError(path string, err error) error {
	if err == nil {
		return nil
	}
	var fe *fileError
	if errors.As(err, &fe) {
		return err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == path {
		return &fileError{path: path, msg: pe.Err.Error(), err: err}
	}
	msg := err.Error()
	msg = strings.ReplaceAll(msg, " (file "+path+")", "")
	msg = strings.ReplaceAll(msg, " (in "+path+")", "")
	msg = dropMention(msg, path+": ")
	return &fileError{path: path, msg: dedupe(msg), err: err}
}

// dropMention removes every occurrence of m in msg that starts a word (at
// the start or after a space), so that "x: " is dropped from "formats: x:
// bad" but not from "index: bad".
func dropMention(msg, m string) string {
	var b strings.Builder
	for {
		i := strings.Index(msg, m)
		if i < 0 {
			b.WriteString(msg)
			return b.String()
		}
		if i == 0 || msg[i-1] == ' ' {
			b.WriteString(msg[:i])
		} else {
			b.WriteString(msg[:i+len(m)])
		}
		msg = msg[i+len(m):]
	}
}

// dedupe removes a package prefix that the message already said: a
// ": "-separated segment that is one short lowercase word ("zip") and
// appeared as a segment before, as wrapping leaves them ("pickle: zip:
// entry \"x\": zip: checksum error").
func dedupe(msg string) string {
	parts := strings.Split(msg, ": ")
	out := parts[:1]
	seen := map[string]bool{parts[0]: true}
	for _, p := range parts[1:] {
		if seen[p] && isWord(p) {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	return strings.Join(out, ": ")
}

// isWord reports whether s is a package name: 1 to 19 lowercase letters.
func isWord(s string) bool {
	if len(s) == 0 || len(s) >= 20 {
		return false
	}
	for _, c := range s {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// Open opens the checkpoint at path with formats.Open, with errors made by
// FileError.
func Open(path string) (*formats.Checkpoint, error) {
	c, err := formats.Open(path)
	if err != nil {
		return nil, FileError(path, err)
	}
	return c, nil
}
