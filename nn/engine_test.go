package nn_test

import (
	"math"
	"math/rand"
	"testing"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/optim"
)

// engineTol is the parity tolerance of the prepared path: folding a batch
// norm into the weights rounds each product differently (a float32
// rounding of w*scale per weight, about 6e-8 relative), and the sums of
// these layers' at most 576 terms stay far inside torch's own parity
// tolerance, 1e-4 * max(1, max|y|).
const engineTol = 1e-4

// randomBN gives bn running statistics and affine parameters away from
// the identity, so that folding it is visible.
func randomBN(r *rand.Rand, bn *nn.BatchNorm2d) {
	for _, p := range [][]float32{bn.RunningMean.Data(), bn.Bias.Data()} {
		for i := range p {
			p[i] = float32(r.NormFloat64() * 0.5)
		}
	}
	for _, p := range [][]float32{bn.RunningVar.Data(), bn.Weight.Data()} {
		for i := range p {
			p[i] = float32(0.5 + r.Float64())
		}
	}
}

func randomInput(r *rand.Rand, shape ...int) *nn.Tensor {
	x := nn.Zeros(shape...)
	for i := range x.Data() {
		x.Data()[i] = float32(r.NormFloat64())
	}
	return x
}

// engineNet is a chain with every kind of convolution the engine
// prepares: 3x3 (packed columns), stride 2 (deinterleaved), 1x1 (the
// input itself as the product's operand), depthwise and grouped.
func engineNet(r *rand.Rand) *nn.Sequential {
	bn := func(c int) *nn.BatchNorm2d {
		b := nn.NewBatchNorm2d(nil, c)
		randomBN(r, b)
		return b
	}
	return nn.NewSequential(
		nn.NewConv2d(nil, 3, 16, 3, nn.Padding(1), nn.NoBias()), bn(16), nn.NewReLU(true),
		nn.NewConv2d(nil, 16, 24, 3, nn.Stride(2), nn.Padding(1), nn.NoBias()), bn(24), nn.NewReLU6(true),
		nn.NewConv2d(nil, 24, 24, 3, nn.Padding(1), nn.Groups(24), nn.NoBias()), bn(24), nn.NewSiLU(true),
		nn.NewConv2d(nil, 24, 32, 1, nn.NoBias()), bn(32),
		nn.NewConv2d(nil, 32, 32, 3, nn.Padding(1), nn.Groups(4)), bn(32), nn.NewHardswish(true),
		nn.NewConv2d(nil, 32, 8, 3), // with bias, no batch norm
	)
}

func maxDiff(t *testing.T, got, want *nn.Tensor) (diff, lim float64) {
	t.Helper()
	if len(got.Data()) != len(want.Data()) {
		t.Fatalf("got %d elements, want %d", len(got.Data()), len(want.Data()))
	}
	maxY := 0.0
	for i, w := range want.Data() {
		diff = math.Max(diff, math.Abs(float64(got.Data()[i]-w)))
		maxY = math.Max(maxY, math.Abs(float64(w)))
	}
	return diff, engineTol * math.Max(1, maxY)
}

func plainForward(m nn.Module, x *nn.Tensor) (y *nn.Tensor) {
	nn.NoGrad(func() { y = m.Forward(x) })
	return y
}

// TestPrepareMatchesForward checks the prepared chain against the plain
// forward pass (BatchNorm run on its own) at batch 1 and at a batch where
// the later layers multiply all images at once.
func TestPrepareMatchesForward(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shape []int
	}{{"batch1", []int{1, 3, 12, 10}}, {"batch3 small", []int{3, 3, 6, 6}}} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewSource(1))
			m := engineNet(r)
			m.Eval()
			x := randomInput(r, tc.shape...)
			want := plainForward(m, x)
			if err := nn.Prepare(m); err != nil {
				t.Fatal(err)
			}
			got := nn.Infer(m, x)
			if d, lim := maxDiff(t, got, want); d > lim {
				t.Errorf("prepared: max|diff| = %.3g, want <= %.3g", d, lim)
			}
			again := nn.Infer(m, x)
			if d, _ := maxDiff(t, again, got); d != 0 {
				t.Errorf("second prepared call: max|diff| = %.3g from the first, want 0", d)
			}
		})
	}
}

// TestPrepareResidual checks ForwardAdd, whose residual goes into the last
// convolution's epilogue, against Forward(x) + x.
func TestPrepareResidual(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	bn := nn.NewBatchNorm2d(nil, 8)
	randomBN(r, bn)
	m := nn.NewSequential(nn.NewConv2d(nil, 8, 8, 3, nn.Padding(1), nn.NoBias()), bn)
	m.Eval()
	x := randomInput(r, 2, 8, 5, 5)
	want := plainForward(m, x).Add(x)
	for _, prepared := range []bool{false, true} {
		if prepared {
			if err := nn.Prepare(m); err != nil {
				t.Fatal(err)
			}
		}
		var got *nn.Tensor
		nn.NoGrad(func() { got = m.ForwardAdd(x, x) })
		if prepared {
			got = nn.Infer(residualNet{m}, x)
		}
		if d, lim := maxDiff(t, got, want); d > lim {
			t.Errorf("prepared %v: max|diff| = %.3g, want <= %.3g", prepared, d, lim)
		}
	}
}

// residualNet is a module computing seq(x) + x through ForwardAdd, its
// plan the Sequential's.
type residualNet struct{ *nn.Sequential }

