package bench

import (
	"testing"

	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/nn/models"
)

// BenchmarkTrainStep times the training step of `ckpt bench --train` on
// resnet18 at batch 8, for profiling (go test -bench TrainStep
// -cpuprofile cpu.out); the ratios against PyTorch come from
// scripts/bench_reference.py --train.
func BenchmarkTrainStep(b *testing.B) {
	for _, strategy := range []string{"full", "head"} {
		b.Run(strategy, func(b *testing.B) {
			ios, _, _ := clitest.Streams()
			spec, err := models.Lookup("resnet18")
			if err != nil {
				b.Fatal(err)
			}
			m, err := models.Build("resnet18", models.Config{})
			if err != nil {
				b.Fatal(err)
			}
			t, err := newTrainer(&Options{IO: ios, Arch: "resnet18", Batch: 8, Strategy: strategy}, m, spec, 224)
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
