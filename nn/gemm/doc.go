// Package gemm computes single-precision general matrix products, the kernel
// under nn's Conv2d and Linear.
//
// All matrices are row-major. [Sgemm] computes C = alpha*op(A)*op(B) + beta*C
// with a packed, cache-blocked algorithm in the style of BLIS: op(B) is packed
// into KC×NR column panels, op(A) into MC×KC blocks of MR-row panels, and a
// register-blocked micro-kernel computes one MR×NR tile of C at a time. On
// amd64 the micro-kernel is Go assembly (AVX-512F when the CPU has it,
// otherwise AVX2+FMA), chosen at run time with golang.org/x/sys/cpu; on other
// CPUs, and everywhere when built with -tags purego, a pure-Go kernel is used.
// Large products are split over [Threads] goroutines; small ones run on the
// calling goroutine. [PackA] packs a left operand once (a layer's weights)
// for many products with [PackedA.Sgemm]. [SgemmSource] takes its right
// operand from a [BSource] that packs it block by block, so an operand
// derived from other data (a convolution's im2col columns, packed straight
// from the image) is never stored whole.
//
// # Concurrency and memory
//
// Sgemm is safe to call from several goroutines at once, as long as the C
// matrices of concurrent calls do not overlap (A and B may be shared). Packing
// buffers are owned by the package: each worker goroutine owns one set, and a
// calling goroutine borrows one set from a fixed-size free list for the
// duration of the call, so a steady stream of calls allocates nothing. A call
// that finds the free list empty (more concurrent callers than ever before)
// allocates a set, which joins the free list afterwards if there is room.
// A set holds about 1 MiB of packing buffers; a parallel call also keeps up
// to 8 MiB for a shared packed B. At most 32 of each are kept for reuse.
//
// # Interface with gonum and OpenBLAS
//
// [Implementation] is a gonum blas.Float32 whose Sgemm is this package's, so
// blas32.Use(gemm.Implementation{}) makes gonum's blas32.Gemm, and code built
// on it, multiply here. In the other direction, built with -tags netlib (and cgo), Sgemm
// delegates to OpenBLAS's cblas_sgemm through gonum.org/v1/netlib, with
// OpenBLAS's thread count following [Threads]; that build needs OpenBLAS
// installed (Debian: apt-get install libopenblas-dev). Without cgo the tag
// is ignored. [Kernel] reports which implementation is in use.
//
// The package does not do complex or double precision, and does not check
// for aliasing between C and A or B: C must not overlap A or B.
package gemm
