package vec

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkActivations times each map over 112*112*32 floats (one
// activation map of EfficientNet-B0's stem, 1.6 MB) in place, for every
// implementation this CPU runs side by side: "go" is the pure-Go fallback,
// scalar loops like those the models ran before, the others the assembly. Compare within one run; the
// machine is shared.
func BenchmarkActivations(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	src := make([]float32, 112*112*32)
	for i := range src {
		src[i] = float32(r.NormFloat64() * 3)
	}
	p := make([]float32, len(src))
	type bench struct {
		name string
		run  func(k *kernels)
	}
	var benches []bench
	for a := ReLU; a < numActs; a++ {
		benches = append(benches,
			bench{a.String(), func(k *kernels) { k.plain[a](p, p, 1, 0) }},
			bench{"Affine" + a.String(), func(k *kernels) { k.affine[a](p, p, 1, 0) }})
	}
	benches = append(benches, bench{"Exp", func(k *kernels) { k.exp(p, p, 0, 0) }})
	for _, bn := range benches {
		for _, k := range impls {
			b.Run(bn.name+"/"+k.name, func(b *testing.B) {
				b.SetBytes(int64(4 * len(p)))
				for b.Loop() {
					b.StopTimer()
					copy(p, src) // exp and the affine maps would drift otherwise
					b.StartTimer()
					bn.run(k)
				}
			})
		}
	}
}
