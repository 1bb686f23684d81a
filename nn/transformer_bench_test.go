//go:build unix

package nn_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/nn"
)

// procCPU returns the CPU time the process has used, user and system.
func procCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchInfer times nn.Infer(m, x), unprepared and prepared, reporting the process CPU time
// per call (less moved by other load on a shared machine than wall time).
func benchInfer(b *testing.B, m nn.Module, x *nn.Tensor) {
	m.Eval()
	for _, label := range []string{"plain", "prepared"} {
		if label == "prepared" {
			if err := nn.Prepare(m); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(label, func(b *testing.B) {
			nn.Infer(m, x)
			c0 := procCPU()
			b.ResetTimer()
			for b.Loop() {
				nn.Infer(m, x)
			}
			b.ReportMetric((procCPU()-c0).Seconds()*1e3/float64(b.N), "cpu-ms/op")
		})
	}
	nn.Unprepare(m)
}

// BenchmarkTransformerLayers times the layers of vit_b_16 (197 tokens of
// 768) and swin_t's first stage (3136 tokens of 96) one at a time.
func BenchmarkTransformerLayers(b *testing.B) {
	for _, tc := range []struct {
		rows, in, out int
	}{{197, 768, 768}, {197, 768, 3072}, {197, 3072, 768}, {3136, 96, 288}, {3136, 96, 384}, {1576, 768, 3072}, {1576, 3072, 768}} {
		b.Run(fmt.Sprintf("Linear_%dx%dx%d", tc.rows, tc.in, tc.out), func(b *testing.B) {
			benchInfer(b, nn.NewLinear(nil, tc.in, tc.out, true), nn.RandN(1, tc.rows, tc.in))
		})
	}
	b.Run("LayerNorm_197x768", func(b *testing.B) {
		benchInfer(b, nn.NewLayerNorm(nil, []int{768}), nn.RandN(1, 197, 768))
	})
	b.Run("LayerNorm_3136x96", func(b *testing.B) {
		benchInfer(b, nn.NewLayerNorm(nil, []int{96}), nn.RandN(1, 3136, 96))
	})
	b.Run("MHA_197x768", func(b *testing.B) {
		benchInfer(b, nn.NewMultiheadAttention(nil, 768, 12, 0, true), nn.RandN(1, 197, 768))
	})
	for _, tc := range []struct{ b, l, e, heads int }{{1, 197, 768, 12}, {64, 49, 96, 3}, {16, 49, 192, 6}} {
		b.Run(fmt.Sprintf("SelfAttentionPacked_b%d_l%d_e%d", tc.b, tc.l, tc.e), func(b *testing.B) {
			qkv := nn.RandN(tc.b, tc.l, 3*tc.e)
			var bias *nn.Tensor
			if tc.l == 49 {
				bias = nn.RandN(tc.heads, tc.l, tc.l)
			}
			nn.SelfAttentionPacked(qkv, tc.heads, bias, 0.125)
			c0 := procCPU()
			b.ResetTimer()
			for b.Loop() {
				nn.SelfAttentionPacked(qkv, tc.heads, bias, 0.125)
			}
			b.ReportMetric((procCPU()-c0).Seconds()*1e3/float64(b.N), "cpu-ms/op")
		})
	}
}
