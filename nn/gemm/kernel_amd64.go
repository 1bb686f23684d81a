//go:build amd64 && !purego

package gemm

import "golang.org/x/sys/cpu"

//go:generate go run gen_kernels.go

//go:noescape
func kernAVX2x6x16(k int, a, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func kernAVX2x6x16Edge(k int, a, b, c *float32, ldc int, alpha, beta float32, mrr, nrr int)

//go:noescape
func kernAVX512x12x32(k int, a, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func kernAVX512x12x32Edge(k int, a, b, c *float32, ldc int, alpha, beta float32, mrr, nrr int)

//go:noescape
func kernAVX512x12x32S(k int, a, b, c *float32, ldc int, alpha, beta float32, ldb int)

//go:noescape
func kernAVX512x14x32(k int, a, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func kernAVX512x14x32Edge(k int, a, b, c *float32, ldc int, alpha, beta float32, mrr, nrr int)

//go:noescape
func kernAVX512x14x32S(k int, a, b, c *float32, ldc int, alpha, beta float32, ldb int)

//go:noescape
func kernAVX512x8x48(k int, a, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func kernAVX512x8x48Edge(k int, a, b, c *float32, ldc int, alpha, beta float32, mrr, nrr int)

//go:noescape
func kernAVX512x8x48S(k int, a, b, c *float32, ldc int, alpha, beta float32, ldb int)

//go:noescape
func kernAVX512x24x16(k int, a, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func kernAVX512x24x16Edge(k int, a, b, c *float32, ldc int, alpha, beta float32, mrr, nrr int)

//go:noescape
func kernAVX512x24x16S(k int, a, b, c *float32, ldc int, alpha, beta float32, ldb int)

// Block sizes, for the machine these were measured on (AMD EPYC family 0x1a,
// Zen 5: 48 KiB L1d and 1 MiB L2 per core, 2×512-bit FMA pipes) and sound for
// any recent x86 core with at least 32 KiB L1d and 512 KiB L2:
//   - kc = 192..256: a B micro-panel, kc×nr floats (24 KiB for 12×32 at
//     kc = 192, 16 KiB for AVX2's 6×16 at 256), stays in L1 with the A
//     micro-panel streaming past, or streams from L2, which has the bandwidth
//     (the kernel needs about 11 bytes a cycle of B);
//   - mc ≈ 192: the packed A block, mc×kc, is at most 192 KiB, in L2 with
//     room for the B panels and C tiles passing through;
//   - nc ≈ 512..672: the packed B block, kc×nc, is about 512 KiB, so it is
//     still in L2 when the kernels read it back after packing (a 4 MiB block
//     in L3, BLIS's usual choice, measured up to 10% slower on ResNet-18's
//     early layers, where m = 64 and each block of B is used once; 1024³
//     lost a few percent to packing A once per nc block).
//
// Measured by thread CPU time, best of 6 (the machine was shared), kc over
// 128..320 moved 1024³ and ResNet-18 shapes by less than ±10%, with 192 best
// or level for 12×32; the micro-kernels alone run at 97-100% of the FMA
// peak (BenchmarkMicroKernel vs BenchmarkPeak).
var (
	avx2Kernel   = &kernel{name: "avx2-6x16", isa: "avx2", mr: 6, nr: 16, mc: 144, kc: 256, nc: 512, fn: kernAVX2x6x16, edge: kernAVX2x6x16Edge}
	avx512Kernel = &kernel{name: "avx512-12x32", isa: "avx512", mr: 12, nr: 32, mc: 192, kc: 192, nc: 672, fn: kernAVX512x12x32, edge: kernAVX512x12x32Edge, strided: kernAVX512x12x32S}
	avx512Alt1   = &kernel{name: "avx512-14x32", isa: "avx512", mr: 14, nr: 32, mc: 196, kc: 256, nc: 512, fn: kernAVX512x14x32, edge: kernAVX512x14x32Edge, strided: kernAVX512x14x32S}
	avx512Alt2   = &kernel{name: "avx512-8x48", isa: "avx512", mr: 8, nr: 48, mc: 192, kc: 256, nc: 528, fn: kernAVX512x8x48, edge: kernAVX512x8x48Edge, strided: kernAVX512x8x48S}
	avx512Alt3   = &kernel{name: "avx512-24x16", isa: "avx512", mr: 24, nr: 16, mc: 192, kc: 256, nc: 512, fn: kernAVX512x24x16, edge: kernAVX512x24x16Edge, strided: kernAVX512x24x16S, cost: 1.15}
)

// kernels lists the kernels this CPU can run, best first; the last is the
// pure-Go kernel.
var kernels = func() []*kernel {
	var ks []*kernel
	if cpu.X86.HasAVX512F {
		ks = append(ks, avx512Kernel, avx512Alt1, avx512Alt2, avx512Alt3)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, avx2Kernel)
	}
	return append(ks, goKernel)
}()

// packT sets dst[q*rows+i] = src[i*ld+q] for i < rows, q < kc; rows must be
// even and both regions in bounds (the caller slices them first).
//
//go:noescape
func packT(kc int, src *float32, ld int, dst *float32, rows int)

// packN sets dst[q*cols+j] = src[q*ld+j] for j < cols, q < kc; cols must be
// a multiple of 16 and both regions in bounds.
//
//go:noescape
func packN(kc int, src *float32, ld int, dst *float32, cols int)

// hasPackT tells whether packT and packN are assembly (else unused stubs).
const hasPackT = true

// fmaPeakAVX2 and fmaPeakAVX512 run n iterations of 12 independent FMAs on
// 8- and 16-float vectors; BenchmarkPeak uses them to measure the CPU's
// FMA throughput.
func fmaPeakAVX2(n int)
func fmaPeakAVX512(n int)

// peakLoops lists the FMA throughput loops this CPU runs, with the floats
// per vector.
func peakLoops() map[string]func(int) {
	m := map[string]func(int){}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		m["avx2"] = fmaPeakAVX2
	}
	if cpu.X86.HasAVX512F {
		m["avx512"] = fmaPeakAVX512
	}
	return m
}
