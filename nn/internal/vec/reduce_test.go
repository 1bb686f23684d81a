package vec

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestReduce checks Max, Sum and Add against plain loops over lengths
// around the kernels' 8- and 16-lane steps. Sum's tolerance is float32
// rounding of a sum of n terms of magnitude <= 1: n·6e-8 absolute.
func TestReduce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 1; n <= 70; n++ {
		p := make([]float32, n+1)
		for i := range p {
			p[i] = float32(rng.NormFloat64())
		}
		p[n] = 1e30 // past the end: must not be read
		x := p[:n]
		wantMax, wantSum := x[0], 0.0
		for _, v := range x {
			wantMax = max(wantMax, v)
			wantSum += float64(v)
		}
		if got := Max(x); got != wantMax {
			t.Errorf("n=%d: Max got %g, want %g", n, got, wantMax)
		}
		if got := Sum(x); math.Abs(float64(got)-wantSum) > float64(n)*6e-8*4 {
			t.Errorf("n=%d: Sum got %g, want %g", n, got, wantSum)
		}
		dst := make([]float32, n+1)
		for i := range dst {
			dst[i] = float32(i)
		}
		Add(dst[:n], x)
		for i := range n {
			if want := float32(i) + x[i]; dst[i] != want {
				t.Fatalf("n=%d: Add dst[%d] got %g, want %g", n, i, dst[i], want)
			}
		}
		if dst[n] != float32(n) {
			t.Errorf("n=%d: Add wrote past the end", n)
		}
	}
	if got := Sum(nil); got != 0 {
		t.Errorf("Sum(nil) got %g, want 0", got)
	}
}
