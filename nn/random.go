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
