package gemm

// Small is the scratch of [SgemmSmall]: the packed operands and an edge
// tile, grown on demand and reused from call to call. The zero value is
// ready to use; one Small must not be used by two goroutines at once.
type Small struct {
	a, b, tile []float32
}

// smallMax is the most floats of packed A plus packed B that SgemmSmall
// packs whole; larger products go to Sgemm, whose blocking keeps its
// panels in cache (64K floats, 256 KiB, fits the L2 of any recent core).
const smallMax = 1 << 16

// SgemmSmall computes C = alpha*op(A)*op(B) + beta*C exactly as [Sgemm]
// does (same arguments, same checks, the same micro-kernels), for the
// small products that attention does by the thousand (Swin's 49×49×32 per
// window and head): it packs each operand once, whole, into s, and runs
// the tiles on the calling goroutine, without Sgemm's workspace pool,
// cache blocking and thread dispatch, which cost as much as the
// arithmetic at these sizes. Products whose packed operands exceed 64K
// floats, or a build with a BLAS backend, go to Sgemm.
func SgemmSmall(s *Small, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	kn := pickKernel(m, n)
	mpad := (m + kn.mr - 1) / kn.mr * kn.mr
	npad := (n + kn.nr - 1) / kn.nr * kn.nr
	if backend != nil || k == 0 || alpha == 0 || (mpad+npad)*k > smallMax {
		Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	s.a = grow(s.a, mpad*k)
	s.b = grow(s.b, npad*k)
	s.tile = grow(s.tile, kn.mr*kn.nr)
	p := params{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
		a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc}
	packA(&p, kn.mr, 0, m, 0, k, s.a)
	packB(&p, kn.nr, 0, k, 0, n, s.b)
	mr, nr := kn.mr, kn.nr
	for jr := 0; jr < n; jr += nr {
		nrr := min(nr, n-jr)
		bp := &s.b[jr*k]
		for ir := 0; ir < m; ir += mr {
			mrr := min(mr, m-ir)
			ap := &s.a[ir*k]
			ci := ir*ldc + jr
			switch {
			case mrr == mr && nrr == nr:
				kn.fn(k, ap, bp, &c[ci], ldc, alpha, beta)
			case kn.edge != nil:
				kn.edge(k, ap, bp, &c[ci], ldc, alpha, beta, mrr, nrr)
			default:
				kn.fn(k, ap, bp, &s.tile[0], nr, alpha, 0)
				for i := range mrr {
					row := c[ci+i*ldc : ci+i*ldc+nrr]
					t := s.tile[i*nr : i*nr+nrr]
					if beta == 0 {
						copy(row, t)
						continue
					}
					for j, v := range t {
						row[j] = v + beta*row[j]
					}
				}
			}
		}
	}
}

// grow returns x with at least n elements, reallocated only when too short.
func grow(x []float32, n int) []float32 {
	if cap(x) < n {
		return make([]float32, n)
	}
	return x[:n]
}
