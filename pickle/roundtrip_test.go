package pickle

import (
	"bytes"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ckptkit/ckpt/formats/pytorch"
)

// roundTrip writes f's tensors as a state_dict with formats/pytorch (torch's
// zip layout) and reads it back: names, dtypes, shapes and fingerprints must
// survive. It reports false when the writer refuses the input (duplicate
// names, unreadable bytes), which only fuzzed inputs may cause.
func roundTrip(t *testing.T, f *File) bool {
	t.Helper()
	named := f.Tensors
	var buf bytes.Buffer
	if _, err := pytorch.Write(&buf, named); err != nil {
		return false
	}
	g, err := Load(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatalf("reading back what formats/pytorch wrote: %v", err)
	}
	if len(g.Tensors) != len(f.Tensors) {
		t.Fatalf("read back %d tensors, wrote %d", len(g.Tensors), len(f.Tensors))
	}
	for i, n := range f.Tensors {
		m := g.Tensors[i]
		if m.Name != n.Name || m.Tensor.DType != n.Tensor.DType || !slices.Equal(m.Tensor.Shape, n.Tensor.Shape) {
			t.Fatalf("tensor %d: read back %s %s%v, wrote %s %s%v", i, m.Name, m.Tensor.DType, m.Tensor.Shape, n.Name, n.Tensor.DType, n.Tensor.Shape)
		}
		a, err1 := n.Tensor.SHA256()
		b, err2 := m.Tensor.SHA256()
		if err1 != nil || err2 != nil || a != b {
			t.Fatalf("%s: read back sha256 %x (%v), wrote %x (%v)", n.Name, b, err2, a, err1)
		}
	}
	return true
}

// TestRoundTrip writes every fixture's tensors with formats/pytorch and
// reads them back.
func TestRoundTrip(t *testing.T) {
	m := readManifest(t, filepath.Join("..", "testdata", "pickle"))
	for _, e := range m.Files {
		t.Run(e.File, func(t *testing.T) {
			f := openFixture(t, e.File)
			if !roundTrip(t, f) {
				t.Fatal("formats/pytorch refused to write the tensors")
			}
		})
	}
}
