package gemm

import (
	"math/rand/v2"
	"testing"
)

// TestSgemmSmallMatchesReference runs SgemmSmall on every case Sgemm is
// tested on (transposes, alpha and beta, strided rows, tile edges, and
// operands too large to pack whole, which go to Sgemm) plus the attention
// shapes it is for, with one Small reused across all of them, as attention
// reuses it: scratch left over from a larger call must not leak in.
func TestSgemmSmallMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cs := gemmCases(!testing.Short())
	for _, s := range [][3]int{{49, 49, 32}, {49, 32, 49}, {64, 64, 32}, {64, 32, 64}, {197, 197, 64}, {144, 144, 32}} {
		for tr := range 4 {
			cs = append(cs, gemmCase{transA: tr&1 != 0, transB: tr&2 != 0, m: s[0], n: s[1], k: s[2], alpha: 0.125, beta: 0, pad: 5})
		}
	}
	var s Small
	for _, tc := range cs {
		o := makeOperands(tc, rng)
		want := append([]float32(nil), o.c...)
		refSgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, want, o.ldc)
		tol := tolerances(tc, o, o.c)
		got := append([]float32(nil), o.c...)
		SgemmSmall(&s, tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, got, o.ldc)
		t.Run(tc.String(), func(t *testing.T) { check(t, tc, o, tol, got, want) })
	}
}
