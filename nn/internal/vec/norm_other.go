//go:build !amd64 || purego

package vec

func sumSqDev(p []float32, mu float32) float32          { return sumSqDevGo(p, mu) }
func normAffine(dst, src, w, b []float32, a, c float32) { normAffineGo(dst, src, w, b, a, c) }
