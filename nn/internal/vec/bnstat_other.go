//go:build !amd64 || purego

package vec

func sumF64(x []float32) float64                                 { return sumF64Go(x) }
func sumSqDevF64(x []float32, mu float64) float64                { return sumSqDevF64Go(x, mu) }
func sumDotDevF64(g, x []float32, mu float64) (float64, float64) { return sumDotDevF64Go(g, x, mu) }
func axpbyF64(dst, g, x []float32, a, b, c float64)              { axpbyF64Go(dst, g, x, a, b, c) }

// maskGrad leaves every element to maskGradGo.
func maskGrad(dst, g, z []float32, lo, hi float32) int { return 0 }
