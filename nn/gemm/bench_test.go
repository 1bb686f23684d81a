package gemm

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// benchGemm times C = A*B (both untransposed, beta 0) of the given shape
// with f and reports GFLOP/s, counting 2*m*n*k floating-point operations.
// It also reports GFLOP per CPU-second of the process ("GFLOP/cpu-s"): on a
// machine shared with other work, wall-clock GFLOP/s falls with the share
// of the cores the benchmark gets, while GFLOP/cpu-s measures the code (for
// one goroutine it is GFLOP/s on an unshared core; for several, divide
// GFLOP/s by it to see how many cores were busy).
func benchGemm(b *testing.B, m, n, k int, f func(m, n, k int, a, bm, c []float32)) {
	a := make([]float32, m*k)
	bm := make([]float32, k*n)
	c := make([]float32, m*n)
	for i := range a {
		a[i] = float32(i%7) - 3
	}
	for i := range bm {
		bm[i] = float32(i%5) - 2
	}
	f(m, n, k, a, bm, c) // warm the buffers
	b.ResetTimer()
	var cpu0 time.Duration
	for b.Loop() {
		if cpu0 == 0 {
			cpu0 = processCPU()
		}
		f(m, n, k, a, bm, c)
	}
	reportGFLOPS(b, 2*float64(m)*float64(n)*float64(k), cpu0)
}

// reportGFLOPS reports GFLOP/s and GFLOP/cpu-s for b.N runs of flops
// operations each, the loop having started at process CPU time cpu0.
func reportGFLOPS(b *testing.B, flops float64, cpu0 time.Duration) {
	flops *= float64(b.N)
	b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpu := processCPU() - cpu0; cpu > 0 && cpu0 > 0 {
		b.ReportMetric(flops/cpu.Seconds()/1e9, "GFLOP/cpu-s")
	}
}

func ourSgemm(m, n, k int, a, bm, c []float32) {
	Sgemm(false, false, m, n, k, 1, a, k, bm, n, 0, c, n)
}

// BenchmarkSgemm measures square products on one goroutine and on all.
func BenchmarkSgemm(b *testing.B) {
	defer SetThreads(0)
	for _, threads := range []int{1, runtime.GOMAXPROCS(0)} {
		for _, n := range []int{64, 128, 256, 512, 1024} {
			b.Run(fmt.Sprintf("threads=%d/n=%d", threads, n), func(b *testing.B) {
				SetThreads(threads)
				benchGemm(b, n, n, n, ourSgemm)
			})
		}
	}
}

// BenchmarkKernel compares the micro-kernels this CPU runs, one goroutine.
func BenchmarkKernel(b *testing.B) {
	for _, kn := range kernels {
		for _, n := range []int{256, 1024} {
			b.Run(fmt.Sprintf("%s/n=%d", kn.name, n), func(b *testing.B) {
				benchGemm(b, n, n, n, func(m, n, k int, a, bm, c []float32) {
					run(kn, &params{m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: bm, ldb: n, c: c, ldc: n}, 1)
				})
			})
		}
	}
}

// resNet18Convs are the distinct convolutions of torchvision's resnet18 on
// a 224×224 image, batch 1, as im2col GEMMs: M = output channels,
// N = output height*width, K = input channels*kernel height*kernel width.
// count is how many times the layer occurs in the network.
var resNet18Convs = []struct {
	name    string
	m, n, k int
	count   int
}{
	{"conv1_7x7s2", 64, 112 * 112, 3 * 7 * 7, 1},
	{"layer1_3x3", 64, 56 * 56, 64 * 9, 4},
	{"layer2.0.conv1_3x3s2", 128, 28 * 28, 64 * 9, 1},
	{"layer2_3x3", 128, 28 * 28, 128 * 9, 3},
	{"layer2.0.downsample_1x1s2", 128, 28 * 28, 64, 1},
	{"layer3.0.conv1_3x3s2", 256, 14 * 14, 128 * 9, 1},
	{"layer3_3x3", 256, 14 * 14, 256 * 9, 3},
	{"layer3.0.downsample_1x1s2", 256, 14 * 14, 128, 1},
	{"layer4.0.conv1_3x3s2", 512, 7 * 7, 256 * 9, 1},
	{"layer4_3x3", 512, 7 * 7, 512 * 9, 3},
	{"layer4.0.downsample_1x1s2", 512, 7 * 7, 256, 1},
}

