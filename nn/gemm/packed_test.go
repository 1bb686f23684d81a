package gemm

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestPackedAMatchesReference runs every kernel's packed-A path over the
// same cases as TestKernelsMatchReference, serially and split.
func TestPackedAMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, tc := range gemmCases(!testing.Short()) {
		o := makeOperands(tc, rng)
		want := append([]float32(nil), o.c...)
		refSgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, want, o.ldc)
		tol := tolerances(tc, o, o.c)
		for _, kn := range testKernels() {
			pa := packAWith(kn, tc.transA, tc.m, tc.k, o.a, o.lda)
			for _, threads := range []int{1, 3} {
				// directB: B's whole panels read in place by the strided
				// kernel, as SgemmEpilogue does for long rows.
				for _, direct := range []bool{false, true} {
					if direct && (kn.strided == nil || tc.transB) {
						continue
					}
					got := append([]float32(nil), o.c...)
					p := params{transB: tc.transB, m: tc.m, n: tc.n, k: tc.k, alpha: tc.alpha,
						b: o.b, ldb: o.ldb, beta: tc.beta, c: got, ldc: o.ldc, packedA: pa.data, mpad: pa.mpad, directB: direct}
					if threads > 1 && tc.k > 0 && tc.alpha != 0 && tc.m > 0 && tc.n > 0 {
						runParallel(kn, &p, threads)
					} else {
						run(kn, &p, threads)
					}
					t.Run(fmt.Sprintf("%s/%s/threads=%d/direct=%v", kn.name, tc, threads, direct), func(t *testing.T) {
						check(t, tc, o, tol, got, want)
					})
				}
			}
		}
	}
}

// TestPackedAPublic uses PackA and PackedA.Sgemm as callers do, from
// several goroutines sharing one PackedA, and checks that PackA copied A.
func TestPackedAPublic(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	tc := gemmCase{transA: true, m: 70, n: 90, k: 300, alpha: 1, beta: 0, pad: 2}
	o := makeOperands(tc, rng)
	want := append([]float32(nil), o.c...)
	refSgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, want, o.ldc)
	tol := tolerances(tc, o, o.c)
	pa := PackA(tc.transA, tc.m, tc.k, o.a, o.lda)
	if pa.Rows() != tc.m || pa.Cols() != tc.k {
		t.Fatalf("PackA shape %dx%d, want %dx%d", pa.Rows(), pa.Cols(), tc.m, tc.k)
	}
	a0 := append([]float32(nil), o.a...)
	clear(o.a) // the PackedA must not depend on A any more
	var wg sync.WaitGroup
	results := make([][]float32, 4)
	for g := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := append([]float32(nil), o.c...)
			pa.Sgemm(tc.transB, tc.n, tc.alpha, o.b, o.ldb, tc.beta, got, o.ldc)
			results[g] = got
		}()
	}
	wg.Wait()
	copy(o.a, a0)
	for g, got := range results {
		t.Run(fmt.Sprint("goroutine", g), func(t *testing.T) { check(t, tc, o, tol, got, want) })
	}
}

func TestPackedANoAllocs(t *testing.T) {
	defer SetThreads(0)
	const n = 200
	a := make([]float32, n*n)
	b := make([]float32, n*n)
	c := make([]float32, n*n)
	pa := PackA(false, n, n, a, n)
	for _, threads := range []int{1, 2} {
		SetThreads(threads)
		f := func() { pa.Sgemm(false, n, 1, b, n, 0, c, n) }
		f()
		if got := testing.AllocsPerRun(20, f); got != 0 {
			t.Errorf("threads=%d: got %v allocations per call, want 0", threads, got)
		}
	}
}

// TestPackAFor checks that PackAFor packs for the kernel Sgemm would pick
// for m×n (the kernels themselves are checked above) and that its product
// matches the reference.
func TestPackAFor(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for _, tc := range []gemmCase{
		{m: 256, n: 16, k: 72, alpha: 1},
		{m: 128, n: 49, k: 40, alpha: 1},
		{m: 64, n: 196, k: 64, alpha: 1},
	} {
		o := makeOperands(tc, rng)
		want := append([]float32(nil), o.c...)
		refSgemm(false, false, tc.m, tc.n, tc.k, 1, o.a, o.lda, o.b, o.ldb, 0, want, o.ldc)
		pa := PackAFor(false, tc.m, tc.k, o.a, o.lda, tc.n)
		if pa.kn != nil && pa.kn != pickKernel(tc.m, tc.n) {
			t.Errorf("%s: got kernel %s, want %s", tc, pa.kn.name, pickKernel(tc.m, tc.n).name)
		}
		got := append([]float32(nil), o.c...)
		pa.Sgemm(false, tc.n, 1, o.b, o.ldb, 0, got, o.ldc)
		check(t, tc, o, tolerances(tc, o, o.c), got, want)
	}
}

// TestSgemmEpilogueDirectB runs PackedA.SgemmEpilogue on products with rows
// long enough (n >= directBMinN) that it reads B's panels in place, a 1×1
// convolution's shapes with small k among them, with an epilogue that
// marks every element it is handed exactly once, against the reference.
func TestSgemmEpilogueDirectB(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, s := range []struct{ m, n, k int }{
		{16, 12544, 32}, {96, 3136, 16}, {24, 784, 144}, {37, directBMinN, 5}, {13, 1000, 300},
	} {
		tc := gemmCase{m: s.m, n: s.n, k: s.k, alpha: 1}
		o := makeOperands(tc, rng)
		want := append([]float32(nil), o.c...)
		refSgemm(false, false, tc.m, tc.n, tc.k, 1, o.a, o.lda, o.b, o.ldb, 0, want, o.ldc)
		tol := tolerances(tc, o, o.c)
		pa := PackA(false, tc.m, tc.k, o.a, o.lda)
		got := append([]float32(nil), o.c...)
		seen := make([]int32, tc.m*tc.n)
		var mu sync.Mutex
		pa.SgemmEpilogue(false, tc.n, o.b, o.ldb, got, o.ldc, func(i0, i1, j0, j1 int) {
			mu.Lock()
			defer mu.Unlock()
			for i := i0; i < i1; i++ {
				for j := j0; j < j1; j++ {
					seen[i*tc.n+j]++
				}
			}
		})
		t.Run(tc.String(), func(t *testing.T) {
			check(t, tc, o, tol, got, want)
			for i, v := range seen {
				if v != 1 {
					t.Fatalf("element %d handed to the epilogue %d times, want 1", i, v)
				}
			}
		})
	}
}
