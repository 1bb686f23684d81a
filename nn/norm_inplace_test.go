package nn

import "testing"

// TestBatchNormForwardInPlace checks that ForwardInPlace on a frozen layer
// in training mode gives Forward's (and ReLU's) values bit for bit, updates
// the running statistics the same way, and overwrites its input; and that
// with a trainable layer it leaves the input alone and records the graph.
func TestBatchNormForwardInPlace(t *testing.T) {
	for _, relu := range []bool{false, true} {
		x := RandN(3, 4, 5, 6)
		ref, bn := NewBatchNorm2d(nil, 4), NewBatchNorm2d(nil, 4)
		for _, m := range []*BatchNorm2d{ref, bn} {
			m.Weight.Data()[1], m.Bias.Data()[2] = 1.5, -0.25
			m.RequiresGrad(false)
		}
		want := ref.Forward(x)
		if relu {
			want = want.ReLU()
		}
		in := &Tensor{data: append([]float32(nil), x.data...), shape: x.shape}
		got := bn.ForwardInPlace(in, relu)
		if got != in {
			t.Errorf("relu=%v: frozen layer: got a new tensor, want its input written in place", relu)
		}
		for i := range want.data {
			if got.data[i] != want.data[i] {
				t.Fatalf("relu=%v: element %d: got %v, want %v", relu, i, got.data[i], want.data[i])
			}
		}
		for i := range 4 {
			if bn.RunningMean.data[i] != ref.RunningMean.data[i] || bn.RunningVar.data[i] != ref.RunningVar.data[i] {
				t.Errorf("relu=%v: running stats of channel %d: got %v, %v, want %v, %v", relu, i,
					bn.RunningMean.data[i], bn.RunningVar.data[i], ref.RunningMean.data[i], ref.RunningVar.data[i])
			}
		}
		if bn.NumBatchesTracked != ref.NumBatchesTracked {
			t.Errorf("num_batches_tracked: got %d, want %d", bn.NumBatchesTracked, ref.NumBatchesTracked)
		}
	}
	bn := NewBatchNorm2d(nil, 4)
	x := RandN(2, 4, 3, 3)
	keep := append([]float32(nil), x.data...)
	y := bn.ForwardInPlace(x, true)
	if y == x || !y.RequiresGrad() {
		t.Error("trainable layer: got the input back or no graph, want a recorded out-of-place result")
	}
	for i, v := range keep {
		if x.data[i] != v {
			t.Fatalf("trainable layer: input element %d changed from %v to %v", i, v, x.data[i])
		}
	}
}

// TestFrozenPrefixRecordsNothing checks that a frozen prefix in training
// mode builds no graph (so Backward stops at the first trainable layer)
// and gets no gradients, while the trainable suffix does.
func TestFrozenPrefixRecordsNothing(t *testing.T) {
	conv1, bn1 := NewConv2d(nil, 3, 4, 3, Padding(1)), NewBatchNorm2d(nil, 4)
	conv2 := NewConv2d(nil, 4, 2, 3, Padding(1))
	prefix := NewSequential(conv1, bn1, NewReLU(true))
	prefix.RequiresGrad(false)
	prefix.Train()
	h := prefix.Forward(RandN(2, 3, 6, 6))
	if !h.IsLeaf() || h.RequiresGrad() {
		t.Fatalf("frozen prefix output: got %v, want a leaf that does not require grad", h)
	}
	conv2.Forward(h).Sum(false).Backward()
	for name, p := range map[string]*Tensor{"conv1.weight": conv1.Weight, "bn1.weight": bn1.Weight} {
		if p.Grad() != nil {
			t.Errorf("%s: got a gradient, want none (frozen)", name)
		}
	}
	if conv2.Weight.Grad() == nil || conv2.Bias.Grad() == nil {
		t.Error("conv2: got no gradient, want one (trainable)")
	}
}
