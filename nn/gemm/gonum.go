package gemm

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Implementation is a gonum blas.Float32 whose Sgemm is this package's
// kernel; every other routine is gonum's native Go implementation. After
//
//	blas32.Use(gemm.Implementation{})
//
// gonum's blas32 package, and code built on it, multiplies matrices here.
// Like gonum's BLAS it is row-major.
type Implementation struct {
	gonum.Implementation
}

var _ blas.Float32 = Implementation{}

// Sgemm computes C = alpha*op(A)*op(B) + beta*C with gonum's argument
// conventions: tA and tB are blas.NoTrans, blas.Trans or blas.ConjTrans
// (the same as Trans for real matrices), and bad arguments panic with
// gonum's blas messages.
func (Implementation) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	transA, transB := isTrans(tA), isTrans(tB)
	switch {
	case m < 0:
		panic("blas: m < 0")
	case n < 0:
		panic("blas: n < 0")
	case k < 0:
		panic("blas: k < 0")
	case transA && lda < max(1, m), !transA && lda < max(1, k):
		panic("blas: bad leading dimension of A")
	case transB && ldb < max(1, k), !transB && ldb < max(1, n):
		panic("blas: bad leading dimension of B")
	case ldc < max(1, n):
		panic("blas: bad leading dimension of C")
	}
	if m == 0 || n == 0 {
		return
	}
	if (transA && len(a) < (k-1)*lda+m) || (!transA && len(a) < (m-1)*lda+k) {
		panic("blas: insufficient length of a")
	}
	if (transB && len(b) < (n-1)*ldb+k) || (!transB && len(b) < (k-1)*ldb+n) {
		panic("blas: insufficient length of b")
	}
	if len(c) < (m-1)*ldc+n {
		panic("blas: insufficient length of c")
	}
	if (alpha == 0 || k == 0) && beta == 1 {
		return
	}
	Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func isTrans(t blas.Transpose) bool {
	switch t {
	case blas.NoTrans:
		return false
	case blas.Trans, blas.ConjTrans:
		return true
	}
	panic("blas: illegal transpose")
}
