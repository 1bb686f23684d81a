package gemm

// BSource supplies the right operand of [SgemmSource] without it being
// stored as a matrix: the product asks for it one packed block at a time, so
// an operand derived from other data (the image columns of a convolution)
// never has to exist whole.
type BSource interface {
	// PackB writes rows [pc, pc+kc) and columns [jc, jc+nc) of the k×n
	// operand into dst as ceil(nc/nr) panels of kc×nr, element (p, j) of
	// panel q at dst[q*kc*nr+p*nr+j], the columns of the last panel past nc
	// set to zero. dst holds at least ceil(nc/nr)*kc*nr floats. PackB is
	// called concurrently for disjoint blocks and must not keep dst.
	PackB(nr, pc, kc, jc, nc int, dst []float32)
}

// SgemmSource computes C = alpha*A*B + beta*C, where A is m×k (row-major,
// stride lda), B is the k×n operand b supplies, and C is m×n (stride ldc),
// with the conventions of [Sgemm]: C is not read when beta is 0, and
// argument errors panic. It is what [Sgemm] does with B packed from b
// instead of from a matrix.
func SgemmSource(m, n, k int, alpha float32, a []float32, lda int, b BSource, beta float32, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic("gemm: negative dimension")
	}
	checkMat("A", a, m, k, lda)
	checkMat("C", c, m, n, ldc)
	if backend != nil {
		// The backend multiplies stored matrices: one panel n wide is B
		// itself, row-major.
		bm := make([]float32, k*n)
		if k > 0 && n > 0 {
			b.PackB(n, 0, k, 0, n, bm)
		}
		backend(false, false, m, n, k, alpha, a, lda, bm, max(n, 1), beta, c, ldc)
		return
	}
	p := params{m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, bsrc: b, beta: beta, c: c, ldc: ldc}
	run(pickKernel(m, n), &p, Threads())
}
