package optim

import (
	"testing"

	"github.com/ckptkit/ckpt/nn"
)

// BenchmarkStep measures one optimizer step over a ResNet-18-sized layer
// (512·512·3·3 = 2.4M parameters) and reports the time per parameter.
func BenchmarkStep(b *testing.B) {
	cases := []struct {
		name string
		alg  Algorithm
		opts []Option
	}{
		{"SGD-momentum", SGD, []Option{LR(0.1), Momentum(0.9), WeightDecay(1e-4)}},
		{"Adam", Adam, nil},
		{"AdamW-amsgrad", AdamW, []Option{AMSGrad()}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			p := nn.RandN(512, 512, 3, 3).SetRequiresGrad(true)
			p.SetGrad(nn.RandN(512, 512, 3, 3))
			o, err := New(c.alg, []*nn.Tensor{p}, c.opts...)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				o.Step()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(p.Numel()), "ns/param")
		})
	}
}
