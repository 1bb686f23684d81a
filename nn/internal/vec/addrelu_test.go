package vec

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestAddReLU checks AddReLU bit for bit against relu(a+b) computed in
// float64 and rounded (a float32 sum is exact in float64), over every tail
// length up to 70, unaligned starts, and NaN, ±0, ±Inf and large operands.
func TestAddReLU(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	edges := []float32{0, float32(math.Copysign(0, -1)), 1, -1, float32(math.NaN()),
		float32(math.Inf(1)), float32(math.Inf(-1)), math.MaxFloat32, -math.MaxFloat32, 1e-45, -1e-45}
	val := func() float32 {
		if rng.IntN(4) == 0 {
			return edges[rng.IntN(len(edges))]
		}
		return float32(rng.NormFloat64())
	}
	for n := range 71 {
		for off := range 3 {
			a, b := make([]float32, n+off), make([]float32, n+off+1)
			for i := range a {
				a[i] = val()
			}
			for i := range b {
				b[i] = val()
			}
			got := append([]float32(nil), a...)
			AddReLU(got[off:], b[off:])
			for i := off; i < len(a); i++ {
				s := float32(float64(a[i]) + float64(b[i]))
				want := s
				if s < 0 {
					want = 0
				}
				if math.Float32bits(got[i]) != math.Float32bits(want) && !(want != want && got[i] != got[i]) {
					t.Fatalf("n=%d off=%d: relu(%v + %v) = %v (%#x), want %v (%#x)",
						n, off, a[i], b[i], got[i], math.Float32bits(got[i]), want, math.Float32bits(want))
				}
			}
			for i := range off {
				if math.Float32bits(got[i]) != math.Float32bits(a[i]) {
					t.Fatalf("n=%d off=%d: wrote before dst", n, off)
				}
			}
		}
	}
	// -0 + -0 is -0, which relu keeps, as torch does.
	d := []float32{float32(math.Copysign(0, -1))}
	AddReLU(d, []float32{float32(math.Copysign(0, -1))})
	if !math.Signbit(float64(d[0])) {
		t.Errorf("relu(-0 + -0) = %v, want -0", d[0])
	}
}
