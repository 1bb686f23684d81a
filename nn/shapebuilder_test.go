package nn

import (
	"slices"
	"testing"
)

// TestShapeBuilder builds layers through a shape builder: every key is
// recorded with its shape, in request order, and no tensor has elements.
func TestShapeBuilder(t *testing.T) {
	b := NewShapeBuilder()
	lin := NewLinear(b.Sub("fc"), 512, 10, true)
	bn := NewBatchNorm2d(b.Sub("bn"), 8)
	want := []KeyShape{
		{"fc.weight", []int64{10, 512}}, {"fc.bias", []int64{10}},
		{"bn.weight", []int64{8}}, {"bn.bias", []int64{8}}, {"bn.running_mean", []int64{8}}, {"bn.running_var", []int64{8}},
		{"bn.num_batches_tracked", []int64{}},
	}
	got := b.Shapes()
	if len(got) != len(want) {
		t.Fatalf("got %d keys %v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		if got[i].Key != w.Key || !slices.Equal(got[i].Shape, w.Shape) {
			t.Errorf("key %d: got %v, want %v", i, got[i], w)
		}
	}
	for _, x := range []*Tensor{lin.Weight, lin.Bias, bn.Weight, bn.RunningMean} {
		if len(x.data) != 0 {
			t.Errorf("tensor of shape %v has %d elements, want none", x.shape, len(x.data))
		}
	}
	if NewBuilder(nil).Shapes() != nil {
		t.Error("a builder that is not a shape builder records shapes")
	}
}