// BenchmarkResNet18Conv measures each distinct ResNet-18 convolution GEMM,
// and "all", the 20 convolutions of one forward pass in sequence.
func BenchmarkResNet18Conv(b *testing.B) {
	defer SetThreads(0)
	for _, threads := range []int{1, runtime.GOMAXPROCS(0)} {
		for _, l := range resNet18Convs {
			b.Run(fmt.Sprintf("threads=%d/%s", threads, l.name), func(b *testing.B) {
				SetThreads(threads)
				benchGemm(b, l.m, l.n, l.k, ourSgemm)
			})
		}
		b.Run(fmt.Sprintf("threads=%d/all", threads), func(b *testing.B) {
			SetThreads(threads)
			type buf struct{ a, b, c []float32 }
			bufs := make([]buf, len(resNet18Convs))
			var flops float64
			for i, l := range resNet18Convs {
				bufs[i] = buf{make([]float32, l.m*l.k), make([]float32, l.k*l.n), make([]float32, l.m*l.n)}
				flops += 2 * float64(l.m*l.n*l.k*l.count)
			}
			var cpu0 time.Duration
			for b.Loop() {
				if cpu0 == 0 {
					cpu0 = processCPU()
				}
				for i, l := range resNet18Convs {
					for range l.count {
						ourSgemm(l.m, l.n, l.k, bufs[i].a, bufs[i].b, bufs[i].c)
					}
				}
			}
			reportGFLOPS(b, flops, cpu0)
		})
	}
}

// BenchmarkPeak measures the CPU's FMA throughput (12 independent FMAs per
// iteration), the ceiling for the kernels: on one goroutine, and on
// GOMAXPROCS goroutines at once, which also shows how much of the cores a
// shared machine is giving the benchmarks at the time.
func BenchmarkPeak(b *testing.B) {
	for name, f := range peakLoops() {
		width := 8
		if name == "avx512" {
			width = 16
		}
		for _, threads := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(fmt.Sprintf("%s/threads=%d", name, threads), func(b *testing.B) {
				const n = 1 << 20
				var cpu0 time.Duration
				var wg sync.WaitGroup
				for b.Loop() {
					if cpu0 == 0 {
						cpu0 = processCPU()
					}
					for range threads {
						wg.Add(1)
						go func() { defer wg.Done(); f(n) }()
					}
					wg.Wait()
				}
				reportGFLOPS(b, float64(threads)*float64(n)*12*float64(width)*2, cpu0)
			})
		}
	}
}

// BenchmarkMicroKernel runs each micro-kernel alone on panels that stay in
// L1 (k = 256): the kernel's own speed, without packing or memory traffic.
func BenchmarkMicroKernel(b *testing.B) {
	for _, kn := range kernels {
		b.Run(kn.name, func(b *testing.B) {
			const k = 256
			a := make([]float32, k*kn.mr)
			bb := make([]float32, k*kn.nr)
			c := make([]float32, kn.mr*kn.nr)
			var cpu0 time.Duration
			for b.Loop() {
				if cpu0 == 0 {
					cpu0 = processCPU()
				}
				kn.fn(k, &a[0], &bb[0], &c[0], kn.nr, 1, 0)
			}
			reportGFLOPS(b, float64(2*k*kn.mr*kn.nr), cpu0)
		})
	}
}

// BenchmarkResNet18ConvPacked is BenchmarkResNet18Conv with the weights
// packed once by PackA, as an inference layer can keep them: the gain is
// the packing of A that Sgemm does on every call.
func BenchmarkResNet18ConvPacked(b *testing.B) {
	defer SetThreads(0)
	for _, threads := range []int{1, runtime.GOMAXPROCS(0)} {
		for _, l := range resNet18Convs {
			b.Run(fmt.Sprintf("threads=%d/%s", threads, l.name), func(b *testing.B) {
				SetThreads(threads)
				var pa *PackedA
				benchGemm(b, l.m, l.n, l.k, func(m, n, k int, a, bm, c []float32) {
					if pa == nil {
						pa = PackA(false, m, k, a, k)
					}
					pa.Sgemm(false, n, 1, bm, n, 0, c, n)
				})
			})
		}
	}
}

