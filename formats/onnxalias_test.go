package formats

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ckptkit/ckpt/tensor"
)

// TestONNXAliases: aliased.onnx (convert_fixtures.py: an eval-mode export
// with training=PRESERVE and do_constant_folding=False) has parameters
// torch merged into an equal initializer, kept as Identity nodes. The
// checkpoint read from it has every name of the model's state_dict
// (aliased.pt, saved by torch), with the values torch saved.
func TestONNXAliases(t *testing.T) {
	c := open(t, fixtures+"aliased.onnx")
	want := open(t, fixtures+"aliased.pt")
	if len(c.ONNX.Graph.Initializer) >= len(want.Tensors) {
		t.Fatalf("the export has %d initializers for %d state_dict entries: nothing merged, the fixture tests nothing",
			len(c.ONNX.Graph.Initializer), len(want.Tensors))
	}
	for _, w := range want.Tensors {
		g := c.Tensor(w.Name)
		if g == nil {
			t.Errorf("%s: missing", w.Name)
			continue
		}
		gs, err1 := g.SHA256()
		ws, err2 := w.Tensor.SHA256()
		if err1 != nil || err2 != nil || gs != ws || g.DType != w.Tensor.DType {
			t.Errorf("%s: got %s %x, want %s %x (%v %v)", w.Name, g.DType, gs, w.Tensor.DType, ws, err1, err2)
		}
	}
	if len(c.Tensors) != len(want.Tensors) {
		t.Errorf("got %d tensors, want the state_dict's %d", len(c.Tensors), len(want.Tensors))
	}
}

// FuzzONNXCheckpoint opens ONNX files as checkpoints: it must not panic;
// what opens has unique names, every alias shares the tensor of an
// initializer, and the tensors survive safetensors and a read back. Seeds:
// the ONNX fixtures (cnn.onnx, attrs.onnx, aliased.onnx).
func FuzzONNXCheckpoint(f *testing.F) {
	for _, p := range []string{"../testdata/onnx/cnn.onnx", "../testdata/onnx/attrs.onnx", fixtures + "aliased.onnx"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	dir := f.TempDir()
	if d, err := os.MkdirTemp("/dev/shm", "ckpt-fuzz-"); err == nil {
		// Memory-backed where there is one: each input is written and
		// read back as files, which on a disk took most of an execution.
		dir = d
		f.Cleanup(func() { os.RemoveAll(d) })
	}
	noSync = true // Save's fsync would make each input take a disk flush
	defer func() { noSync = false }()
	f.Fuzz(func(t *testing.T, b []byte) {
		in := filepath.Join(dir, "in.onnx")
		if err := os.WriteFile(in, b, 0o644); err != nil {
			t.Fatal(err)
		}
		k, err := detectFile(in)
		if err != nil || k != KindONNX {
			return
		}
		c, err := Open(in)
		if err != nil {
			return
		}
		defer c.Close()
		alias := map[string]bool{}
		for _, a := range onnxAliases(c.ONNX) {
			alias[a.name] = true
		}
		names := map[string]bool{}
		inits := map[*tensor.Tensor]bool{}
		for _, nt := range c.Tensors {
			if names[nt.Name] {
				t.Fatalf("tensor %q listed twice", nt.Name)
			}
			names[nt.Name] = true
			if !alias[nt.Name] {
				inits[nt.Tensor] = true
			}
		}
		for _, nt := range c.Tensors {
			if alias[nt.Name] && !inits[nt.Tensor] {
				t.Fatalf("alias %q does not share an initializer's tensor", nt.Name)
			}
		}
		for _, s := range c.Skipped {
			if names[s.Name] {
				t.Fatalf("%q is both a tensor and skipped", s.Name)
			}
		}
		if len(c.Skipped) > 0 || c.NumBytes() > 1<<20 {
			return
		}
		out := filepath.Join(dir, "out.safetensors")
		if _, err := Save(out, c, SaveOptions{Force: true}); err != nil {
			return // tensors whose bytes the file lacks
		}
		back, err := Open(out)
		if err != nil {
			t.Fatalf("reading back: %v", err)
		}
		defer back.Close()
		if r, err := Diff(c, back, 0); err != nil || !r.TensorsEqual() {
			t.Fatalf("read back differs: %+v %v", r, err)
		}
	})
}
