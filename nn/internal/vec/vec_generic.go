package vec

import "math"

// goKernels is the pure-Go implementation, used where there is no assembly
// and as the reference the assembly is tested against.
var goKernels = &kernels{
	name:  "go",
	scale: goScale,
	exp:   goExp,
	plain: [numActs]kernelFn{
		Identity:    copyKernel,
		ReLU:        func(d, s []float32, _, _ float32) { goMap(d, s, relu) },
		ReLU6:       func(d, s []float32, _, _ float32) { goMap(d, s, relu6) },
		SiLU:        func(d, s []float32, _, _ float32) { goMap(d, s, silu) },
		Sigmoid:     func(d, s []float32, _, _ float32) { goMap(d, s, sigmoid) },
		Hardswish:   func(d, s []float32, _, _ float32) { goMap(d, s, hardswish) },
		Hardsigmoid: func(d, s []float32, _, _ float32) { goMap(d, s, hardsigmoid) },
		GELU:        func(d, s []float32, _, _ float32) { goMap(d, s, gelu) },
	},
	affine: [numActs]kernelFn{
		Identity:    func(d, s []float32, a, b float32) { goAffine(d, s, a, b, identity) },
		ReLU:        func(d, s []float32, a, b float32) { goAffine(d, s, a, b, relu) },
		ReLU6:       func(d, s []float32, a, b float32) { goAffine(d, s, a, b, relu6) },
		SiLU:        func(d, s []float32, a, b float32) { goAffine(d, s, a, b, silu) },
		Sigmoid:     func(d, s []float32, a, b float32) { goAffine(d, s, a, b, sigmoid) },
		Hardswish:   func(d, s []float32, a, b float32) { goAffine(d, s, a, b, hardswish) },
		Hardsigmoid: func(d, s []float32, a, b float32) { goAffine(d, s, a, b, hardsigmoid) },
		GELU:        func(d, s []float32, a, b float32) { goAffine(d, s, a, b, gelu) },
	},
}

// goMap and goAffine are inlined into each kernel above, and f with them,
// so each map gets its own loop.
func goMap(dst, src []float32, f func(float32) float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = f(x)
	}
}

func goAffine(dst, src []float32, scale, shift float32, f func(float32) float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = f(x*scale + shift)
	}
}

func goScale(dst, src []float32, f, _ float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = x * f
	}
}

func goExp(dst, src []float32, _, _ float32) { goMap(dst, src, exp32) }

// The scalar maps. The clamps keep a NaN or a -0 input, as the assembly's
// MAXPS/MINPS and torch's clamps do; Go's min and max (branch-free, several
// times faster than comparisons on data of mixed signs) keep NaN but return
// +0 for -0, hence the x == 0 case.
func identity(x float32) float32 { return x }

func relu(x float32) float32 {
	r := max(x, 0)
	if x == 0 {
		r = x
	}
	return r
}

func relu6(x float32) float32 {
	r := min(max(x, 0), 6)
	if x == 0 {
		r = x
	}
	return r
}

func hardsigmoid(x float32) float32 { return relu6(x+3) / 6 }

func hardswish(x float32) float32 { return x * relu6(x+3) / 6 }

func sigmoid(x float32) float32 { return 1 / (1 + exp32(-x)) }

func silu(x float32) float32 { return x / (1 + exp32(-x)) }

// gelu is x/2 + x/2·erf(x/√2) with Abramowitz and Stegun's 7.1.26 for erf:
// erf(z) = ±(1 - t·r(t)·e^-z²), t = 1/(1 + p|z|), absolute error below
// 1.5e-7 (torch's CPU GELU is approximated to the same order: 3.7e-7 from
// exact at most). The additive form gives zeros torch's signs: gelu(-0) and
// gelu(-10) are +0.
func gelu(x float32) float32 {
	const (
		sqrt1_2        = 0.70710678118654752
		p              = 0.3275911
		a1, a2, a3, a4 = 0.254829592, -0.284496736, 1.421413741, -1.453152027
		a5             = 1.061405429
	)
	z := x * sqrt1_2
	az := math.Float32frombits(math.Float32bits(z) &^ (1 << 31))
	e := exp32(-(az * az))
	t := 1 / (p*az + 1)
	r := a5*t + a4
	r = r*t + a3
	r = r*t + a2
	r = r*t + a1
	erf := 1 - r*(t*e)
	erf = math.Float32frombits(math.Float32bits(erf) ^ math.Float32bits(x)&(1<<31))
	h := x * 0.5
	return h*erf + h
}

// exp32 is e^x as the assembly computes it, without fused multiply-adds:
// x clamped to [-104, 89] (NaN kept), x = k·ln2 + r with |r| <= ln2/2 and
// ln2 in two parts (k·ln2hi is exact), e^r = 1 + r + r²·p(r) with Cephes'
// degree-5 minimax p, times 2^k applied as two powers of two so that a
// subnormal or overflowing result is rounded once.
func exp32(x float32) float32 {
	const (
		log2e  = 1.44269504088896341
		ln2hi  = 0.693359375
		ln2lo  = -2.12194440e-4
		magic  = 12582912 // 1.5·2^23: adding it rounds to an integer
		lo, hi = -104, 89
	)
	if x < lo {
		x = lo
	}
	if x > hi {
		x = hi
	}
	kf := x*log2e + magic
	kf -= magic
	r := x - kf*ln2hi
	r -= kf * ln2lo
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	y := p*(r*r) + r + 1
	k := int32(kf)
	k1 := k >> 1
	k2 := k - k1
	return y * math.Float32frombits(uint32(k1+127)<<23) * math.Float32frombits(uint32(k2+127)<<23)
}
