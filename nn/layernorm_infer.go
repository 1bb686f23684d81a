package nn

import (
	"math"

	"github.com/ckptkit/ckpt/nn/internal/vec"
)

// layerNormInfer is LayerNorm's forward pass when no graph is recorded:
// rows normalised in parallel, with no per-element index function and no
// saved statistics (see layerNormRow): y = (x·rstd - mean·rstd)·w + b in
// float32, as torch's CPU kernel computes it. The result does not depend on how rows are split.
func layerNormInfer(x, weight, bias *Tensor, rows, d int, eps float64) *Tensor {
	out := newResultData(cloneInts(x.shape), false, x)
	var w, b []float32
	if weight != nil {
		w = weight.data[:d]
	}
	if bias != nil {
		b = bias.data[:d]
	}
	xd, od := x.data, out.data
	parallelFor(rows, rows*d/4, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			layerNormRow(od[r*d:(r+1)*d], xd[r*d:(r+1)*d], w, b, eps)
		}
	})
	return out
}

// layerNormRow normalises src into dst (same length) with affine w and b
// (nil for none, else as long as src). The mean and the sum of squared
// deviations are vec's float32 sums over several lanes (a relative
// rounding of about 1e-7·sqrt(len), far inside the parity tolerance for
// rows of a few thousand), the variance then taken in float64.
func layerNormRow(dst, src, w, b []float32, eps float64) {
	n := len(src)
	dst = dst[:n]
	mu := vec.Sum(src) / float32(n)
	vr := float64(vec.SumSqDev(src, mu)) / float64(n)
	rstd := 1 / math.Sqrt(vr+eps)
	a, c := float32(rstd), float32(-float64(mu)*rstd)
	switch {
	case w != nil && b != nil:
		vec.NormAffine(dst, src, w, b, a, c)
	case w != nil:
		w = w[:n]
		for j, v := range src {
			dst[j] = (v*a + c) * w[j]
		}
	default:
		for j, v := range src {
			y := v*a + c
			if b != nil {
				y += b[j]
			}
			dst[j] = y
		}
	}
}
