//go:build amd64 && !purego

package vec

import "golang.org/x/sys/cpu"

// sumSqDevAVX2 and normAffineAVX2 are SumSqDev and NormAffine over n
// floats (norm_amd64.s).
//
//go:noescape
func sumSqDevAVX2(p *float32, n int, mu float32) float32

//go:noescape
func normAffineAVX2(dst, src, w, b *float32, n int, a, c float32)

var haveFMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

func sumSqDev(p []float32, mu float32) float32 {
	if haveFMA {
		return sumSqDevAVX2(&p[0], len(p), mu)
	}
	return sumSqDevGo(p, mu)
}

func normAffine(dst, src, w, b []float32, a, c float32) {
	if haveFMA {
		normAffineAVX2(&dst[0], &src[0], &w[0], &b[0], len(src), a, c)
		return
	}
	normAffineGo(dst, src, w, b, a, c)
}
