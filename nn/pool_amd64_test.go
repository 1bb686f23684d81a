//go:build amd64 && !purego

package nn

import "testing"

// TestPoolNarrowerKernels runs the pooling tests again with the widest
// vector kernels switched off, so that each level this machine has is
// checked (AVX-512, then AVX2, then pure Go).
func TestPoolNarrowerKernels(t *testing.T) {
	avx2, avx512 := poolAVX2, poolAVX512
	defer func() { poolAVX2, poolAVX512 = avx2, avx512 }()
	for _, level := range []struct {
		name         string
		avx2, avx512 bool
	}{{"avx2", true, false}, {"go", false, false}} {
		poolAVX2, poolAVX512 = avx2 && level.avx2, avx512 && level.avx512
		t.Run(level.name, func(t *testing.T) {
			TestMaxKeepFirst(t)
			TestEveryNth(t)
			TestAddStridedDivTo(t)
			TestMaxPoolValuesMatchesIndexed(t)
			TestAvgPoolValuesMatchesWindows(t)
			TestPoolValuesRandomGeometry(t)
		})
	}
}

// BenchmarkMaxPoolLevels times resnet's stem max pool with each vector
// level this machine has.
func BenchmarkMaxPoolLevels(b *testing.B) {
	avx2, avx512 := poolAVX2, poolAVX512
	defer func() { poolAVX2, poolAVX512 = avx2, avx512 }()
	x := RandN(1, 64, 112, 112)
	g := poolGeometry("MaxPool2d", x, PoolParams{KernelSize: [2]int{3, 3}, Stride: [2]int{2, 2}, Padding: [2]int{1, 1}})
	out := make([]float32, g.n*g.c*g.oh*g.ow)
	for _, level := range []struct {
		name         string
		avx2, avx512 bool
	}{{"avx512", true, true}, {"avx2", true, false}, {"go", false, false}} {
		b.Run(level.name, func(b *testing.B) {
			poolAVX2, poolAVX512 = avx2 && level.avx2, avx512 && level.avx512
			for b.Loop() {
				maxPoolValues(&g, x.data, out)
			}
		})
	}
}
