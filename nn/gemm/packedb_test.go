package gemm

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestPackedBMatchesReference runs every kernel's packed-B path over the
// cases of TestKernelsMatchReference that it computes (alpha 1, beta 0),
// on one thread and split over three, with an epilogue that must see every
// element of C exactly once.
func TestPackedBMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, tc := range gemmCases(!testing.Short()) {
		if tc.alpha != 1 || tc.beta != 0 {
			continue
		}
		o := makeOperands(tc, rng)
		want := append([]float32(nil), o.c...)
		refSgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, want, o.ldc)
		tol := tolerances(tc, o, o.c)
		for _, kn := range testKernels() {
			pb := packBWith(kn, tc.transB, tc.k, tc.n, o.b, o.ldb)
			for _, threads := range []int{1, 3} {
				t.Run(fmt.Sprintf("%s/%s/threads=%d", kn.name, tc, threads), func(t *testing.T) {
					SetThreads(threads)
					defer SetThreads(0)
					got := append([]float32(nil), o.c...)
					var mu sync.Mutex
					seen := make([]int, tc.m*tc.n)
					pb.SgemmEpilogue(tc.transA, tc.m, o.a, o.lda, got, o.ldc, func(i0, i1, j0, j1 int) {
						mu.Lock()
						defer mu.Unlock()
						for i := i0; i < i1; i++ {
							for j := j0; j < j1; j++ {
								seen[i*tc.n+j]++
							}
						}
					})
					check(t, tc, o, tol, got, want)
					for i, s := range seen {
						if s != 1 {
							t.Fatalf("epilogue saw C[%d][%d] %d times, want 1", i/tc.n, i%tc.n, s)
						}
					}
				})
			}
		}
	}
}

// TestPackedBPublic uses PackB as callers do, from several goroutines
// sharing one PackedB, and checks that PackB copied B, for products large
// enough to be split: by columns (wide C: a ViT layer at batch 1) and by
// rows (tall C).
func TestPackedBPublic(t *testing.T) {
	for _, tc := range []gemmCase{
		{transB: true, m: 197, n: 100, k: 300, alpha: 1, pad: 2},
		{transB: true, m: 197, n: 1000, k: 300, alpha: 1, pad: 1},
		{transA: true, m: 100, n: 770, k: 64, alpha: 1},
		{m: 700, n: 300, k: 200, alpha: 1, pad: 3},
	} {
		t.Run(tc.String(), func(t *testing.T) { packedBPublic(t, tc) })
	}
}

func packedBPublic(t *testing.T, tc gemmCase) {
	rng := rand.New(rand.NewPCG(23, 24))
	o := makeOperands(tc, rng)
	want := append([]float32(nil), o.c...)
	refSgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, want, o.ldc)
	tol := tolerances(tc, o, o.c)
	pb := PackB(tc.transB, tc.k, tc.n, o.b, o.ldb)
	if pb.Rows() != tc.k || pb.Cols() != tc.n {
		t.Fatalf("PackB shape %dx%d, want %dx%d", pb.Rows(), pb.Cols(), tc.k, tc.n)
	}
	clear(o.b) // the PackedB must not depend on B any more
	var wg sync.WaitGroup
	results := make([][]float32, 4)
	for g := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := append([]float32(nil), o.c...)
			pb.SgemmEpilogue(tc.transA, tc.m, o.a, o.lda, got, o.ldc, nil)
			results[g] = got
		}()
	}
	wg.Wait()
	for _, got := range results {
		check(t, tc, o, tol, got, want)
	}
}
