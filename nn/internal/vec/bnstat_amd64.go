//go:build amd64 && !purego

package vec

import "golang.org/x/sys/cpu"

// The AVX2 kernels of bnstat_amd64.s; each handles any n >= 1.

//go:noescape
func sumF64AVX2(x *float32, n int) float64

//go:noescape
func sumSqDevF64AVX2(x *float32, n int, mu float64) float64

//go:noescape
func sumDotDevF64AVX2(gp, xp *float32, n int, mu float64) (sg, sgx float64)

//go:noescape
func axpbyF64AVX2(dst, gp, xp *float32, n int, a, b, c float64)

var bnAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

func sumF64(x []float32) float64 {
	if bnAVX2 {
		return sumF64AVX2(&x[0], len(x))
	}
	return sumF64Go(x)
}

func sumSqDevF64(x []float32, mu float64) float64 {
	if bnAVX2 {
		return sumSqDevF64AVX2(&x[0], len(x), mu)
	}
	return sumSqDevF64Go(x, mu)
}

func sumDotDevF64(g, x []float32, mu float64) (float64, float64) {
	if bnAVX2 {
		return sumDotDevF64AVX2(&g[0], &x[0], len(g), mu)
	}
	return sumDotDevF64Go(g, x, mu)
}

func axpbyF64(dst, g, x []float32, a, b, c float64) {
	if bnAVX2 {
		axpbyF64AVX2(&dst[0], &g[0], &x[0], len(dst), a, b, c)
		return
	}
	axpbyF64Go(dst, g, x, a, b, c)
}

//go:noescape
func maskGradAVX2(dst, gp, zp *float32, n int, lo, hi float32)

// maskGrad does the first multiple of 8 elements of MaskGrad and returns
// how many it did.
func maskGrad(dst, g, z []float32, lo, hi float32) int {
	n := len(dst) &^ 7
	if !bnAVX2 || n == 0 {
		return 0
	}
	maskGradAVX2(&dst[0], &g[0], &z[0], n, lo, hi)
	return n
}