func (m residualNet) Forward(x *nn.Tensor) *nn.Tensor { return m.ForwardAdd(x, x) }

// TestPrepareFollowsWeights checks the stated rule for weights changed
// after Prepare: every mutating path the package sees makes the next Infer
// call use the new weights.
func TestPrepareFollowsWeights(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(m *nn.Sequential, r *rand.Rand)
	}{
		{"LoadStateDict", func(m *nn.Sequential, r *rand.Rand) {
			other := engineNet(r)
			if _, err := m.LoadStateDict(other.StateDict(), true); err != nil {
				t.Fatal(err)
			}
		}},
		{"CopyFrom", func(m *nn.Sequential, r *rand.Rand) {
			w := m.At(0).(*nn.Conv2d).Weight
			w.CopyFrom(randomInput(r, w.Shape()...))
		}},
		{"replaced tensor", func(m *nn.Sequential, r *rand.Rand) {
			c := m.At(3).(*nn.Conv2d)
			c.Weight = randomInput(r, c.Weight.Shape()...)
		}},
		{"Data and MarkModified", func(m *nn.Sequential, r *rand.Rand) {
			bn := m.At(1).(*nn.BatchNorm2d)
			randomBN(r, bn)
			nn.MarkModified()
		}},
		{"optimizer step", func(m *nn.Sequential, r *rand.Rand) {
			for _, p := range m.Parameters() {
				p.SetGrad(randomInput(r, p.Shape()...))
			}
			o, err := optim.NewSGD(m.Parameters(), optim.LR(0.5))
			if err != nil {
				t.Fatal(err)
			}
			o.Step()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewSource(3))
			m := engineNet(r)
			m.Eval()
			x := randomInput(r, 1, 3, 8, 8)
			if err := nn.Prepare(m); err != nil {
				t.Fatal(err)
			}
			before := nn.Infer(m, x)
			tc.mutate(m, r)
			want := plainForward(m, x)
			if d, lim := maxDiff(t, want, before); d <= lim {
				t.Fatalf("the mutation changed the output by %.3g only: the test cannot tell", d)
			}
			got := nn.Infer(m, x)
			if d, lim := maxDiff(t, got, want); d > lim {
				t.Errorf("after %s: max|diff| = %.3g from the new weights' output, want <= %.3g", tc.name, d, lim)
			}
		})
	}
}

// TestPrepareTraining checks that Prepare refuses a module in training
// mode and that a prepared module put back in training mode runs
// unprepared (BatchNorm on batch statistics).
func TestPrepareTraining(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	m := engineNet(r)
	if err := nn.Prepare(m); err == nil {
		t.Fatal("Prepare of a module in training mode: got no error")
	}
	m.Eval()
	if err := nn.Prepare(m); err != nil {
		t.Fatal(err)
	}
	m.Train()
	x := randomInput(r, 2, 3, 6, 6)
	got := nn.Infer(m, x)
	m.Train()
	want := plainForward(m, x)
	if d, lim := maxDiff(t, got, want); d > lim {
		t.Errorf("training mode after Prepare: max|diff| = %.3g from the training forward, want <= %.3g", d, lim)
	}
}

// TestSequentialGrad checks that a Sequential still records a graph
// through the fused chain when its parameters require grad.
func TestSequentialGrad(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	m := engineNet(r)
	m.Eval()
	y := m.Forward(randomInput(r, 1, 3, 6, 6))
	if !y.RequiresGrad() {
		t.Fatal("output does not require grad")
	}
	y.Sum(false).Backward()
	if g := m.At(0).(*nn.Conv2d).Weight.Grad(); g == nil {
		t.Fatal("first convolution's weight got no gradient")
	}
}

// fnNet calls Conv2dFn with weight tensors it holds, as an imported
// graph's Conv nodes do: no Conv2d module to key the prepared weights on.
type fnNet struct {
	nn.Base
	w1, w2, b2 *nn.Tensor
}

func (m *fnNet) Forward(x *nn.Tensor) *nn.Tensor {
	p := nn.ConvParams{Stride: [2]int{1, 1}, Padding: [2]int{1, 1}, Dilation: [2]int{1, 1}, Groups: 1}
	y := nn.Conv2dFn(x, m.w1, nil, p).ReLU()
	p.Stride = [2]int{2, 2}
	return nn.Conv2dFn(y, m.w2, m.b2, p)
}

// TestPrepareConv2dFn checks the prepared Conv2dFn (weights packed once,
// keyed by their tensors) against the plain one, and that a changed weight
// reaches it after MarkModified.
func TestPrepareConv2dFn(t *testing.T) {
	r := rand.New(rand.NewSource(6))
	m := &fnNet{w1: randomInput(r, 8, 3, 3, 3), w2: randomInput(r, 4, 8, 3, 3), b2: randomInput(r, 4)}
	m.RegisterParameter("w1", &m.w1)
	m.RegisterParameter("w2", &m.w2)
	m.RegisterParameter("b2", &m.b2)
	m.Eval()
	x := randomInput(r, 2, 3, 9, 9)
	if err := nn.Prepare(m); err != nil {
		t.Fatal(err)
	}
	for step := range 2 {
		want := plainForward(m, x)
		got := nn.Infer(m, x)
		if d, lim := maxDiff(t, got, want); d > lim {
			t.Errorf("step %d: max|diff| = %.3g, want <= %.3g", step, d, lim)
		}
		copy(m.w2.Data(), randomInput(r, 4, 8, 3, 3).Data())
		nn.MarkModified()
	}
}
