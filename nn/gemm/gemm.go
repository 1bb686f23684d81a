package gemm

import "fmt"

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major matrices, where
// op(X) is X or its transpose. op(A) is m×k, op(B) is k×n and C is m×n;
// lda, ldb and ldc are the row strides of A, B and C as stored (A is stored
// k×m when transA is set, B is stored n×k when transB is set).
// When beta is 0, C is not read (NaNs in C do not propagate). When alpha is 0
// or k is 0, A and B are not read.
// Sgemm panics if a dimension is negative, a stride is smaller than the row
// it strides over, or a slice is too short: those are programmer errors, not
// data errors. It is safe for concurrent use on disjoint C (see the package
// documentation).
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if backend != nil {
		backend(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	p := params{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
		a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc}
	run(pickKernel(m, n), &p, Threads())
}

// Kernel names the implementation Sgemm runs on this machine: the
// micro-kernels' instruction set ("avx512", "avx2" or "go"), or "openblas"
// in a netlib build.
func Kernel() string {
	if backend != nil {
		return backendName
	}
	return kernels[0].isa
}

// backendName names backend.
var backendName string

// backend, when set by a build-tagged file, replaces the native
// implementation of Sgemm (after argument checks).
var backend func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

func checkArgs(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("gemm: negative dimension m=%d n=%d k=%d", m, n, k))
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkMat("A", a, ar, ac, lda)
	checkMat("B", b, br, bc, ldb)
	checkMat("C", c, m, n, ldc)
}

func checkMat(name string, x []float32, rows, cols, ld int) {
	if ld < cols {
		panic(fmt.Sprintf("gemm: stride of %s is %d, less than its %d columns", name, ld, cols))
	}
	if rows > 0 && cols > 0 {
		if need := (rows-1)*ld + cols; len(x) < need {
			panic(fmt.Sprintf("gemm: %s has %d elements, %d×%d with stride %d needs %d", name, len(x), rows, cols, ld, need))
		}
	}
}

// refSgemm is the reference: the plain triple loop that defines Sgemm's
// result. Tests compare every kernel against it.
func refSgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float32
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += av * bv
			}
			if beta == 0 {
				c[i*ldc+j] = alpha * s
			} else {
				c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
			}
		}
	}
}
