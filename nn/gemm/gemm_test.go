package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// testKernels returns every kernel this CPU runs, each also with tiny cache
// blocks so that the mc, kc and nc loop edges are exercised by small shapes.
func testKernels() []*kernel {
	var ks []*kernel
	for _, kn := range kernels {
		ks = append(ks, kn)
		small := *kn
		small.name += "/small-blocks"
		small.mc, small.kc, small.nc = 2*kn.mr, 7, 2*kn.nr
		ks = append(ks, &small)
	}
	return ks
}

type gemmCase struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	pad            int // extra elements at the end of each row of A, B, C
}

func (tc gemmCase) String() string {
	return fmt.Sprintf("tA=%v,tB=%v,%dx%dx%d,alpha=%g,beta=%g,pad=%d",
		tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, tc.beta, tc.pad)
}

// operands are the inputs of one case; row padding of A and B holds NaN,
// which must never be read, and row padding of C holds a sentinel that must
// never be written.
type operands struct {
	a, b, c       []float32
	lda, ldb, ldc int
}

const sentinel = -12345

func makeOperands(tc gemmCase, rng *rand.Rand) operands {
	ar, ac := tc.m, tc.k
	if tc.transA {
		ar, ac = tc.k, tc.m
	}
	br, bc := tc.k, tc.n
	if tc.transB {
		br, bc = tc.n, tc.k
	}
	fill := func(rows, cols, ld int, pad float32) []float32 {
		x := make([]float32, rows*ld)
		for i := range rows {
			for j := range ld {
				if j < cols {
					x[i*ld+j] = float32(rng.Float64()*2 - 1)
				} else {
					x[i*ld+j] = pad
				}
			}
		}
		return x
	}
	nan := float32(math.NaN())
	o := operands{lda: ac + tc.pad, ldb: bc + tc.pad, ldc: tc.n + tc.pad}
	o.a = fill(ar, ac, o.lda, nan)
	o.b = fill(br, bc, o.ldb, nan)
	o.c = fill(tc.m, tc.n, o.ldc, sentinel)
	if tc.beta == 0 {
		// C must not be read: a NaN in it would show in the result.
		for i := range tc.m {
			for j := range tc.n {
				o.c[i*o.ldc+j] = nan
			}
		}
	}
	return o
}

// tolerance bounds |got-want| for element (i, j). Any order of summing k
// float32 products has an error of at most gamma_k*sum|a||b| with
// gamma_k = k*u/(1-k*u) ~ k*u, u = 2^-24 (Higham, Accuracy and Stability,
// §3.1); the reference and the kernel both err by that much, in different
// orders (blocked, FMA), so the difference is at most 2*gamma_k*sum|a||b|
// scaled by |alpha|, plus a few roundings of the alpha and beta terms.
// The factor 2 more covers the final scaling; 1e-30 absolute keeps exact
// zeros from demanding exact equality of denormals.
func tolerance(tc gemmCase, o operands, c0 []float32, i, j int) float64 {
	var s float64
	for p := 0; p < tc.k; p++ {
		var av, bv float32
		if tc.transA {
			av = o.a[p*o.lda+i]
		} else {
			av = o.a[i*o.lda+p]
		}
		if tc.transB {
			bv = o.b[j*o.ldb+p]
		} else {
			bv = o.b[p*o.ldb+j]
		}
		s += math.Abs(float64(av) * float64(bv))
	}
	const u = 1.0 / (1 << 24)
	t := 4 * float64(tc.k+2) * u * math.Abs(float64(tc.alpha)) * s
	if tc.beta != 0 {
		t += 4 * u * math.Abs(float64(tc.beta)*float64(c0[i*o.ldc+j]))
	}
	return t + 1e-30
}

// tolerances returns tolerance(i, j) for the m×n result, row-major.
func tolerances(tc gemmCase, o operands, c0 []float32) []float64 {
	tol := make([]float64, tc.m*tc.n)
	for i := range tc.m {
		for j := range tc.n {
			tol[i*tc.n+j] = tolerance(tc, o, c0, i, j)
		}
	}
	return tol
}

// check compares got with want over the m×n result, within tol (from
// tolerances), and verifies the padding of C was not written.
func check(t *testing.T, tc gemmCase, o operands, tol []float64, got, want []float32) {
	t.Helper()
	bad := 0
	for i := range tc.m {
		for j := 0; j < o.ldc; j++ {
			g := got[i*o.ldc+j]
			if j >= tc.n {
				if g != sentinel {
					t.Fatalf("C[%d][%d] (row padding) = %g, want untouched %d", i, j, g, sentinel)
				}
				continue
			}
			w := want[i*o.ldc+j]
			d := math.Abs(float64(g) - float64(w))
			if math.IsNaN(float64(g)) || d > tol[i*tc.n+j] {
				t.Errorf("C[%d][%d]: got %g, want %g (diff %g, tol %g)", i, j, g, w, d, tol[i*tc.n+j])
				if bad++; bad > 5 {
					t.FailNow()
				}
			}
		}
	}
}

