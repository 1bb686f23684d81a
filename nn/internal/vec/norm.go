package vec

// SumSqDev returns the sum of (p[i]-mu)² in float32, accumulated in
// several lanes: a row's variance for LayerNorm, once its mean is known.
func SumSqDev(p []float32, mu float32) float32 {
	if len(p) == 0 {
		return 0
	}
	return sumSqDev(p, mu)
}

// NormAffine sets dst[i] = (src[i]·a + c)·w[i] + b[i] for i < len(src): a
// normalised row (a = 1/σ, c = -μ/σ) with LayerNorm's elementwise affine
// map. dst, w and b must be at least as long as src.
func NormAffine(dst, src, w, b []float32, a, c float32) {
	if len(src) == 0 {
		return
	}
	n := len(src)
	normAffine(dst[:n], src, w[:n], b[:n], a, c)
}

func sumSqDevGo(p []float32, mu float32) float32 {
	var s [8]float32
	i := 0
	for ; i+8 <= len(p); i += 8 {
		for j := range s {
			d := p[i+j] - mu
			s[j] += d * d
		}
	}
	t := float32(0)
	for _, v := range s {
		t += v
	}
	for ; i < len(p); i++ {
		d := p[i] - mu
		t += d * d
	}
	return t
}

func normAffineGo(dst, src, w, b []float32, a, c float32) {
	dst, w, b = dst[:len(src)], w[:len(src)], b[:len(src)]
	for i, v := range src {
		dst[i] = (v*a+c)*w[i] + b[i]
	}
}
