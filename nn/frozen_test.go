package nn

import (
	"math/rand"
	"testing"
)

// frozenNet is a conv-bn-act chain with a 3x3, a strided, a depthwise
// and a 1x1 convolution, BatchNorm statistics away from the identity.
func frozenNet(r *rand.Rand) *Sequential {
	bn := func(c int) *BatchNorm2d {
		b := NewBatchNorm2d(nil, c)
		for i := range c {
			b.RunningMean.data[i] = float32(r.NormFloat64() * 0.5)
			b.Bias.data[i] = float32(r.NormFloat64() * 0.5)
			b.RunningVar.data[i] = float32(0.5 + r.Float64())
			b.Weight.data[i] = float32(0.5 + r.Float64())
		}
		return b
	}
	return NewSequential(
		NewConv2d(nil, 3, 8, 3, Padding(1), NoBias()), bn(8), NewReLU(true),
		NewConv2d(nil, 8, 8, 3, Stride(2), Padding(1), NoBias()), bn(8), NewReLU6(true),
		NewConv2d(nil, 8, 8, 3, Padding(1), Groups(8), NoBias()), bn(8), NewSiLU(true), // depthwise
		NewConv2d(nil, 8, 4, 1), bn(4),
	)
}

// TestFrozenRunsPrepared checks that a frozen chain (nn.Freeze), run with
// grad mode on and its parent in training mode, computes what Infer of the
// prepared chain computes, bit for bit (the same folded, packed weights
// and epilogue); that its prepared copy survives an optimizer-style step
// on another tensor ([MarkStepped]) and is rebuilt after a change nn sees
// ([MarkModified], here through CopyFrom), following the new weights.
func TestFrozenRunsPrepared(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	net := frozenNet(r)
	x := &Tensor{data: make([]float32, 2*3*9*9), shape: []int{2, 3, 9, 9}}
	for i := range x.data {
		x.data[i] = float32(r.NormFloat64())
	}
	infer := func() *Tensor {
		net.Eval()
		if err := Prepare(net); err != nil {
			t.Fatal(err)
		}
		defer Unprepare(net)
		return Infer(net, x)
	}
	same := func(what string, got, want *Tensor) {
		t.Helper()
		for i := range want.data {
			if got.data[i] != want.data[i] {
				t.Fatalf("%s: element %d: got %v, want %v (Infer's)", what, i, got.data[i], want.data[i])
			}
		}
	}
	want := infer()
	Freeze(net)
	net.Train()
	conv := net.layers[0].(*Conv2d)
	got := net.Forward(x)
	if got.RequiresGrad() {
		t.Error("frozen chain output requires grad, want not")
	}
	same("frozen forward", got, want)
	first := conv.frozenCopy.Load()
	if first == nil {
		t.Fatal("frozen convolution kept no prepared copy")
	}

	head := RandN(4)
	head.SetRequiresGrad(true)
	MarkStepped([]*Tensor{head})
	same("after a step of another tensor", net.Forward(x), want)
	if c := conv.frozenCopy.Load(); c != first {
		t.Error("an optimizer step on a tensor outside the frozen chain rebuilt its prepared copy, want it kept")
	}

	w := conv.Weight.Clone()
	for i := range w.data {
		w.data[i] *= 0.5
	}
	conv.Weight.CopyFrom(w)
	got = net.Forward(x)
	if c := conv.frozenCopy.Load(); c == first {
		t.Error("CopyFrom into a frozen weight kept the old prepared copy, want it rebuilt")
	}
	Unfreeze(net)
	want = infer()
	same("after CopyFrom", got, want)
}

// TestFrozenWinograd runs a frozen convolution of a shape Winograd takes
// (3×3, stride 1, 128 channels, 64 tiles) in training mode: its prepared
// copy must keep the folded weights Winograd transforms at the first call
// (it once kept the shape alone, and the first call panicked), and give
// Infer's result.
func TestFrozenWinograd(t *testing.T) {
	conv := NewConv2d(nil, 128, 128, 3, Padding(1))
	bn := NewBatchNorm2d(nil, 128)
	net := NewSequential(conv, bn, NewReLU(false))
	x := RandN(2, 128, 16, 16)
	net.Eval()
	if err := Prepare(net); err != nil {
		t.Fatal(err)
	}
	want := Infer(net, x)
	Unprepare(net)
	Freeze(net)
	net.Train()
	got := net.Forward(x)
	for i := range want.data {
		if got.data[i] != want.data[i] {
			t.Fatalf("element %d: got %v, want %v (Infer's)", i, got.data[i], want.data[i])
		}
	}
}

// TestFrozenWinogradOnly checks what a frozen convolution of a shape
// Winograd takes keeps: for an input Winograd runs (64 tiles) only the
// Winograd weights, neither the folded weights nor a packed copy (each a
// second copy of the weights beside the model's, the memory a frozen
// backbone held twice over); and that an input of the same layer that
// takes the GEMM instead (4 tiles) rebuilds it with packed weights. Both
// must give Infer's result bit for bit.
func TestFrozenWinogradOnly(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	conv := NewConv2d(nil, 128, 128, 3, Padding(1))
	bn := NewBatchNorm2d(nil, 128)
	for i := range 128 {
		bn.RunningMean.data[i] = float32(r.NormFloat64() * 0.5)
		bn.RunningVar.data[i] = float32(0.5 + r.Float64())
	}
	net := NewSequential(conv, bn, NewReLU(false))
	xw, xg := RandN(2, 128, 16, 16), RandN(1, 128, 8, 8)
	net.Eval()
	if err := Prepare(net); err != nil {
		t.Fatal(err)
	}
	ww, wg := Infer(net, xw), Infer(net, xg)
	Unprepare(net)
	Freeze(net)
	net.Train()
	for _, tc := range []struct {
		name     string
		x, want  *Tensor
		winoOnly bool
	}{
		{"winograd input", xw, ww, true},
		{"gemm input", xg, wg, false},
		{"winograd input again", xw, ww, false}, // the second form serves both
	} {
		got, want := net.Forward(tc.x), tc.want
		for i := range want.data {
			if got.data[i] != want.data[i] {
				t.Fatalf("%s: element %d: got %v, want %v (Infer's)", tc.name, i, got.data[i], want.data[i])
			}
		}
		c := conv.frozenCopy.Load()
		if c == nil {
			t.Fatalf("%s: no frozen copy kept", tc.name)
		}
		if c.winoOnly != tc.winoOnly {
			t.Errorf("%s: got winoOnly %v, want %v", tc.name, c.winoOnly, tc.winoOnly)
		}
		if tc.winoOnly && (len(c.e.w.data) != 0 || len(c.e.packed) != 0 || c.e.wino == nil) {
			t.Errorf("%s: copy keeps %d folded weights, %d packed matrices and Winograd weights %v, want only the Winograd weights",
				tc.name, len(c.e.w.data), len(c.e.packed), c.e.wino != nil)
		}
		if !tc.winoOnly && len(c.e.packed) == 0 {
			t.Errorf("%s: copy has no packed weights, want them", tc.name)
		}
	}
}
