//go:build amd64 && !purego

package vec

import "golang.org/x/sys/cpu"

// asmKernels returns the assembly kernels this CPU runs, best first.
func asmKernels() []*kernels {
	var ks []*kernels
	if cpu.X86.HasAVX512F {
		ks = append(ks, avx512Kernels)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, avx2Kernels)
	}
	return ks
}

// asm adapts an assembly kernel to kernelFn.
func asm(f func(dst, src *float32, n int, scale, shift float32)) kernelFn {
	return func(dst, src []float32, scale, shift float32) {
		f(&dst[0], &src[0], len(src), scale, shift)
	}
}

// addReLUAVX2 is AddReLU over n floats (addrelu_amd64.s).
//
//go:noescape
func addReLUAVX2(dst, src *float32, n int)

func addReLU(dst, src []float32) {
	if cpu.X86.HasAVX2 {
		addReLUAVX2(&dst[0], &src[0], len(dst))
		return
	}
	addReLUGo(dst, src)
}
