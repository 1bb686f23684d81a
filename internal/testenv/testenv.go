// Package testenv finds the reference implementations that interop tests
// compare against: PyTorch (with torchvision and onnx) for /usr/bin/python3,
// and ONNX Runtime for Node.js.
//
// Where a tool is absent, the test is skipped with a message that says how to
// install it (scripts/setup-interop.sh). When CKPT_REQUIRE_INTEROP=1, as in
// CI, an absent tool fails the test instead, so CI never passes by skipping.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// DefaultPython is the interpreter Debian's python3-torch installs for. The
// python3 first on PATH may be another interpreter without torch.
const DefaultPython = "/usr/bin/python3"

var (
	pyOnce sync.Once
	pyPath string
	pyErr  string
)

// Python returns an interpreter that imports torch, torchvision, onnx and
// numpy, or skips t (fails it under CKPT_REQUIRE_INTEROP=1).
func Python(t testing.TB) string {
	t.Helper()
	pyOnce.Do(func() {
		p := os.Getenv("CKPT_PYTHON")
		if p == "" {
			p = DefaultPython
		}
		out, err := exec.Command(p, "-c", "import torch, torchvision, onnx, numpy").CombinedOutput()
		if err != nil {
			pyErr = p + " cannot import torch, torchvision, onnx and numpy (" + lastLine(out, err) + ")"
			return
		}
		pyPath = p
	})
	if pyPath == "" {
		missing(t, pyErr)
	}
	return pyPath
}

// ORT returns the node binary and a NODE_PATH under which
// require("onnxruntime-node") works, or skips t (fails it under
// CKPT_REQUIRE_INTEROP=1).
func ORT(t testing.TB) (node, nodePath string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node is not on PATH")
	}
	dirs := []string{}
	if p := os.Getenv("NODE_PATH"); p != "" {
		dirs = append(dirs, filepath.SplitList(p)...)
	}
	if d := os.Getenv("CKPT_ORT_DIR"); d != "" {
		dirs = append(dirs, filepath.Join(d, "node_modules"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(h, ".cache", "ckpt-interop", "ort", "node_modules"))
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "onnxruntime-node", "package.json")); err == nil {
			return node, d
		}
	}
	missing(t, "onnxruntime-node is not installed")
	return "", ""
}

// Required reports whether CKPT_REQUIRE_INTEROP=1 asks that interop tests
// never skip.
func Required() bool { return os.Getenv("CKPT_REQUIRE_INTEROP") == "1" }

func missing(t testing.TB, why string) {
	t.Helper()
	msg := "interop: " + why + "; run scripts/setup-interop.sh to compare against the reference implementations"
	if Required() {
		t.Fatal(msg + " (CKPT_REQUIRE_INTEROP=1)")
	}
	t.Skip(msg)
}

func lastLine(out []byte, err error) string {
	s := string(out)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			s = s[i+1:]
			break
		}
	}
	if s == "" {
		return err.Error()
	}
	return s
}
