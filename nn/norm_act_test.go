package nn

import (
	"math"
	"testing"
)

// TestBatchNormActFused checks that a training-mode conv-bn-act unit run as
// one op (ConvBNAct and Sequential fuse the batch norm with ReLU, ReLU6 or
// SiLU, which then stores no normalised values) gives the values, running
// statistics and gradients of the three modules run one after the other,
// bit for bit; and so does ReLU after a residual (ResNet's block end,
// relu(bn(conv(x)) + res)).
func TestBatchNormActFused(t *testing.T) {
	acts := map[string]func() Module{
		"ReLU":  func() Module { return NewReLU(true) },
		"ReLU6": func() Module { return NewReLU6(true) },
		"SiLU":  func() Module { return NewSiLU(true) },
	}
	for name, mk := range acts {
		for _, mode := range []string{"ConvBNAct", "Sequential", "residual"} {
			if mode == "residual" && name != "ReLU" {
				continue
			}
			seq := mode == "Sequential"
			x := RandN(3, 4, 7, 7)
			r := RandN(3, 5, 7, 7) // weights the output's elements in the loss
			// conv, bn and act twice over: the unit under test and the
			// reference, with the same parameters.
			convs := [2]*Conv2d{NewConv2d(nil, 4, 5, 3, Padding(1)), NewConv2d(nil, 4, 5, 3, Padding(1))}
			bns := [2]*BatchNorm2d{NewBatchNorm2d(nil, 5), NewBatchNorm2d(nil, 5)}
			convs[1].Weight.CopyFrom(convs[0].Weight)
			convs[1].Bias.CopyFrom(convs[0].Bias)
			for _, b := range bns {
				for i := range 5 {
					b.Weight.data[i] = 0.5 + 1.5*float32(i) // up to 6.5: ReLU6 saturates
					b.Bias.data[i] = 0.2*float32(i) - 0.3
				}
			}
			xs := [2]*Tensor{x.Clone().Detach(), x.Clone().Detach()}
			res := RandN(3, 5, 7, 7)
			ress := [2]*Tensor{res.Clone().Detach(), res.Clone().Detach()}
			var ys [2]*Tensor
			for k := range 2 {
				xs[k].SetRequiresGrad(true)
				ress[k].SetRequiresGrad(true)
				act := mk()
				switch {
				case k == 1 && mode == "residual":
					ys[k] = act.Forward(bns[k].Forward(convs[k].Forward(xs[k])).Add(ress[k]))
				case k == 1: // reference: one module after another
					ys[k] = act.Forward(bns[k].Forward(convs[k].Forward(xs[k])))
				case mode == "residual":
					ys[k] = ConvBNAct(convs[k], bns[k], act, xs[k], ress[k])
				case seq:
					s := NewSequential(convs[k], bns[k], act)
					s.Train()
					ys[k] = s.Forward(xs[k])
				default:
					ys[k] = ConvBNAct(convs[k], bns[k], act, xs[k], nil)
				}
				ys[k].Mul(r).Sum(false).Backward()
			}
			what := name + " (" + mode + ")"
			pairs := []struct {
				n    string
				a, b *Tensor
			}{
				{"output", ys[0], ys[1]},
				{"running_mean", bns[0].RunningMean, bns[1].RunningMean},
				{"running_var", bns[0].RunningVar, bns[1].RunningVar},
				{"x.grad", xs[0].Grad(), xs[1].Grad()},
				{"conv.weight.grad", convs[0].Weight.Grad(), convs[1].Weight.Grad()},
				{"bn.weight.grad", bns[0].Weight.Grad(), bns[1].Weight.Grad()},
				{"bn.bias.grad", bns[0].Bias.Grad(), bns[1].Bias.Grad()},
			}
			if mode == "residual" {
				pairs = append(pairs, struct {
					n    string
					a, b *Tensor
				}{"residual.grad", ress[0].Grad(), ress[1].Grad()})
			}
			for _, p := range pairs {
				if p.a == nil || p.b == nil {
					t.Fatalf("%s: %s: got %v, want %v (missing)", what, p.n, p.a, p.b)
				}
				for i := range p.b.data {
					if math.Float32bits(p.a.data[i]) != math.Float32bits(p.b.data[i]) {
						t.Fatalf("%s: %s element %d: got %v, want %v", what, p.n, i, p.a.data[i], p.b.data[i])
					}
				}
			}
		}
	}
}
