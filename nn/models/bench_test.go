package models

import (
	"testing"

	"github.com/ckptkit/ckpt/nn"
)

// benchArch times nn.Infer on the architecture, unprepared, prepared
// (nn.Prepare) and prepared with Winograd off ("direct": every convolution
// through the packed GEMM, as before Winograd), and reports the process CPU time per pass as cpu-ms/op
// besides the wall time: on a shared machine the CPU time of the two
// threads moves less with other load than the wall time does.
func benchArch(b *testing.B, name string, batch, size int) {
	m, err := Build(name, Config{})
	if err != nil {
		b.Fatal(err)
	}
	m.Eval()
	x := nn.RandN(batch, 3, size, size)
	for _, label := range []string{"plain", "prepared", "direct"} {
		if label == "prepared" {
			if err := nn.Prepare(m); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(label, func(b *testing.B) {
			nn.SetWinograd(label != "direct")
			defer nn.SetWinograd(true)
			nn.Infer(m, x) // warm-up: workspaces, the arena, the plan
			c0 := cpuTime()
			b.ResetTimer()
			for b.Loop() {
				nn.Infer(m, x)
			}
			b.ReportMetric((cpuTime()-c0).Seconds()*1e3/float64(b.N), "cpu-ms/op")
		})
	}
	nn.Unprepare(m)
}

// BenchmarkResNet18Batch8 times resnet18 on eight 224x224 images.
func BenchmarkResNet18Batch8(b *testing.B) { benchArch(b, "resnet18", 8, 224) }

// BenchmarkResNet18 times an eval-mode forward pass of resnet18 on one
// 224x224 image (PyTorch 1.13 with oneDNN on 2 cores: about 67 ms).
func BenchmarkResNet18(b *testing.B) { benchArch(b, "resnet18", 1, 224) }

// BenchmarkResNet50 times resnet50 on one 224x224 image.
func BenchmarkResNet50(b *testing.B) { benchArch(b, "resnet50", 1, 224) }

// BenchmarkBuildResNet50 times constructing resnet50 with fresh weights.
func BenchmarkBuildResNet50(b *testing.B) {
	for b.Loop() {
		if _, err := Build("resnet50", Config{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkViTB16 times vit_b_16 on one 224x224 image.
func BenchmarkViTB16(b *testing.B) { benchArch(b, "vit_b_16", 1, 224) }

// BenchmarkSwinT times swin_t on one 224x224 image.
func BenchmarkSwinT(b *testing.B) { benchArch(b, "swin_t", 1, 224) }

// BenchmarkSwinV2T times swin_v2_t (cosine attention) on one 224x224 image.
func BenchmarkSwinV2T(b *testing.B) { benchArch(b, "swin_v2_t", 1, 224) }

// BenchmarkViTB16Batch8 times vit_b_16 on eight 224x224 images.
func BenchmarkViTB16Batch8(b *testing.B) { benchArch(b, "vit_b_16", 8, 224) }

// BenchmarkSwinTBatch8 times swin_t on eight 224x224 images.
func BenchmarkSwinTBatch8(b *testing.B) { benchArch(b, "swin_t", 8, 224) }
