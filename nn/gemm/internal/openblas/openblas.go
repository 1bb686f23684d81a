//go:build netlib && cgo

package openblas

// This file links OpenBLAS and exposes the one OpenBLAS call that
// gonum.org/v1/netlib lacks, the thread count. It lives outside gemm because
// a package using cgo cannot hold Go assembly.

// #cgo LDFLAGS: -lopenblas
// void openblas_set_num_threads(int);
import "C"

// SetThreads sets the number of threads OpenBLAS uses.
func SetThreads(n int) { C.openblas_set_num_threads(C.int(n)) }
