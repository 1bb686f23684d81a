// Package localpath holds the one rule ckpt applies to a file name that a
// model file gives for another file beside it: an ONNX tensor's external
// data, the companion file of an array in a joblib pickle. A loader joins
// such a name to the model's directory and opens it, so a name that leads
// out of the directory makes the loader read a file of the attacker's
// choosing.
package localpath

import (
	"path/filepath"
	"strings"
)

// Check reports whether name, a file name written in a model file, stays
// inside dir, the model's directory. It must be a non-empty relative path
// without "..", NUL or a volume name, read with '/' or '\' as separator
// (as Windows reads it: a name that leaves the directory on some reader's
// system is refused everywhere); when dir is not "", the file it names
// must not lead outside dir through a symbolic link, in which case target
// is where the link leads. A file that does not exist is not its concern
// (opening it fails).
func Check(dir, name string) (target string, ok bool) {
	native := filepath.FromSlash(name)
	portable := filepath.FromSlash(strings.ReplaceAll(name, `\`, "/"))
	if name == "" || strings.ContainsRune(name, 0) || !filepath.IsLocal(native) || !filepath.IsLocal(portable) ||
		len(name) >= 2 && name[1] == ':' {
		return "", false
	}
	if dir == "" {
		return "", true
	}
	real, err := filepath.EvalSymlinks(filepath.Join(dir, native))
	if err != nil {
		return "", true
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", true
	}
	if rel, err := filepath.Rel(realDir, real); err != nil || !filepath.IsLocal(rel) {
		return real, false
	}
	return "", true
}
