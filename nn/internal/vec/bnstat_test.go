package vec

import (
	"math"
	"math/rand"
	"testing"
)

// TestBNStats checks the BatchNorm sums and the gradient map against their
// Go loops at every length up to 40 (each unrolled loop and tail) and a
// long one. The sums add the same terms in another order, so they agree
// to float64 rounding: within 1e-12 of the sum of |terms| (n of at most
// 5000 terms times 2^-52 each is 1e-12 of it). The gradient map rounds its
// float64 result to float32, once: within one float32 ulp (a product fused
// by FMA can land on the other side of a rounding boundary).
func TestBNStats(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, n := range append([]int{0, 1, 2, 3, 5, 7, 15, 17, 31, 33, 40}, 4999) {
		x, g := make([]float32, n), make([]float32, n)
		abs, absg := 0.0, 0.0
		for i := range x {
			x[i] = float32(r.NormFloat64()*2 + 1)
			g[i] = float32(r.NormFloat64())
			abs += math.Abs(float64(x[i]))
			absg += math.Abs(float64(g[i]))
		}
		mu := 0.9
		tol := func(s float64) float64 { return 1e-12 * (s + 1) }
		if got, want := SumF64(x), sumF64Go(x); math.Abs(got-want) > tol(abs) {
			t.Errorf("n=%d: SumF64: got %v, want %v", n, got, want)
		}
		sq := 0.0
		for _, v := range x {
			sq += (float64(v) - mu) * (float64(v) - mu)
		}
		if got, want := SumSqDevF64(x, mu), sumSqDevF64Go(x, mu); math.Abs(got-want) > tol(sq) {
			t.Errorf("n=%d: SumSqDevF64: got %v, want %v", n, got, want)
		}
		sg, sgx := SumDotDevF64(g, x, mu)
		wg, wgx := sumDotDevF64Go(g, x, mu)
		if math.Abs(sg-wg) > tol(absg) || math.Abs(sgx-wgx) > tol(absg*(abs+mu*float64(n))) {
			t.Errorf("n=%d: SumDotDevF64: got %v, %v, want %v, %v", n, sg, sgx, wg, wgx)
		}
		got, want := make([]float32, n), make([]float32, n)
		AxpbyF64(got, g, x, 0.7, -0.3, 0.11)
		axpbyF64Go(want, g, x, 0.7, -0.3, 0.11)
		for i := range want {
			if d := math.Abs(float64(got[i] - want[i])); d > ulp32(want[i]) {
				t.Fatalf("n=%d: AxpbyF64 element %d: got %v, want %v", n, i, got[i], want[i])
			}
		}
	}
}

func ulp32(v float32) float64 {
	a := float32(math.Abs(float64(v)))
	return float64(math.Nextafter32(a, float32(math.Inf(1))) - a)
}

// TestMaskGrad checks MaskGrad against its Go loop bit for bit, on values
// at and around the bounds, infinities and NaN.
func TestMaskGrad(t *testing.T) {
	special := []float32{0, float32(math.Copysign(0, -1)), 6, -1, 1, 5.999999, 6.000001, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	nan := float32(math.NaN())
	for _, n := range []int{0, 1, 7, 8, 9, 31, 100} {
		z, g := make([]float32, n), make([]float32, n)
		for i := range z {
			z[i] = special[i%len(special)]
			if i >= len(special) {
				z[i] = float32(i%13) - 3
			}
			g[i] = float32(i) + 0.5
		}
		for _, b := range [][2]float32{{0, nan}, {0, 6}} {
			got, want := make([]float32, n), make([]float32, n)
			for i := range got {
				got[i] = -7 // every element must be written
			}
			MaskGrad(got, g, z, b[0], b[1])
			maskGradGo(want, g, z, b[0], b[1])
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("n=%d bounds %v: element %d (z=%v): got %v, want %v", n, b, i, z[i], got[i], want[i])
				}
			}
		}
	}
}
