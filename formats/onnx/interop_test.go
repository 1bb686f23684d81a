package onnx

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Interop tests run real clients on files this package writes. They skip
// with a message when the client is missing:
//   - onnx.checker: /usr/bin/python3 with the onnx module (Debian python3-onnx);
//   - ONNX Runtime: node on PATH and the npm package onnxruntime-node found
//     through NODE_PATH, or else in $HOME/.cache/ckpt-interop/ort/node_modules
//     (where /work/shared/tools/setup-interop.sh installs it).

const python = "/usr/bin/python3"

var (
	pythonOnce sync.Once
	pythonErr  error
)

func needPythonOnnx(t *testing.T) {
	t.Helper()
	pythonOnce.Do(func() {
		out, err := exec.Command(python, "-c", "import onnx").CombinedOutput()
		if err != nil {
			pythonErr = &skipError{strings.TrimSpace(string(out)) + " " + err.Error()}
		}
	})
	if pythonErr != nil {
		t.Skipf("skipping: %s cannot import onnx: %v", python, pythonErr)
	}
}

var (
	torchOnce sync.Once
	torchErr  error
)

func needPythonTorch(t *testing.T) {
	t.Helper()
	torchOnce.Do(func() {
		out, err := exec.Command(python, "-c", "import torch, torchvision, onnx").CombinedOutput()
		if err != nil {
			torchErr = &skipError{strings.TrimSpace(string(out)) + " " + err.Error()}
		}
	})
	if torchErr != nil {
		t.Skipf("skipping: %s cannot import torch, torchvision and onnx: %v", python, torchErr)
	}
}

type skipError struct{ msg string }

func (e *skipError) Error() string { return e.msg }

// ortNodePath returns the NODE_PATH under which onnxruntime-node is found.
func ortNodePath(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("skipping: node is not on PATH (ONNX Runtime interop needs node and onnxruntime-node)")
	}
	var candidates []string
	if p := os.Getenv("NODE_PATH"); p != "" {
		candidates = append(candidates, filepath.SplitList(p)...)
	}
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".cache", "ckpt-interop", "ort", "node_modules"))
	}
	for _, c := range candidates {
		if _, err := os.Stat(filepath.Join(c, "onnxruntime-node", "package.json")); err == nil {
			return c
		}
	}
	t.Skipf("skipping: onnxruntime-node not found in %v (run /work/shared/tools/setup-interop.sh)", candidates)
	return ""
}

// checkerScript runs onnx.checker on each model path given and prints, as
// JSON, the SHA-256 of the little-endian bytes onnx.numpy_helper decodes for
// each initializer (bfloat16 narrowed back from the float32 numpy_helper
// returns; STRING and complex, which onnx 1.12 cannot decode, left out).
const checkerScript = `import hashlib, json, sys
import numpy as np
import onnx
from onnx import TensorProto as TP, numpy_helper
out = {}
for path in sys.argv[1:]:
    onnx.checker.check_model(path)
    hashes = {}
    for t in onnx.load(path).graph.initializer:
        if t.data_type in (TP.STRING, TP.COMPLEX64, TP.COMPLEX128):
            continue
        a = numpy_helper.to_array(t)
        if t.data_type == TP.BFLOAT16:
            a = (np.ascontiguousarray(a, dtype="<f4").view("<u4") >> 16).astype("<u2")
        a = np.ascontiguousarray(a)
        hashes[t.name] = hashlib.sha256(a.astype(a.dtype.newbyteorder("<")).tobytes()).hexdigest()
    out[path] = hashes
print(json.dumps(out))
`

