package nn

import (
	"math"
	"testing"
)

// StochasticDepth and Dropout draw from this package's generator, not
// torch's, so they are checked by their definition rather than against torch
// values (torchvision.ops.stochastic_depth, torch.nn.functional.dropout).
func TestStochasticDepthSemantics(t *testing.T) {
	ManualSeed(11)
	x := Ones(400, 3, 2, 2)
	if got := x.StochasticDepth(0.5, "row", false); got != x {
		t.Error("eval mode: got a new tensor, want the input unchanged")
	}
	if got := x.StochasticDepth(0, "row", true); got != x {
		t.Error("p=0: got a new tensor, want the input unchanged")
	}
	y := x.StochasticDepth(0.25, "row", true)
	kept := 0
	for r := range 400 {
		row := y.Data()[r*12 : (r+1)*12]
		for _, v := range row {
			if v != row[0] {
				t.Fatalf("row %d mixes values %v and %v, want one value per row", r, row[0], v)
			}
		}
		switch row[0] {
		case 0:
		case float32(1 / 0.75):
			kept++
		default:
			t.Fatalf("row %d: got value %v, want 0 or %v", r, row[0], 1/0.75)
		}
	}
	// 400 Bernoulli(0.75) draws: mean 300, standard deviation ≈ 8.7.
	if kept < 250 || kept > 350 {
		t.Errorf("kept %d of 400 rows, want about 300", kept)
	}
	b := x.StochasticDepth(0.5, "batch", true).Data()
	for _, v := range b {
		if v != b[0] {
			t.Fatalf("batch mode: got values %v and %v, want one value for the whole batch", b[0], v)
		}
	}
	if z := x.StochasticDepth(1, "row", true).Sum(false).Item(); z != 0 {
		t.Errorf("p=1: got sum %v, want 0", z)
	}
}

func TestDropoutSemantics(t *testing.T) {
	ManualSeed(12)
	x := Full(2, 10000).SetRequiresGrad(true)
	d := NewDropout(0.3, false)
	d.Eval()
	if got := d.Forward(x); got != x {
		t.Error("eval mode: got a new tensor, want the input")
	}
	d.Train()
	y := d.Forward(x)
	zeros := 0
	for _, v := range y.Data() {
		switch v {
		case 0:
			zeros++
		case float32(2 / 0.7):
		default:
			t.Fatalf("got value %v, want 0 or %v", v, 2/0.7)
		}
	}
	// 10000 Bernoulli(0.3) draws: mean 3000, standard deviation ≈ 46.
	if math.Abs(float64(zeros)-3000) > 250 {
		t.Errorf("dropped %d of 10000, want about 3000", zeros)
	}
	y.Sum(false).Backward()
	for i, g := range x.Grad().Data() {
		if (g == 0) != (y.Data()[i] == 0) {
			t.Fatalf("element %d: grad %v for output %v, want the same mask", i, g, y.Data()[i])
		}
	}
}

// TestInplaceActivations checks that modules built with inplace=True give
// the out-of-place result, overwrite their input only when no graph is
// recorded, and keep gradients right when one is.
func TestInplaceActivations(t *testing.T) {
	mods := map[string]struct {
		m   Module
		ref func(*Tensor) *Tensor
	}{
		"relu":        {NewReLU(true), (*Tensor).ReLU},
		"relu6":       {NewReLU6(true), (*Tensor).ReLU6},
		"leaky_relu":  {NewLeakyReLU(0.1, true), func(x *Tensor) *Tensor { return x.LeakyReLU(0.1) }},
		"silu":        {NewSiLU(true), (*Tensor).SiLU},
		"hardswish":   {NewHardswish(true), (*Tensor).Hardswish},
		"hardsigmoid": {NewHardsigmoid(true), (*Tensor).Hardsigmoid},
	}
	for name, c := range mods {
		t.Run(name, func(t *testing.T) {
			x := randT(3, nil, 4, 5).MulScalar(3).Detach()
			want := c.ref(x)
			orig := append([]float32(nil), x.Data()...)
			var got *Tensor
			NoGrad(func() { got = c.m.Forward(x) })
			if got != x || !AllClose(x, want, 0, 0) {
				t.Errorf("NoGrad: got a new tensor %v or different values, want x overwritten with %v", got != x, want.Data())
			}
			xg := New(append([]float32(nil), orig...), 4, 5)
			yg := c.m.Forward(xg)
			if yg == xg || !AllClose(yg, want, 0, 0) {
				t.Fatalf("grad mode: got in-place %v, want an out-of-place result", yg == xg)
			}
			if xg.Data()[0] != orig[0] {
				t.Errorf("grad mode: input modified")
			}
		})
	}
}
