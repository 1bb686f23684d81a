//go:build netlib && cgo

package gemm

import (
	"sync/atomic"

	"github.com/ckptkit/ckpt/nn/gemm/internal/openblas"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/netlib/blas/netlib"
)

// With -tags netlib, Sgemm hands every product to OpenBLAS's cblas_sgemm
// through gonum.org/v1/netlib (Debian: apt-get install libopenblas-dev).
// OpenBLAS's own thread count follows Threads.
func init() { backend, backendName = netlibSgemm, "openblas" }

var openblasThreads atomic.Int64

func netlibSgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		// Our contract allows a zero stride for an empty operand; cblas
		// does not, and need not see it.
		scaleC(&params{m: m, n: n, beta: beta, c: c, ldc: ldc})
		return
	}
	if t := int64(Threads()); openblasThreads.Swap(t) != t {
		openblas.SetThreads(int(t))
	}
	tA, tB := blas.NoTrans, blas.NoTrans
	if transA {
		tA = blas.Trans
	}
	if transB {
		tB = blas.Trans
	}
	netlib.Implementation{}.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
