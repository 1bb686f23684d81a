//go:build amd64 && !purego

package nn

import "golang.org/x/sys/cpu"

// The vector kernels used; tests switch them off to check the others.
var (
	poolAVX2   = cpu.X86.HasAVX2
	poolAVX512 = cpu.X86.HasAVX512F
)

// maxKeepFirstAVX512 is maxKeepFirstGo on n >= 16 floats.
//
//go:noescape
func maxKeepFirstAVX512(dst, a, b *float32, n int)

// maxKeepFirstAVX2 is maxKeepFirstGo on n >= 8 floats.
//
//go:noescape
func maxKeepFirstAVX2(dst, a, b *float32, n int)

// everyOtherAVX2 sets dst[i] = src[2*i] for i < n, n >= 8; it reads
// src[:2*n].
//
//go:noescape
func everyOtherAVX2(dst, src *float32, n int)

// maxKeepFirst sets dst[i] to b[i] when b[i] > a[i] or b[i] is NaN, and to
// a[i] otherwise. dst may be a.
func maxKeepFirst(dst, a, b []float32) {
	n := len(dst)
	a, b = a[:n], b[:n]
	if poolAVX512 && n >= 16 {
		maxKeepFirstAVX512(&dst[0], &a[0], &b[0], n)
		return
	}
	if poolAVX2 && n >= 8 {
		maxKeepFirstAVX2(&dst[0], &a[0], &b[0], n)
		return
	}
	maxKeepFirstGo(dst, a, b)
}

// everyNth sets dst[i] to src[i*n].
func everyNth(dst, src []float32, n int) {
	if m := len(dst); poolAVX2 && n == 2 && m >= 8 {
		src = src[:2*m]
		everyOtherAVX2(&dst[0], &src[0], m)
		return
	}
	everyNthGo(dst, src, n)
}

// addToAVX2 sets dst[i] += src[i] for i < n, n a multiple of 8.
//
//go:noescape
func addToAVX2(dst, src *float32, n int)

// addEvenToAVX2 sets dst[i] += src[2*i] for i < n, n a multiple of 8; it
// reads src[:2*n].
//
//go:noescape
func addEvenToAVX2(dst, src *float32, n int)

// addStrided sets dst[i] += src[i*n].
func addStrided(dst, src []float32, n int) {
	if v := len(dst) &^ 7; poolAVX2 && v > 0 && (n == 1 || n == 2 && len(src) >= 2*v) {
		if n == 1 {
			src = src[:len(dst)]
			addToAVX2(&dst[0], &src[0], v)
		} else {
			addEvenToAVX2(&dst[0], &src[0], v)
		}
		dst, src = dst[v:], src[v*n:]
	}
	addStridedGo(dst, src, n)
}

// divToAVX2 sets dst[i] = a[i] / b[i] for i < n, n a multiple of 8.
//
//go:noescape
func divToAVX2(dst, a, b *float32, n int)

// divTo sets dst[i] = a[i] / b[i].
func divTo(dst, a, b []float32) {
	n := len(dst)
	a, b = a[:n], b[:n]
	if v := n &^ 7; poolAVX2 && v > 0 {
		divToAVX2(&dst[0], &a[0], &b[0], v)
		dst, a, b = dst[v:], a[v:], b[v:]
	}
	divToGo(dst, a, b)
}