func gemmCases(withBig bool) []gemmCase {
	type shape struct{ m, n, k int }
	shapes := []shape{
		{1, 1, 1}, {0, 5, 3}, {5, 0, 3}, {4, 5, 0}, {1, 7, 1}, {7, 1, 5},
		{7, 11, 13}, {17, 19, 23}, {31, 37, 41},
	}
	// Edges of every kernel's register tile.
	for _, kn := range kernels {
		shapes = append(shapes,
			shape{kn.mr, kn.nr, 1}, shape{kn.mr - 1, kn.nr + 1, 5},
			shape{kn.mr + 1, kn.nr - 1, 9}, shape{2*kn.mr + 3, 3*kn.nr + 5, 19})
	}
	ab := [][2]float32{{1, 0}, {0.5, -1.5}, {1, 1}, {0, 2}, {0, 0}, {-2, 0}}
	var cs []gemmCase
	for _, s := range shapes {
		for tr := range 4 {
			for _, x := range ab {
				pad := 0
				if (s.m+s.n+s.k+tr)%2 == 1 {
					pad = 3
				}
				cs = append(cs, gemmCase{transA: tr&1 != 0, transB: tr&2 != 0,
					m: s.m, n: s.n, k: s.k, alpha: x[0], beta: x[1], pad: pad})
			}
		}
	}
	if withBig {
		// Larger than the default blocks in every direction of some kernel.
		for _, s := range []shape{{37, 53, 257}, {211, 97, 300}, {61, 4133, 67}, {401, 150, 520}} {
			for tr := range 4 {
				cs = append(cs, gemmCase{transA: tr&1 != 0, transB: tr&2 != 0,
					m: s.m, n: s.n, k: s.k, alpha: 0.75, beta: -0.5, pad: 1})
			}
		}
	}
	return cs
}

func TestKernelsMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range gemmCases(!testing.Short()) {
		o := makeOperands(tc, rng)
		want := append([]float32(nil), o.c...)
		refSgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, want, o.ldc)
		tol := tolerances(tc, o, o.c)
		for _, kn := range testKernels() {
			for _, threads := range []int{1, 3} {
				name := fmt.Sprintf("%s/%s/threads=%d", kn.name, tc, threads)
				got := append([]float32(nil), o.c...)
				p := params{transA: tc.transA, transB: tc.transB, m: tc.m, n: tc.n, k: tc.k,
					alpha: tc.alpha, a: o.a, lda: o.lda, b: o.b, ldb: o.ldb, beta: tc.beta, c: got, ldc: o.ldc}
				if threads > 1 && tc.k > 0 && tc.alpha != 0 && tc.m > 0 && tc.n > 0 {
					runParallel(kn, &p, threads) // regardless of size
				} else {
					run(kn, &p, threads)
				}
				t.Run(name, func(t *testing.T) { check(t, tc, o, tol, got, want) })
			}
		}
	}
}

func TestSgemmPublic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	defer SetThreads(0)
	for _, threads := range []int{1, 2} {
		SetThreads(threads)
		if got := Threads(); got != threads {
			t.Fatalf("Threads() = %d after SetThreads(%d)", got, threads)
		}
		for _, tc := range []gemmCase{
			{m: 129, n: 130, k: 131, alpha: 1, beta: 0},
			{transA: true, transB: true, m: 200, n: 64, k: 90, alpha: 2, beta: 0.5, pad: 2},
		} {
			o := makeOperands(tc, rng)
			want := append([]float32(nil), o.c...)
			got := append([]float32(nil), o.c...)
			refSgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, want, o.ldc)
			Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, got, o.ldc)
			tol := tolerances(tc, o, o.c)
			t.Run(fmt.Sprintf("threads=%d/%s", threads, tc), func(t *testing.T) { check(t, tc, o, tol, got, want) })
		}
	}
}

// TestAlphaZeroDoesNotReadAB checks the BLAS convention that A and B are
// not referenced when alpha is 0: NaNs in them must not reach C.
func TestAlphaZeroDoesNotReadAB(t *testing.T) {
	nan := float32(math.NaN())
	a := []float32{nan, nan, nan, nan}
	b := []float32{nan, nan, nan, nan}
	for _, kn := range kernels {
		c := []float32{1, 2, 3, 4}
		run(kn, &params{m: 2, n: 2, k: 2, a: a, lda: 2, b: b, ldb: 2, beta: 3, c: c, ldc: 2}, 1)
		want := []float32{3, 6, 9, 12}
		for i := range c {
			if c[i] != want[i] {
				t.Errorf("%s: C[%d] = %g, want %g", kn.name, i, c[i], want[i])
			}
		}
	}
}

