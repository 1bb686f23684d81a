package formats

import (
	"testing"
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
