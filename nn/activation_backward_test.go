package nn

import (
	"math"
	"math/rand"
	"testing"
)

// TestActivationBackwardSplit runs the backward passes that are split over
// threads on a tensor large enough to be split (5·2^15 elements, NaN and
// ±Inf included) and compares them, bit for bit, with the derivative
// written element by element as the single-threaded loops computed it
// before the split: splitting the work must not change a bit. gradcheck
// checks the derivatives themselves.
func TestActivationBackwardSplit(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	n := 5 * parallelMin
	x := &Tensor{data: make([]float32, n), shape: []int{n}}
	for i := range x.data {
		x.data[i] = float32(r.NormFloat64() * 4)
	}
	x.data[7], x.data[8], x.data[9] = float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))
	g := make([]float32, n)
	for i := range g {
		g[i] = float32(r.NormFloat64())
	}
	sigmoid := func(v float32) float32 { // the forward's own kernel, one element
		y := (&Tensor{data: []float32{v}, shape: []int{1}}).Sigmoid()
		return y.data[0]
	}
	for _, tc := range []struct {
		name string
		f    func(*Tensor) *Tensor
		df   func(x, g float32) float32
	}{
		{"SiLU", (*Tensor).SiLU, func(v, g float32) float32 {
			s := sigmoid(v)
			return g * s * (1 + v*(1-s))
		}},
		{"GELU", func(t *Tensor) *Tensor { return t.GELU("none") }, func(xv, g float32) float32 {
			d := []float32{0} // geluGrad on one element: TestGELUGrad checks it
			geluGrad(d, []float32{xv}, []float32{g})
			return d[0]
		}},
		{"Sigmoid", (*Tensor).Sigmoid, func(v, g float32) float32 {
			y := sigmoid(v)
			return g * (y * (1 - y))
		}},
		{"Hardswish", (*Tensor).Hardswish, func(v, g float32) float32 {
			switch {
			case v < -3:
				return 0
			case v <= 3:
				return g * (v/3 + 0.5)
			}
			return g
		}},
		{"Hardsigmoid", (*Tensor).Hardsigmoid, func(v, g float32) float32 {
			if v > -3 && v < 3 {
				return g * (1.0 / 6)
			}
			return 0
		}},
	} {
		xt := x.Clone()
		xt.SetRequiresGrad(true)
		y := tc.f(xt)
		y.BackwardWith(&Tensor{data: append([]float32(nil), g...), shape: []int{n}})
		got := xt.Grad().data
		for i := range got {
			want := tc.df(x.data[i], g[i])
			if math.Float32bits(got[i]) != math.Float32bits(want) && !(got[i] != got[i] && want != want) {
				t.Fatalf("%s: element %d (x=%v): got %v, want %v", tc.name, i, x.data[i], got[i], want)
			}
		}
	}
}

// BenchmarkActivationBackward times the forward and backward of SiLU and
// GELU on a convnext_tiny stage-1-sized activation (8×96×56×56 floats),
// reporting the process's CPU time per pass (cpu-ms/op), which a loaded
// machine disturbs less than the wall time.
func BenchmarkActivationBackward(b *testing.B) {
	n := 8 * 96 * 56 * 56
	x := RandN(n)
	g := RandN(n)
	for _, tc := range []struct {
		name string
		f    func(*Tensor) *Tensor
	}{
		{"SiLU", (*Tensor).SiLU},
		{"GELU", func(t *Tensor) *Tensor { return t.GELU("none") }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c0 := cpuTime()
			for b.Loop() {
				xt := x.Detach()
				xt.SetRequiresGrad(true)
				tc.f(xt).BackwardWith(g)
			}
			b.ReportMetric(float64(cpuTime()-c0)/1e6/float64(b.N), "cpu-ms/op")
		})
	}
}

// TestGELUGrad holds geluGrad, the backward of the exact GELU, to the
// derivative computed in float64 with math.Erf and math.Exp, over a dense
// sweep of [-12, 12] and a few extremes: within 6e-7·|g| (vec.GELU's erf
// is within 1.5e-7 of exact, and its CDF is taken from x·Φ(x) over x), and
// NaN where the exact formula gives NaN.
func TestGELUGrad(t *testing.T) {
	var xs []float32
	for v := -12.0; v <= 12; v += 1.0 / 1024 {
		xs = append(xs, float32(v))
	}
	xs = append(xs, 1e-7, -1e-7, 1e-30, -1e-30, 0, float32(math.Copysign(0, -1)), 30, -30, 1e6, -1e6,
		float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)))
	g := make([]float32, len(xs))
	for i := range g {
		g[i] = float32(1 + i%7)
	}
	got := make([]float32, len(xs))
	geluGrad(got, xs, g)
	worst := 0.0
	for i, xv := range xs {
		v := float64(xv)
		want := float64(g[i]) * (0.5*(1+math.Erf(v/math.Sqrt2)) + v*math.Exp(-0.5*v*v)/math.Sqrt(2*math.Pi))
		if math.IsNaN(want) || math.IsInf(v, 0) {
			if !math.IsNaN(float64(got[i])) {
				t.Errorf("x=%v: got %v, want NaN", xv, got[i])
			}
			continue
		}
		d := math.Abs(float64(got[i])-want) / float64(g[i])
		worst = math.Max(worst, d)
		if d > 6e-7 {
			t.Errorf("x=%v: got %v, want %v (%.2g of |g| off)", xv, got[i], want, d)
		}
	}
	t.Logf("largest error %.2g of |g|", worst)
}
