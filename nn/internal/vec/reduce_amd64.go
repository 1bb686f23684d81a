//go:build amd64 && !purego

package vec

import "golang.org/x/sys/cpu"

// maxAVX2, sumAVX2 and addAVX2 are Max, Sum and Add over n floats
// (reduce_amd64.s); maxAVX2 needs n >= 1.
//
//go:noescape
func maxAVX2(p *float32, n int) float32

//go:noescape
func sumAVX2(p *float32, n int) float32

//go:noescape
func addAVX2(dst, src *float32, n int)

var haveAVX2 = cpu.X86.HasAVX2

func maxOf(p []float32) float32 {
	if haveAVX2 {
		return maxAVX2(&p[0], len(p))
	}
	return maxGo(p)
}

func sumOf(p []float32) float32 {
	if haveAVX2 {
		return sumAVX2(&p[0], len(p))
	}
	return sumGo(p)
}

func add(dst, src []float32) {
	if haveAVX2 {
		addAVX2(&dst[0], &src[0], len(dst))
		return
	}
	addGo(dst, src)
}
