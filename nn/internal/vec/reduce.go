package vec

// Max returns the largest element of p (len(p) >= 1). It is for finite
// inputs: a NaN in p is not reliably returned.
func Max(p []float32) float32 {
	if len(p) == 0 {
		panic("vec: Max of an empty slice")
	}
	return maxOf(p)
}

// Sum returns the sum of p in float32, accumulated in several lanes (the
// order of the additions differs from a plain loop's).
func Sum(p []float32) float32 {
	if len(p) == 0 {
		return 0
	}
	return sumOf(p)
}

// Add sets dst[i] += src[i] for i < len(dst); src must be at least as long.
func Add(dst, src []float32) {
	if len(dst) == 0 {
		return
	}
	src = src[:len(dst)]
	add(dst, src)
}

func maxGo(p []float32) float32 {
	m := p[0]
	for _, v := range p[1:] {
		if v > m {
			m = v
		}
	}
	return m
}

func sumGo(p []float32) float32 {
	var s [8]float32
	i := 0
	for ; i+8 <= len(p); i += 8 {
		for j := range s {
			s[j] += p[i+j]
		}
	}
	t := float32(0)
	for _, v := range s {
		t += v
	}
	for ; i < len(p); i++ {
		t += p[i]
	}
	return t
}

func addGo(dst, src []float32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] += src[i]
	}
}
