package bench

import (
	"testing"

	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/nn/models"
)

// BenchmarkTrainStep times the training step of `ckpt bench --train` at
// batch 8 on the architectures issue 12 sets targets for, for profiling
// (go test -bench 'TrainStep/mobilenet_v2/full' -cpuprofile cpu.out); the
// ratios against PyTorch come from scripts/bench_reference.py --train.
func BenchmarkTrainStep(b *testing.B) {
	for _, c := range []struct{ arch, strategy string }{
		{"resnet18", "full"}, {"resnet18", "head"}, {"resnet50", "full"},
		{"mobilenet_v2", "full"}, {"efficientnet_b0", "full"}, {"convnext_tiny", "full"},
	} {
		b.Run(c.arch+"/"+c.strategy, func(b *testing.B) {
			ios, _, _ := clitest.Streams()
			spec, err := models.Lookup(c.arch)
			if err != nil {
				b.Fatal(err)
			}
			m, err := models.Build(c.arch, models.Config{})
			if err != nil {
				b.Fatal(err)
			}
			t, err := newTrainer(&Options{IO: ios, Arch: c.arch, Batch: 8, Strategy: c.strategy}, m, spec, 224)
			if err != nil {
				b.Fatal(err)
			}
			if err := t.step(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := t.step(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
