package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// matrixSource is a BSource over a stored op(B), packed by plain loops
// independent of packB.
type matrixSource struct {
	b      []float32
	ldb    int
	transB bool
}

func (s matrixSource) PackB(nr, pc, kc, jc, nc int, dst []float32) {
	for q := 0; q*nr < nc; q++ {
		for p := range kc {
			for j := range nr {
				v := float32(0)
				if col := jc + q*nr + j; col < jc+nc {
					if s.transB {
						v = s.b[col*s.ldb+pc+p]
					} else {
						v = s.b[(pc+p)*s.ldb+col]
					}
				}
				dst[q*kc*nr+p*nr+j] = v
			}
		}
	}
}

func TestSgemmSourceMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range gemmCases(!testing.Short()) {
		if tc.transA {
			continue // SgemmSource takes A as stored
		}
		o := makeOperands(tc, rng)
		want := append([]float32(nil), o.c...)
		refSgemm(false, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, want, o.ldc)
		tol := tolerances(tc, o, o.c)
		src := matrixSource{o.b, o.ldb, tc.transB}
		for _, kn := range testKernels() {
			for _, threads := range []int{1, 3} {
				got := append([]float32(nil), o.c...)
				p := params{m: tc.m, n: tc.n, k: tc.k, alpha: tc.alpha, a: o.a, lda: o.lda, bsrc: src,
					beta: tc.beta, c: got, ldc: o.ldc}
				if threads > 1 && tc.k > 0 && tc.alpha != 0 && tc.m > 0 && tc.n > 0 {
					runParallel(kn, &p, threads)
				} else {
					run(kn, &p, threads)
				}
				t.Run(fmt.Sprintf("%s/%s/threads=%d", kn.name, tc, threads), func(t *testing.T) { check(t, tc, o, tol, got, want) })
			}
		}
		got := append([]float32(nil), o.c...)
		SgemmSource(tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, src, tc.beta, got, o.ldc)
		t.Run("public/"+tc.String(), func(t *testing.T) { check(t, tc, o, tol, got, want) })
	}
}
