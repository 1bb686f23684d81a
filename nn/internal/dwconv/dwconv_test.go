package dwconv

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// TestTaps compares Taps with a plain double-precision loop over output
// lengths around every block size (tails and overlapping last blocks) and
// tap counts from 1 to 49.
func TestTaps(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 100, 127, 128, 129, 191, 192, 193, 255, 256, 300, 1000} {
		for _, nt := range []int{1, 3, 4, 5, 9, 25, 49} {
			t.Run(fmt.Sprintf("n%d_taps%d", n, nt), func(t *testing.T) {
				src := randSlice(r, n+40)
				offs := make([]int, nt)
				for i := range offs {
					offs[i] = r.IntN(41)
				}
				w := randSlice(r, nt)
				dst := randSlice(r, n) // garbage that must be overwritten
				Taps(dst, src, offs, w, 0.5)
				for j := range n {
					want := 0.5
					for i, o := range offs {
						want += float64(w[i]) * float64(src[j+o])
					}
					if math.Abs(float64(dst[j])-want) > 1e-5*(1+math.Abs(want))*float64(nt) {
						t.Fatalf("dst[%d] = %v, want %v", j, dst[j], want)
					}
				}
			})
		}
	}
}

// TestTapRuns compares TapRuns, and TapRunsClamp with the clamps of a
// ReLU and of a clamp to [0, 0.5] (a ReLU6 that bites on unit-variance
// data), with a plain double-precision loop over output lengths
// around every block size and runs of every length, some with weight steps
// of 2 (the phase planes of a stride-2 kernel row).
func TestTapRuns(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	inf := math.Inf(1)
	clamps := []struct {
		name   string
		lo, hi float64
	}{{"none", -inf, inf}, {"relu", 0, inf}, {"clamp0-0.5", 0, 0.5}}
	for _, n := range []int{1, 7, 15, 16, 17, 63, 64, 65, 127, 128, 129, 200, 257, 1000} {
		for _, nr := range []int{1, 2, 3, 5, 10} {
			for _, cl := range clamps {
				t.Run(fmt.Sprintf("n%d_runs%d_%s", n, nr, cl.name), func(t *testing.T) {
					runs := make([]Run, nr)
					w := randSlice(r, 3*MaxRun*nr)
					for i := range runs {
						runs[i] = Run{Off: r.IntN(41), Len: 1 + r.IntN(MaxRun), W: r.IntN(MaxRun * nr), WStep: 1 + r.IntN(2)}
					}
					src := randSlice(r, n+40+MaxRun+Slack)
					dst := randSlice(r, n)
					if cl.name == "none" {
						TapRuns(dst, src, runs, w, -0.25)
					} else {
						TapRunsClamp(dst, src, runs, w, -0.25, float32(cl.lo), float32(cl.hi))
					}
					clamped := 0
					for j := range n {
						want, terms := -0.25, 0
						for _, ru := range runs {
							for i := range ru.Len {
								want += float64(w[ru.W+i*ru.WStep]) * float64(src[j+ru.Off+i])
								terms++
							}
						}
						if want < cl.lo || want > cl.hi {
							clamped++
						}
						want = math.Min(math.Max(want, cl.lo), cl.hi)
						if math.Abs(float64(dst[j])-want) > 1e-5*(1+math.Abs(want))*float64(terms) {
							t.Fatalf("dst[%d] = %v, want %v", j, dst[j], want)
						}
					}
					if cl.name != "none" && n >= 64 && clamped == 0 {
						t.Fatalf("no output of %d was clamped to [%v, %v]: the case tests nothing", n, cl.lo, cl.hi)
					}
				})
			}
		}
	}
}

// TestTapRunsClampNaN checks that a NaN output stays NaN through the clamp
// (rather than becoming lo or hi), in the vector kernels and the tail.
func TestTapRunsClampNaN(t *testing.T) {
	for _, n := range []int{5, 16, 100} {
		src := make([]float32, n+Slack+1)
		src[n/2] = float32(math.NaN())
		dst := make([]float32, n)
		TapRunsClamp(dst, src, []Run{{Off: 0, Len: 1, W: 0, WStep: 1}}, []float32{1}, 0, 0, 6)
		for j, v := range dst {
			if isNaN := v != v; isNaN != (j == n/2) {
				t.Fatalf("n=%d: dst[%d] = %v, want NaN only at %d", n, j, v, n/2)
			}
		}
	}
}

// TestCopy2D and TestDeinterleave2D check every element written and that
// nothing outside the rows is touched.
func TestCopy2D(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, cols := range []int{1, 5, 15, 16, 17, 32, 33, 112, 115} {
		for _, rows := range []int{1, 2, 5} {
			sp, dp := cols+r.IntN(5), cols+r.IntN(5)
			src := randSlice(r, (rows-1)*sp+cols)
			dst := make([]float32, (rows-1)*dp+cols+8)
			for i := range dst {
				dst[i] = -1000
			}
			Copy2D(dst, dp, src, sp, rows, cols)
			for i := range dst {
				want := float32(-1000)
				if rr, c := i/dp, i%dp; rr < rows && c < cols {
					want = src[rr*sp+c]
				}
				if dst[i] != want {
					t.Fatalf("cols %d rows %d: dst[%d] = %v, want %v", cols, rows, i, dst[i], want)
				}
			}
		}
	}
}

func TestDeinterleave2D(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, cols := range []int{1, 2, 3, 15, 16, 17, 31, 32, 33, 47, 64, 112, 113} {
		for _, rows := range []int{1, 3} {
			sp, dp := cols+r.IntN(5), (cols+1)/2+r.IntN(5)
			src := randSlice(r, (rows-1)*sp+cols)
			even := make([]float32, (rows-1)*dp+(cols+1)/2+8)
			odd := make([]float32, (rows-1)*dp+(cols+1)/2+8)
			for i := range even {
				even[i], odd[i] = -1000, -1000
			}
			Deinterleave2D(even, odd, dp, src, sp, rows, cols)
			for i := range even {
				rr, c := i/dp, i%dp
				we, wo := float32(-1000), float32(-1000)
				if rr < rows && 2*c < cols {
					we = src[rr*sp+2*c]
				}
				if rr < rows && 2*c+1 < cols {
					wo = src[rr*sp+2*c+1]
				}
				if even[i] != we || odd[i] != wo {
					t.Fatalf("cols %d rows %d: even[%d], odd[%d] = %v, %v, want %v, %v", cols, rows, i, i, even[i], odd[i], we, wo)
				}
			}
		}
	}
}
