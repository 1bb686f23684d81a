package vec

// BatchNorm's per-channel sums in training mode: float32 data summed in
// float64, as nn's scalar loops summed it, four lanes at a time (the sums
// are the same quantities in another order, so they differ from a
// sequential float64 sum only in float64 rounding, far below float32's).

// SumF64 returns the sum of x in float64.
func SumF64(x []float32) float64 {
	if len(x) == 0 {
		return 0
	}
	return sumF64(x)
}

// SumSqDevF64 returns the sum of (x[i]-mu)² in float64.
func SumSqDevF64(x []float32, mu float64) float64 {
	if len(x) == 0 {
		return 0
	}
	return sumSqDevF64(x, mu)
}

// SumDotDevF64 returns the sums of g[i] and of g[i]·(x[i]-mu) in float64,
// for i < len(g); x must be at least as long as g.
func SumDotDevF64(g, x []float32, mu float64) (sg, sgx float64) {
	if len(x) < len(g) {
		panic("vec: SumDotDevF64: x has " + itoa(len(x)) + " elements, g " + itoa(len(g)))
	}
	if len(g) == 0 {
		return 0, 0
	}
	return sumDotDevF64(g, x[:len(g)], mu)
}

// AxpbyF64 sets dst[i] = float32(a·g[i] + b·x[i] + c), computed in
// float64, for i < len(dst): BatchNorm's input gradient with its
// per-channel constants folded into a, b and c. g and x must be at least as
// long as dst.
func AxpbyF64(dst, g, x []float32, a, b, c float64) {
	if len(g) < len(dst) || len(x) < len(dst) {
		panic("vec: AxpbyF64: g has " + itoa(len(g)) + " elements, x " + itoa(len(x)) + ", dst " + itoa(len(dst)))
	}
	if len(dst) == 0 {
		return
	}
	axpbyF64(dst, g[:len(dst)], x[:len(dst)], a, b, c)
}

func sumF64Go(x []float32) float64 {
	s := 0.0
	for _, v := range x {
		s += float64(v)
	}
	return s
}

func sumSqDevF64Go(x []float32, mu float64) float64 {
	s := 0.0
	for _, v := range x {
		d := float64(v) - mu
		s += d * d
	}
	return s
}

func sumDotDevF64Go(g, x []float32, mu float64) (sg, sgx float64) {
	x = x[:len(g)]
	for i, v := range g {
		sg += float64(v)
		sgx += float64(v) * (float64(x[i]) - mu)
	}
	return sg, sgx
}

func axpbyF64Go(dst, g, x []float32, a, b, c float64) {
	g, x = g[:len(dst)], x[:len(dst)]
	for i := range dst {
		dst[i] = float32(a*float64(g[i]) + b*float64(x[i]) + c)
	}
}

// AffineApplyTo sets dst[i] = a(src[i]*scale + shift) for i < len(src),
// with the multiply-add fused where the CPU has FMA, as [AffineApply] does
// in place. dst must be at least as long as src, and either start where
// src does or not overlap it.
func AffineApplyTo(dst, src []float32, scale, shift float32, a Act) {
	checkAct(a)
	if run(dst, src, "AffineApplyTo") {
		impls[0].affine[a](dst, src, scale, shift)
	}
}

// MaskGrad sets dst[i] = g[i] where lo < z[i] and not z[i] >= hi, and +0
// elsewhere, for i < len(dst): the backward of ReLU (lo 0, hi NaN, which
// no value reaches) and ReLU6 (lo 0, hi 6) from the value they were applied
// to or its result. g and z must be at least as long as dst.
func MaskGrad(dst, g, z []float32, lo, hi float32) {
	if len(g) < len(dst) || len(z) < len(dst) {
		panic("vec: MaskGrad: g has " + itoa(len(g)) + " elements, z " + itoa(len(z)) + ", dst " + itoa(len(dst)))
	}
	n := maskGrad(dst, g, z, lo, hi)
	maskGradGo(dst[n:], g[n:], z[n:], lo, hi)
}

func maskGradGo(dst, g, z []float32, lo, hi float32) {
	g, z = g[:len(dst)], z[:len(dst)]
	for i, v := range z {
		d := float32(0)
		if v > lo && !(v >= hi) {
			d = g[i]
		}
		dst[i] = d
	}
}
