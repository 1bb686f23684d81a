package wino

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestKernelsMatchGo runs every kernel this CPU has against the pure-Go
// transforms, for lengths around the vector widths (tails included) and
// strides that separate the rows. The kernels do the same float32
// operations in a different order (fused multiply-adds), so they agree to
// a few ulps of the inputs' magnitude, not bit for bit: 1e-5 for inputs
// in [-1, 1) and coefficients up to 8.
func TestKernelsMatchGo(t *testing.T) {
	saved := impl
	defer func() { impl = saved }()
	r := rand.New(rand.NewPCG(1, 2))
	for _, isa := range []string{"avx512", "avx2", "go"} {
		Force(isa)
		if impl != isa {
			t.Logf("%s: not on this CPU", isa)
			continue
		}
		for _, n := range []int{1, 7, 8, 9, 15, 16, 17, 31, 33, 196} {
			for _, tr := range []struct {
				name string
				f, g func(src []float32, ss int, dst []float32, ds int, n int)
				rows int
			}{{"BT", BT, btGo, 6}, {"AT", AT, atGo, 4}} {
				t.Run(fmt.Sprintf("%s/%s/n%d", isa, tr.name, n), func(t *testing.T) {
					ss, ds := n+3, n+5
					src := make([]float32, 6*ss)
					for i := range src {
						src[i] = r.Float32()*2 - 1
					}
					got := make([]float32, tr.rows*ds)
					want := make([]float32, tr.rows*ds)
					for i := range got {
						got[i], want[i] = 42, 42 // past n must stay untouched
					}
					tr.f(src, ss, got, ds, n)
					tr.g(src, ss, want, ds, n)
					for i := range got {
						if d := got[i] - want[i]; d > 1e-5 || d < -1e-5 {
							t.Fatalf("element %d (row %d, column %d): got %v, want %v", i, i/ds, i%ds, got[i], want[i])
						}
					}
				})
			}
		}
	}
}

// TestStrided checks Gather4 and Scatter4 with each kernel set against
// their definition, bit for bit (they only move floats), and that Scatter4
// leaves the elements between its stores alone.
func TestStrided(t *testing.T) {
	saved := impl
	defer func() { impl = saved }()
	for _, isa := range []string{"avx512", "avx2", "go"} {
		Force(isa)
		if impl != isa {
			continue
		}
		for _, n := range []int{1, 3, 8, 15, 16, 17, 40, 57} {
			src := make([]float32, 4*n)
			for i := range src {
				src[i] = float32(i) + 0.5
			}
			got := make([]float32, n)
			Gather4(got, src[:4*(n-1)+1])
			for j, v := range got {
				if v != src[4*j] {
					t.Fatalf("%s Gather4 n=%d: element %d got %v, want %v", isa, n, j, v, src[4*j])
				}
			}
			dst := make([]float32, 4*n)
			for i := range dst {
				dst[i] = -1
			}
			Scatter4(dst[:4*(n-1)+1], got)
			for i, v := range dst {
				want := float32(-1)
				if i%4 == 0 {
					want = got[i/4]
				}
				if v != want {
					t.Fatalf("%s Scatter4 n=%d: element %d got %v, want %v", isa, n, i, v, want)
				}
			}
		}
	}
}
