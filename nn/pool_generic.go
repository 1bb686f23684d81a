//go:build !amd64 || purego

package nn

// maxKeepFirst sets dst[i] to b[i] when b[i] > a[i] or b[i] is NaN, and to
// a[i] otherwise. dst may be a.
func maxKeepFirst(dst, a, b []float32) { maxKeepFirstGo(dst, a, b) }

// everyNth sets dst[i] to src[i*n].
func everyNth(dst, src []float32, n int) { everyNthGo(dst, src, n) }

// addStrided sets dst[i] += src[i*n].
func addStrided(dst, src []float32, n int) { addStridedGo(dst, src, n) }

// divTo sets dst[i] = a[i] / b[i].
func divTo(dst, a, b []float32) { divToGo(dst, a, b) }
