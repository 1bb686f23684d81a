package nn

import "math"

// layerNormInferMin is the element count below which layerNormInfer stays
// on one goroutine.
const layerNormInferMin = 1 << 14

// layerNormInfer is LayerNorm's forward pass when no graph is recorded:
// rows normalised in parallel, with no per-element index function and no
// saved statistics. Each row's mean and variance are summed in float64
// (four running sums, so the loop is not one long dependency chain), then
// y = (x·rstd - mean·rstd)·w + b in float32, as torch's CPU kernel
// computes it. The result does not depend on how rows are split.
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
// (nil for none, else as long as src).
func layerNormRow(dst, src, w, b []float32, eps float64) {
	n := len(src)
	dst = dst[:n]
	var s0, s1, s2, s3 float64
	j := 0
	for ; j+4 <= n; j += 4 {
		v := src[j : j+4 : j+4]
		s0 += float64(v[0])
		s1 += float64(v[1])
		s2 += float64(v[2])
		s3 += float64(v[3])
	}
	for ; j < n; j++ {
		s0 += float64(src[j])
	}
	mu := (s0 + s1 + s2 + s3) / float64(n)
	s0, s1, s2, s3 = 0, 0, 0, 0
	j = 0
	for ; j+4 <= n; j += 4 {
		v := src[j : j+4 : j+4]
		d0, d1, d2, d3 := float64(v[0])-mu, float64(v[1])-mu, float64(v[2])-mu, float64(v[3])-mu
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; j < n; j++ {
		dv := float64(src[j]) - mu
		s0 += dv * dv
	}
	rstd := 1 / math.Sqrt((s0+s1+s2+s3)/float64(n)+eps)
	a, c := float32(rstd), float32(-mu*rstd)
	switch {
	case w != nil && b != nil:
		w, b = w[:n], b[:n]
		for j, v := range src {
			dst[j] = (v*a+c)*w[j] + b[j]
		}
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
