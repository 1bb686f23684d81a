package nn

import (
	"fmt"
	"runtime"

	"github.com/ckptkit/ckpt/nn/gemm"
	"github.com/ckptkit/ckpt/nn/internal/par"
)

// BatchedMatMul returns op(a)·op(b) for each matrix of a batch, where op(x)
// is x or, when its flag is set, x's transpose over its last two dimensions,
// read in place (no transposed copy is made). a is [..., m, k] ([..., k, m]
// when transA); b is [..., k, n] ([..., n, k] when transB) with the same
// leading dimensions as a, or a single matrix shared by the whole batch. The
// result is [..., m, n]. It is torch.matmul(a, b.transpose(-2, -1)) and its
// relatives, with a backward for both operands.
func BatchedMatMul(a, b *Tensor, transA, transB bool) *Tensor {
	return batchedMatMul(a, b, transA, transB, 1)
}

// batchedMatMul is BatchedMatMul scaled by alpha (folded into the product).
func batchedMatMul(a, b *Tensor, transA, transB bool, alpha float32) *Tensor {
	if a.Dim() < 2 || b.Dim() < 2 {
		shapeErr("BatchedMatMul", "operands need at least 2 dimensions", a.shape, b.shape)
	}
	ar, ac := a.shape[a.Dim()-2], a.shape[a.Dim()-1]
	br, bc := b.shape[b.Dim()-2], b.shape[b.Dim()-1]
	m, k := ar, ac
	if transA {
		m, k = ac, ar
	}
	k2, n := br, bc
	if transB {
		k2, n = bc, br
	}
	if k != k2 {
		shapeErr("BatchedMatMul", fmt.Sprintf("inner dimensions differ (%d, %d)", k, k2), a.shape, b.shape)
	}
	lead := a.shape[:a.Dim()-2]
	shared := b.Dim() == 2
	if !shared && !sameShape(lead, b.shape[:b.Dim()-2]) {
		shapeErr("BatchedMatMul", "batch dimensions differ", a.shape, b.shape)
	}
	batch := numel(lead)
	outShape := append(cloneInts(lead), m, n)
	out := newResult(outShape, a, b)
	lda, ldb := ac, bc
	sa, sb, sc := m*k, k*n, m*n
	if shared {
		sb = 0
	}
	if m > 0 && n > 0 {
		batchGemm(batch, m*n*k, func(i int) {
			gemm.Sgemm(transA, transB, m, n, k, alpha, a.data[i*sa:], max(lda, 1), b.data[i*sb:], max(ldb, 1), 0, out.data[i*sc:], n)
		})
	}
	if !needGrad(a, b) {
		return out
	}
	return record(out, "BmmBackward", []*Tensor{a, b}, func(g []float32) [][]float32 {
		var ga, gb []float32
		if a.requiresGrad {
			ga = make([]float32, len(a.data))
			if k > 0 && m > 0 {
				batchGemm(batch, m*n*k, func(i int) {
					gi, bi, dst := g[i*sc:], b.data[i*sb:], ga[i*sa:]
					if !transA { // dA = G·op(B)ᵀ, m×k
						gemm.Sgemm(false, !transB, m, k, n, alpha, gi, max(n, 1), bi, max(ldb, 1), 0, dst, max(k, 1))
					} else { // dA = op(B)·Gᵀ, k×m
						gemm.Sgemm(transB, true, k, m, n, alpha, bi, max(ldb, 1), gi, max(n, 1), 0, dst, max(m, 1))
					}
				})
			}
		}
		if b.requiresGrad {
			gb = make([]float32, len(b.data))
			if k > 0 && n > 0 {
				// A shared B sums the gradients of every batch element, one
				// after the other (they write the same matrix).
				each := batchGemm
				if shared {
					each = func(batch, _ int, f func(i int)) {
						for i := range batch {
							f(i)
						}
					}
				}
				each(batch, m*n*k, func(i int) {
					gi, ai, dst := g[i*sc:], a.data[i*sa:], gb[i*sb:]
					beta := float32(0)
					if shared && i > 0 {
						beta = 1
					}
					if !transB { // dB = op(A)ᵀ·G, k×n
						gemm.Sgemm(!transA, false, k, n, m, alpha, ai, max(lda, 1), gi, max(n, 1), beta, dst, max(n, 1))
					} else { // dB = Gᵀ·op(A), n×k
						gemm.Sgemm(true, transA, n, k, m, alpha, gi, max(n, 1), ai, max(lda, 1), beta, dst, max(k, 1))
					}
				})
			}
		}
		return [][]float32{ga, gb}
	})
}

// batchGemmMin is the number of multiply-adds per product below which the
// products of a batch are spread over goroutines rather than left to gemm's
// own threading (which does not split small products).
const batchGemmMin = 1 << 20

// batchGemm calls f(i) for i in [0, batch), in parallel over GOMAXPROCS
// goroutines when each product is small and there are several.
func batchGemm(batch, work int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), batch)
	if workers <= 1 || work >= batchGemmMin {
		for i := range batch {
			f(i)
		}
		return
	}
	par.Do(batch, f) // claimed one product at a time
}