// mobileNetV2Pointwise are the distinct 1x1 convolutions of torchvision's
// mobilenet_v2 on a 224×224 image, batch 1, as GEMMs: M = output channels,
// N = output height*width, K = input channels (16 to 960: the small-K
// products of mobile networks). count is how many times the layer occurs.
var mobileNetV2Pointwise = []struct {
	name    string
	m, n, k int
	count   int
}{
	{"b1_project_32-16", 16, 112 * 112, 32, 1},
	{"b2_expand_16-96", 96, 112 * 112, 16, 1},
	{"b2_project_96-24", 24, 56 * 56, 96, 1},
	{"b3_expand_24-144", 144, 56 * 56, 24, 2},
	{"b3_project_144-24", 24, 56 * 56, 144, 1},
	{"b4_project_144-32", 32, 28 * 28, 144, 1},
	{"b5_expand_32-192", 192, 28 * 28, 32, 3},
	{"b5_project_192-32", 32, 28 * 28, 192, 2},
	{"b7_project_192-64", 64, 14 * 14, 192, 1},
	{"b8_expand_64-384", 384, 14 * 14, 64, 4},
	{"b8_project_384-64", 64, 14 * 14, 384, 3},
	{"b11_project_384-96", 96, 14 * 14, 384, 1},
	{"b12_expand_96-576", 576, 14 * 14, 96, 3},
	{"b12_project_576-96", 96, 14 * 14, 576, 2},
	{"b14_project_576-160", 160, 7 * 7, 576, 1},
	{"b15_expand_160-960", 960, 7 * 7, 160, 3},
	{"b15_project_960-160", 160, 7 * 7, 960, 2},
	{"b17_project_960-320", 320, 7 * 7, 960, 1},
	{"last_320-1280", 1280, 7 * 7, 320, 1},
}

// BenchmarkMobileNetV2Pointwise measures each distinct mobilenet_v2
// pointwise GEMM with the weights packed once (PackA, as a prepared layer
// keeps them), and "all", one forward pass's pointwise products in
// sequence. Compare GFLOP/cpu-s with BenchmarkPeak's.
func BenchmarkMobileNetV2Pointwise(b *testing.B) {
	defer SetThreads(0)
	for _, threads := range []int{1, runtime.GOMAXPROCS(0)} {
		for _, l := range mobileNetV2Pointwise {
			b.Run(fmt.Sprintf("threads=%d/%s", threads, l.name), func(b *testing.B) {
				SetThreads(threads)
				var pa *PackedA
				benchGemm(b, l.m, l.n, l.k, func(m, n, k int, a, bm, c []float32) {
					if pa == nil {
						pa = PackA(false, m, k, a, k)
					}
					pa.SgemmEpilogue(false, n, bm, n, c, n, nil)
				})
			})
		}
		b.Run(fmt.Sprintf("threads=%d/all", threads), func(b *testing.B) {
			SetThreads(threads)
			type buf struct {
				pa   *PackedA
				b, c []float32
			}
			bufs := make([]buf, len(mobileNetV2Pointwise))
			var flops float64
			for i, l := range mobileNetV2Pointwise {
				a := make([]float32, l.m*l.k)
				for j := range a {
					a[j] = float32(j%7) - 3
				}
				bufs[i] = buf{PackA(false, l.m, l.k, a, l.k), make([]float32, l.k*l.n), make([]float32, l.m*l.n)}
				flops += 2 * float64(l.m*l.n*l.k*l.count)
			}
			var cpu0 time.Duration
			for b.Loop() {
				if cpu0 == 0 {
					cpu0 = processCPU()
				}
				for i, l := range mobileNetV2Pointwise {
					for range l.count {
						bufs[i].pa.SgemmEpilogue(false, l.n, bufs[i].b, l.n, bufs[i].c, l.n, nil)
					}
				}
			}
			reportGFLOPS(b, flops, cpu0)
		})
	}
}
