package onnx

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// resnet18Dir returns a directory made by testdata/gen/onnx_resnet18.py:
// $CKPT_ONNX_RESNET18 when set, or a temporary one it generates.
func resnet18Dir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("CKPT_ONNX_RESNET18"); dir != "" {
		return dir
	}
	if testing.Short() {
		t.Skip("skipping in -short mode: exports a ResNet-18 with PyTorch")
	}
	needPythonTorch(t)
	dir := t.TempDir()
	if out, err := exec.Command(python, "../../testdata/gen/onnx_resnet18.py", dir).CombinedOutput(); err != nil {
		t.Fatalf("onnx_resnet18.py: %v\n%s", err, out)
	}
	return dir
}

// TestResNet18 works on a real torchvision export (45 MB): a byte-exact
// round trip, onnx-go's decoding of every initializer, and the weights of a
// trained-like instance written into the graph of a freshly initialized
// one, whose deduplicated BatchNorm parameters (Identity aliases) must be
// split back into initializers; ONNX Runtime must then give PyTorch's
// output for the new weights. Tolerance: |got-want| <= 1e-4 + 1e-4*|want|,
// float32 summation-order differences over 18 layers staying near 1e-5.
func TestResNet18(t *testing.T) {
	dir := resnet18Dir(t)
	path := filepath.Join(dir, "resnet18.onnx")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if out, err := Marshal(m); err != nil || !bytes.Equal(out, orig) {
		t.Fatalf("written back: %d bytes, %v; want the %d bytes read", len(out), err, len(orig))
	}

	inits, _, err := m.Initializers()
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := decodeWithOnnxGo(t, orig)
	if err != nil {
		t.Fatalf("onnx-go: %v", err)
	}
	for _, n := range inits {
		g := theirs.byName[n.Name]
		got, err := n.Tensor.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if g == nil || g.t == nil || !slices.Equal(got, g.t.Data().([]float32)) {
			t.Errorf("%s: differs from onnx-go's decoding", n.Name)
		}
	}

	ckpt, hashes := loadRawCheckpoint(t, filepath.Join(dir, "resnet18_b.bin"), filepath.Join(dir, "resnet18_b.json"))
	rep, err := m.ReplaceInitializers(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unaliased) == 0 {
		t.Errorf("got no Identity aliases split, want the deduplicated BatchNorm parameters")
	}
	if len(rep.Unused) != 20 {
		t.Errorf("got %d unused tensors (%v), want the 20 num_batches_tracked", len(rep.Unused), rep.Unused)
	}
	if got, want := len(rep.Replaced)+len(rep.Unaliased)+len(rep.Unused), len(ckpt); got != want {
		t.Errorf("got %d tensors accounted for, want %d", got, want)
	}
	nodePath := ""
	if _, err := exec.LookPath("node"); err == nil {
		nodePath = ortNodePath(t)
	}
	wantA := readFloat32s(t, filepath.Join(dir, "a_output.bin"))
	wantB := readFloat32s(t, filepath.Join(dir, "b_output.bin"))
	for _, opts := range []WriteOptions{{}, {ExternalData: "resnet18.weights", ExternalThreshold: 1024}} {
		out := filepath.Join(t.TempDir(), "b.onnx")
		if err := WriteFile(out, m, opts); err != nil {
			t.Fatal(err)
		}
		back, err := Open(out)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := back.Initializers()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range got {
			if h := hashOf(t, n.Tensor); h != hashes[n.Name] {
				t.Errorf("%s: got sha256 %s, want the checkpoint's %s", n.Name, h, hashes[n.Name])
			}
		}
		back.Close()
		if nodePath == "" {
			t.Log("node not on PATH: ONNX Runtime part skipped")
			continue
		}
		logits := runORT(t, nodePath, out, filepath.Join(dir, "input.bin"), "1,3,64,64")
		maxB, maxA := 0.0, 0.0
		for i := range logits {
			d := math.Abs(float64(logits[i] - wantB[i]))
			maxB = max(maxB, d)
			if d > 1e-4+1e-4*math.Abs(float64(wantB[i])) {
				t.Errorf("logit %d: got %g, want %g (PyTorch, weights B)", i, logits[i], wantB[i])
				break
			}
			maxA = max(maxA, math.Abs(float64(logits[i]-wantA[i])))
		}
		if maxA < 1e-2 {
			t.Errorf("output matches the original weights A (max diff %g): weights were not replaced", maxA)
		}
		t.Logf("external=%q: max |ORT - PyTorch| = %g", opts.ExternalData, maxB)
	}
}
