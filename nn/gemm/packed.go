package gemm

import "fmt"

// PackedA is a left operand op(A) packed once for many products, such as a
// layer's weights multiplied by every input: [PackedA.Sgemm] then skips the
// packing of A that [Sgemm] does on every call, which is most of the cost
// of products with few columns (ResNet-18's last layers, where A has
// 512×4608 floats and B 49 columns). A PackedA is a copy: later changes to
// the slice it was packed from do not reach it. It is safe for concurrent
// use. Make one with PackA; the zero PackedA is not usable.
type PackedA struct {
	m, k int
	kn   *kernel
	mpad int       // m rounded up to kn.mr
	data []float32 // the packed blocks (native) or op(A) row-major (backend)
}

// PackA packs op(A), m×k, for [PackedA.Sgemm]. transA and lda are as for
// [Sgemm]: A is stored k×m when transA is set. PackA panics on bad
// arguments, as Sgemm does.
func PackA(transA bool, m, k int, a []float32, lda int) *PackedA {
	return PackAFor(transA, m, k, a, lda, 0)
}

// PackAFor is [PackA] for products of about n columns (0: not known): the
// micro-kernel it packs for is the one whose tiles pad m×n least, as
// [Sgemm] would choose it, where PackA weighs m alone. With 16 columns, the
// 4×4 tiles of a 14×14 image that a Winograd layer multiplies, a 24×16 tile
// does half the work of a 12×32 one.
func PackAFor(transA bool, m, k int, a []float32, lda int, n int) *PackedA {
	if m < 0 || k < 0 {
		panic(fmt.Sprintf("gemm: negative dimension m=%d k=%d", m, k))
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	checkMat("A", a, ar, ac, lda)
	if backend != nil {
		// The backend multiplies unpacked matrices: keep op(A) compact.
		return &PackedA{m: m, k: k, data: compactOp(transA, m, k, a, lda)}
	}
	kn := kernelForPackA(m)
	if n > 0 {
		kn = pickKernel(m, n)
	}
	return packAWith(kn, transA, m, k, a, lda)
}

// kernelForPackA chooses the kernel a PackedA is packed for, without the n
// that pickKernel weighs: the first kernel, the best all-round tile, unless
// its rows pad m by more than 5%; then the kernel that pads m least. (An
// 8×48 tile suits m = 64 and its long rows of pixels, but would waste half
// its work on the 49 columns of ResNet's last layers, where m = 512.)
func kernelForPackA(m int) *kernel {
	pad := func(kn *kernel) int { return (m + kn.mr - 1) / kn.mr * kn.mr }
	best := kernels[0]
	if 20*(pad(best)-m) <= m {
		return best
	}
	for _, kn := range kernels {
		if kn.isa == best.isa && pad(kn) < pad(best) {
			best = kn
		}
	}
	return best
}

// packAWith packs op(A) for kernel kn.
func packAWith(kn *kernel, transA bool, m, k int, a []float32, lda int) *PackedA {
	mpad := (m + kn.mr - 1) / kn.mr * kn.mr
	pa := &PackedA{m: m, k: k, kn: kn, mpad: mpad, data: make([]float32, mpad*k)}
	p := params{transA: transA, m: m, k: k, a: a, lda: lda}
	for pc := 0; pc < k; pc += kn.kc {
		kc := min(kn.kc, k-pc)
		packA(&p, kn.mr, 0, m, pc, kc, pa.data[pc*mpad:])
	}
	return pa
}

// Rows reports the number of rows of op(A), m.
func (pa *PackedA) Rows() int { return pa.m }

// Cols reports the number of columns of op(A), k.
func (pa *PackedA) Cols() int { return pa.k }

// Sgemm computes C = alpha*op(A)*op(B) + beta*C with op(A) the packed
// matrix (m×k), op(B) k×n and C m×n, with the arguments and conventions of
// [Sgemm] (B is stored n×k when transB is set; C is not read when beta is
// 0).
func (pa *PackedA) Sgemm(transB bool, n int, alpha float32, b []float32, ldb int, beta float32, c []float32, ldc int) {
	pa.SgemmThreads(Threads(), transB, n, alpha, b, ldb, beta, c, ldc)
}

// SgemmThreads is [PackedA.Sgemm] split over at most threads goroutines,
// the caller included: 1 runs it on the calling goroutine alone, for a
// caller that already keeps every core busy with products of its own.
func (pa *PackedA) SgemmThreads(threads int, transB bool, n int, alpha float32, b []float32, ldb int, beta float32, c []float32, ldc int) {
	m, k := pa.m, pa.k
	checkArgs(false, transB, m, n, k, pa.data, k, b, ldb, c, ldc)
	if pa.kn == nil {
		backend(false, transB, m, n, k, alpha, pa.data, max(k, 1), b, ldb, beta, c, ldc)
		return
	}
	p := params{transB: transB, m: m, n: n, k: k, alpha: alpha,
		b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, packedA: pa.data, mpad: pa.mpad}
	run(pa.kn, &p, max(threads, 1))
}

// Epilogue finishes a block of C, rows [i0, i1) and columns [j0, j1), once
// every product term of it has been summed: a bias, a residual and an
// activation applied while the block is still in cache, instead of in a
// pass of their own over the whole output. It is called once for each
// block, the blocks partitioning C, concurrently for disjoint blocks.
type Epilogue func(i0, i1, j0, j1 int)

// SgemmEpilogue computes C = op(A)*op(B) with op(A) the packed matrix, as
// [PackedA.Sgemm] with alpha 1 and beta 0 (C is not read), then runs epi
// on every block of C (nil: none).
func (pa *PackedA) SgemmEpilogue(transB bool, n int, b []float32, ldb int, c []float32, ldc int, epi Epilogue) {
	m, k := pa.m, pa.k
	checkArgs(false, transB, m, n, k, pa.data, k, b, ldb, c, ldc)
	if pa.kn == nil {
		backend(false, transB, m, n, k, 1, pa.data, max(k, 1), b, ldb, 0, c, ldc)
		if epi != nil && m > 0 && n > 0 {
			epi(0, m, 0, n)
		}
		return
	}
	p := params{transB: transB, m: m, n: n, k: k, alpha: 1,
		b: b, ldb: ldb, c: c, ldc: ldc, packedA: pa.data, mpad: pa.mpad, epi: epi}
	p.directB = directBOK && !transB && pa.kn.strided != nil && n >= directBMinN
	run(pa.kn, &p, Threads())
}

// SgemmSourceEpilogue computes C = op(A)*B with op(A) the packed matrix and
// B the k×n operand b supplies (see [SgemmSource]), C m×n with stride ldc
// (not read), then runs epi on every block of C (nil: none).
func (pa *PackedA) SgemmSourceEpilogue(n int, b BSource, c []float32, ldc int, epi Epilogue) {
	m, k := pa.m, pa.k
	if n < 0 {
		panic("gemm: negative dimension")
	}
	checkMat("C", c, m, n, ldc)
	if pa.kn == nil {
		bm := make([]float32, k*n)
		if k > 0 && n > 0 {
			b.PackB(n, 0, k, 0, n, bm)
		}
		backend(false, false, m, n, k, 1, pa.data, max(k, 1), bm, max(n, 1), 0, c, ldc)
		if epi != nil && m > 0 && n > 0 {
			epi(0, m, 0, n)
		}
		return
	}
	p := params{m: m, n: n, k: k, alpha: 1, bsrc: b, c: c, ldc: ldc, packedA: pa.data, mpad: pa.mpad, epi: epi}
	run(pa.kn, &p, Threads())
}

// directBMinN is the fewest columns for which [PackedA.SgemmEpilogue]
// reads B's panels in place instead of packing them: a 1×1 convolution's
// image, whose rows are the pixels, is already laid out as the strided
// kernels read it, so packing it is a copy that buys nothing but
// sequential loads. directBOK turns it off (tests, benchmarks).
var (
	directBMinN = 256
	directBOK   = true
)

// compactOp returns op(X), rows×cols, row-major without padding: X itself
// (leading dimension ld), or its transpose when trans is set (X stored
// cols×rows). It is what PackA and PackB keep for a backend, which
// multiplies unpacked matrices.
func compactOp(trans bool, rows, cols int, x []float32, ld int) []float32 {
	d := make([]float32, rows*cols)
	for i := range rows {
		for j := range cols {
			if trans {
				d[i*cols+j] = x[j*ld+i]
			} else {
				d[i*cols+j] = x[i*ld+j]
			}
		}
	}
	return d
}
