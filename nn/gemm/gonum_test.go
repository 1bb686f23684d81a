package gemm

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/gonum"
)

// TestImplementationMatchesGonum runs gonum's native Sgemm and ours through
// blas32 on the same inputs; both must agree with the reference.
func TestImplementationMatchesGonum(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	trans := []blas.Transpose{blas.NoTrans, blas.Trans, blas.ConjTrans}
	defer blas32.Use(gonum.Implementation{})
	for _, impl := range []blas.Float32{gonum.Implementation{}, Implementation{}} {
		blas32.Use(impl)
		for _, tA := range trans {
			for _, tB := range trans {
				tc := gemmCase{transA: tA != blas.NoTrans, transB: tB != blas.NoTrans,
					m: 23, n: 41, k: 37, alpha: 1.5, beta: -0.25, pad: 2}
				o := makeOperands(tc, rng)
				want := append([]float32(nil), o.c...)
				refSgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, want, o.ldc)
				got := append([]float32(nil), o.c...)
				ar, ac := tc.m, tc.k
				if tc.transA {
					ar, ac = tc.k, tc.m
				}
				br, bc := tc.k, tc.n
				if tc.transB {
					br, bc = tc.n, tc.k
				}
				blas32.Gemm(tA, tB, tc.alpha,
					blas32.General{Rows: ar, Cols: ac, Stride: o.lda, Data: o.a},
					blas32.General{Rows: br, Cols: bc, Stride: o.ldb, Data: o.b},
					tc.beta, blas32.General{Rows: tc.m, Cols: tc.n, Stride: o.ldc, Data: got})
				t.Run(fmt.Sprintf("%T/%c%c", impl, tA, tB), func(t *testing.T) { check(t, tc, o, tolerances(tc, o, o.c), got, want) })
			}
		}
	}
}

func TestImplementationPanics(t *testing.T) {
	s := make([]float32, 8)
	for _, tc := range []struct {
		name, want string
		f          func()
	}{
		{"bad transpose", "blas: illegal transpose", func() { Implementation{}.Sgemm('x', blas.NoTrans, 1, 1, 1, 1, s, 1, s, 1, 0, s, 1) }},
		{"lda", "blas: bad leading dimension of A", func() { Implementation{}.Sgemm(blas.NoTrans, blas.NoTrans, 2, 2, 3, 1, s, 2, s, 2, 0, s, 2) }},
		{"short c", "blas: insufficient length of c", func() { Implementation{}.Sgemm(blas.NoTrans, blas.NoTrans, 3, 3, 1, 1, s, 1, s, 3, 0, s, 3) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r != tc.want {
					t.Errorf("got panic %v, want %q", r, tc.want)
				}
			}()
			tc.f()
		})
	}
}

// BenchmarkGonum compares gonum's pure-Go Sgemm with this package's at
// 1024³, on one goroutine and on all (gonum splits over GOMAXPROCS).
func BenchmarkGonum(b *testing.B) {
	defer SetThreads(0)
	for _, threads := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("threads=%d/impl=gonum/n=1024", threads), func(b *testing.B) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
			benchGemm(b, 1024, 1024, 1024, func(m, n, k int, a, bm, c []float32) {
				gonum.Implementation{}.Sgemm(blas.NoTrans, blas.NoTrans, m, n, k, 1, a, k, bm, n, 0, c, n)
			})
		})
		b.Run(fmt.Sprintf("threads=%d/impl=gemm/n=1024", threads), func(b *testing.B) {
			SetThreads(threads)
			benchGemm(b, 1024, 1024, 1024, ourSgemm)
		})
	}
}
