package models

import (
	"testing"

	"github.com/ckptkit/ckpt/nn"
)

func benchArch(b *testing.B, name string, batch, size int) {
	m, err := Build(name, Config{})
	if err != nil {
		b.Fatal(err)
	}
	m.(interface{ Eval() }).Eval()
	x := nn.RandN(batch, 3, size, size)
	nn.Infer(m, x) // warm-up: workspaces and the arena
	b.ResetTimer()
	for b.Loop() {
		nn.Infer(m, x)
	}
}

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
