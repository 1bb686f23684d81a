package nn

import (
	"math"
	"math/rand/v2"
	"sync"
)

var rng = struct {
	sync.Mutex
	r *rand.Rand
}{r: rand.New(rand.NewPCG(0, 0x9e3779b97f4a7c15))}

// ManualSeed reseeds the package generator used by default initialisation,
// Dropout and StochasticDepth, for reproducible runs. (It is not torch's
// generator: the same seed does not give torch's numbers.)
func ManualSeed(seed uint64) {
	rng.Lock()
	rng.r = rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	rng.Unlock()
}

// Rand returns a uniform float64 in [0, 1) from the package generator.
func Rand() float64 {
	rng.Lock()
	defer rng.Unlock()
	return rng.r.Float64()
}

// RandN returns a leaf tensor of standard normal values from the package
// generator.
func RandN(shape ...int) *Tensor {
	t := Zeros(shape...)
	rng.Lock()
	for i := range t.data {
		t.data[i] = float32(rng.r.NormFloat64())
	}
	rng.Unlock()
	return t
}

// RandU returns a leaf tensor of values uniform in [lo, hi) from the package
// generator.
func RandU(lo, hi float64, shape ...int) *Tensor {
	t := Zeros(shape...)
	rng.Lock()
	for i := range t.data {
		t.data[i] = float32(lo + (hi-lo)*rng.r.Float64())
	}
	rng.Unlock()
	return t
}

func exp32(x float32) float32  { return float32(math.Exp(float64(x))) }
func log32(x float32) float32  { return float32(math.Log(float64(x))) }
func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }
func tanh32(x float32) float32 { return float32(math.Tanh(float64(x))) }

// expf32 is a float32 e^x accurate to about 1 ulp (Cephes' expf: range
// reduction by ln 2 in two parts and a degree-6 polynomial), several times
// faster than widening to math.Exp; sigmoid and SiLU, on every activation
// of EfficientNet, use it.
func expf32(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		c1    = 0.693359375
		c2    = -2.12194440e-4
	)
	switch {
	case x != x:
		return x
	case x > 88.72283:
		return float32(math.Inf(1))
	case x < -87.33654:
		return float32(math.Exp(float64(x))) // subnormal results
	}
	fx := x * log2e
	var n int32
	if fx < 0 {
		n = int32(fx - 0.5)
	} else {
		n = int32(fx + 0.5)
	}
	fn := float32(n)
	r := x - fn*c1 - fn*c2
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	y := p*r*r + r + 1
	if n > 127 { // x rounds up to 2^128: split the scale
		return y * 2 * math.Float32frombits(uint32(n-1+127)<<23)
	}
	if n < -126 {
		return y * math.Float32frombits(uint32(n+1+127)<<23) / 2
	}
	return y * math.Float32frombits(uint32(n+127)<<23)
}