// TestInteropChecker writes fixtures (unchanged, with replaced weights,
// with and without external data) and has onnx check them and decode their
// initializers, whose hashes must be the manifest's (or the replacing
// checkpoint's).
func TestInteropChecker(t *testing.T) {
	needPythonOnnx(t)
	manifest := loadManifest(t)
	ckpt, ckptHashes := cnnB(t)
	want := map[string]map[string]string{}
	var paths []string
	dir := t.TempDir()
	for _, name := range []string{"cnn.onnx", "dtypes.onnx", "ext.onnx", "cnn.onnx+replaced", "weights-only"} {
		for _, opts := range []WriteOptions{{}, {ExternalData: "weights.bin"}} {
			src := strings.TrimSuffix(name, "+replaced")
			var m *Model
			var err error
			if name == "weights-only" {
				m, err = FromTensors(ckpt)
			} else {
				m, err = Open(filepath.Join(fixtures, src))
			}
			if err != nil {
				t.Fatal(err)
			}
			hashes := map[string]string{}
			if name == "weights-only" {
				hashes = ckptHashes
			}
			for _, e := range manifest[src] {
				if e.SHA256 != "" && e.DataType != "COMPLEX64" {
					hashes[e.Name] = e.SHA256
				}
			}
			if name != src {
				if _, err := m.ReplaceInitializers(ckpt); err != nil {
					t.Fatal(err)
				}
				for k := range hashes {
					hashes[k] = ckptHashes[k]
				}
			}
			sub := filepath.Join(dir, fmt.Sprintf("%d", len(paths)))
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(sub, "out.onnx")
			if err := WriteFile(out, m, opts); err != nil {
				t.Fatal(err)
			}
			m.Close()
			paths = append(paths, out)
			want[out] = hashes
		}
	}
	out, err := exec.Command(python, append([]string{"-c", checkerScript}, paths...)...).Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("onnx.checker: %v\n%s", err, stderr)
	}
	var got map[string]map[string]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if len(got[p]) != len(want[p]) {
			t.Errorf("%s: onnx decoded %d initializers, want %d", p, len(got[p]), len(want[p]))
		}
		for name, h := range want[p] {
			if got[p][name] != h {
				t.Errorf("%s: %s: onnx decodes sha256 %s, want %s", p, name, got[p][name], h)
			}
		}
	}
}

func readFloat32s(t *testing.T, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func runORT(t *testing.T, nodePath, model, input, dims string) []float32 {
	t.Helper()
	cmd := exec.Command("node", "../../testdata/gen/ort_run.js", model, "input", input, dims)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("ort_run.js %s: %v\n%s", filepath.Base(model), err, stderr)
	}
	var res struct {
		Dims []int64   `json:"dims"`
		Data []float32 `json:"data"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ort_run.js output: %v", err)
	}
	return res.Data
}

// TestInteropORT writes the weights of a second torch instance (B) into the
// graph exported from the first (A) and runs it with ONNX Runtime: the
// output must match PyTorch's output of B (cnn_b_output.bin, from
// onnx_fixtures.py). Tolerance: |got-want| <= 1e-4 + 1e-4*|want|; the
// logits are O(1) sums of a few hundred float32 products, where operation
// order differences between runtimes stay near 1e-6, while the weights of A
// and B give differences of order 0.1.
func TestInteropORT(t *testing.T) {
	nodePath := ortNodePath(t)
	wantA := readFloat32s(t, filepath.Join(fixtures, "cnn_a_output.bin"))
	wantB := readFloat32s(t, filepath.Join(fixtures, "cnn_b_output.bin"))
	ckpt, _ := cnnB(t)
	for _, opts := range []WriteOptions{{}, {ExternalData: "cnn.weights"}} {
		t.Run("external="+opts.ExternalData, func(t *testing.T) {
			m, err := Open(filepath.Join(fixtures, "cnn.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if _, err := m.ReplaceInitializers(ckpt); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "cnn_b.onnx")
			if err := WriteFile(out, m, opts); err != nil {
				t.Fatal(err)
			}
			got := runORT(t, nodePath, out, filepath.Join(fixtures, "cnn_input.bin"), "2,3,8,8")
			if len(got) != len(wantB) {
				t.Fatalf("got %d outputs, want %d", len(got), len(wantB))
			}
			maxA := 0.0
			for i := range got {
				d := math.Abs(float64(got[i] - wantB[i]))
				if d > 1e-4+1e-4*math.Abs(float64(wantB[i])) {
					t.Errorf("output %d: got %g, want %g (PyTorch, weights B)", i, got[i], wantB[i])
				}
				maxA = max(maxA, math.Abs(float64(got[i]-wantA[i])))
			}
			if maxA < 1e-2 {
				t.Errorf("output matches the original weights A (max diff %g): weights were not replaced", maxA)
			}
		})
	}
	// The unmodified export, as a check of the harness itself.
	got := runORT(t, nodePath, filepath.Join(fixtures, "cnn.onnx"), filepath.Join(fixtures, "cnn_input.bin"), "2,3,8,8")
	for i := range got {
		if d := math.Abs(float64(got[i] - wantA[i])); d > 1e-4+1e-4*math.Abs(float64(wantA[i])) {
			t.Errorf("original export output %d: got %g, want %g", i, got[i], wantA[i])
		}
	}
}