func TestSgemmPanicsOnBadArguments(t *testing.T) {
	s := make([]float32, 6)
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"negative m", func() { Sgemm(false, false, -1, 2, 2, 1, s, 2, s, 2, 0, s, 2) }},
		{"negative k", func() { Sgemm(false, false, 2, 2, -1, 1, s, 2, s, 2, 0, s, 2) }},
		{"lda too small", func() { Sgemm(false, false, 2, 2, 3, 1, s, 2, s, 2, 0, s, 2) }},
		{"ldb too small transposed", func() { Sgemm(false, true, 2, 3, 2, 1, s, 2, s, 1, 0, s, 3) }},
		{"A too short", func() { Sgemm(false, false, 4, 1, 2, 1, s, 2, s, 1, 0, s, 1) }},
		{"C too short", func() { Sgemm(false, false, 2, 4, 1, 1, s, 1, s, 4, 0, s, 4) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("got no panic, want one")
				}
			}()
			tc.f()
		})
	}
}

// TestSgemmConcurrent runs many calls at once, small and large enough to be
// split, each checked against the reference; run it with -race.
func TestSgemmConcurrent(t *testing.T) {
	const goroutines = 6
	var wg sync.WaitGroup
	errs := make(chan string, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for it := range 8 {
				tc := gemmCase{transA: it&1 != 0, transB: g&1 != 0,
					m: 5 + rng.IntN(70), n: 5 + rng.IntN(90), k: 1 + rng.IntN(80), alpha: 1, beta: 0.5}
				o := makeOperands(tc, rng)
				want := append([]float32(nil), o.c...)
				got := append([]float32(nil), o.c...)
				refSgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, want, o.ldc)
				Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, got, o.ldc)
				for i := range tc.m {
					for j := range tc.n {
						x := i*o.ldc + j
						if d := math.Abs(float64(got[x] - want[x])); !(d <= tolerance(tc, o, o.c, i, j)) {
							errs <- fmt.Sprintf("%s: C[%d][%d] got %g, want %g", tc, i, j, got[x], want[x])
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestSgemmNoAllocs checks the steady state: once buffers exist, a call,
// serial or split over goroutines, allocates nothing.
func TestSgemmNoAllocs(t *testing.T) {
	defer SetThreads(0)
	const n = 200 // above parallelMinWork
	a := make([]float32, n*n)
	b := make([]float32, n*n)
	c := make([]float32, n*n)
	for _, threads := range []int{1, 2} {
		SetThreads(threads)
		f := func() { Sgemm(false, true, n, n, n, 1, a, n, b, n, 0, c, n) }
		f()
		if got := testing.AllocsPerRun(20, f); got != 0 {
			t.Errorf("threads=%d: got %v allocations per call, want 0", threads, got)
		}
	}
}

// TestPickKernelLeastPadding checks that pickKernel picks the kernel of
// the fastest instruction set whose padded area, weighed by its cost, is
// least.
func TestPickKernelLeastPadding(t *testing.T) {
	area := func(kn *kernel, m, n int) float64 {
		a := float64((m + kn.mr - 1) / kn.mr * kn.mr * ((n + kn.nr - 1) / kn.nr * kn.nr))
		if kn.cost > 0 {
			a *= kn.cost
		}
		return a
	}
	for _, s := range [][2]int{{1, 1}, {64, 12544}, {512, 49}, {256, 196}, {256, 16}, {1024, 1024}, {13, 1000}} {
		got := pickKernel(s[0], s[1])
		if got.isa != kernels[0].isa {
			t.Errorf("pickKernel(%d, %d) = %s, want a %s kernel", s[0], s[1], got.name, kernels[0].isa)
		}
		for _, kn := range kernels {
			if kn.isa == got.isa && area(kn, s[0], s[1]) < area(got, s[0], s[1]) {
				t.Errorf("pickKernel(%d, %d) = %s, but %s pads less for its cost", s[0], s[1], got.name, kn.name)
			}
		}
	}
}

// TestParallelChunks splits products into more strips than goroutines, as
// a loaded machine makes them claim unevenly.
func TestParallelChunks(t *testing.T) {
	defer func(c int) { chunksPerThread = c }(chunksPerThread)
	chunksPerThread = 3
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []gemmCase{
		{m: 100, n: 37, k: 50, alpha: 1, beta: 0},
		{transB: true, m: 30, n: 333, k: 20, alpha: -1, beta: 2, pad: 1},
	} {
		o := makeOperands(tc, rng)
		want := append([]float32(nil), o.c...)
		refSgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, want, o.ldc)
		tol := tolerances(tc, o, o.c)
		for _, kn := range kernels {
			got := append([]float32(nil), o.c...)
			runParallel(kn, &params{transA: tc.transA, transB: tc.transB, m: tc.m, n: tc.n, k: tc.k,
				alpha: tc.alpha, a: o.a, lda: o.lda, b: o.b, ldb: o.ldb, beta: tc.beta, c: got, ldc: o.ldc}, 2)
			t.Run(kn.name+"/"+tc.String(), func(t *testing.T) { check(t, tc, o, tol, got, want) })
		}
	}
}

func TestKernelName(t *testing.T) {
	want := kernels[0].isa
	if backend != nil {
		want = "openblas"
	}
	if got := Kernel(); got != want {
		t.Errorf("Kernel() = %q, want %q", got, want)
	}
}
