package vec

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestNormKernels checks SumSqDev and NormAffine against float64 loops
// over lengths around the kernels' 8- and 16-lane steps. Tolerances:
// SumSqDev sums n float32 squares (relative n·6e-8); NormAffine rounds two
// fused multiply-adds (a few ulps of the result's scale).
func TestNormKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 1; n <= 70; n++ {
		src := make([]float32, n+1)
		w := make([]float32, n+1)
		b := make([]float32, n+1)
		for i := range src {
			src[i] = float32(rng.NormFloat64()*2 + 5)
			w[i] = float32(rng.NormFloat64())
			b[i] = float32(rng.NormFloat64())
		}
		src[n] = 1e30 // past the end: must not be read
		x := src[:n]
		mu := float32(5.1)
		want := 0.0
		for _, v := range x {
			d := float64(v) - float64(mu)
			want += d * d
		}
		if got := SumSqDev(x, mu); math.Abs(float64(got)-want) > want*float64(n)*6e-8+1e-6 {
			t.Errorf("n=%d: SumSqDev got %g, want %g", n, got, want)
		}
		a, c := float32(0.5), float32(-2.5)
		dst := make([]float32, n+1)
		dst[n] = 7
		NormAffine(dst, x, w, b, a, c)
		for i := range n {
			y := (float64(x[i])*float64(a)+float64(c))*float64(w[i]) + float64(b[i])
			scale := math.Abs((float64(x[i])*float64(a)+float64(c))*float64(w[i])) + math.Abs(float64(b[i])) + 1
			if math.Abs(float64(dst[i])-y) > scale*4e-7 {
				t.Errorf("n=%d: NormAffine dst[%d] got %g, want %g", n, i, dst[i], y)
			}
		}
		if dst[n] != 7 {
			t.Errorf("n=%d: NormAffine wrote past the end", n)
		}
	}
}
