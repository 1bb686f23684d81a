//go:build !amd64 || purego

package vec

// asmKernels returns no kernels: pure Go is used.
func asmKernels() []*kernels { return nil }

func addReLU(dst, src []float32) { addReLUGo(dst, src) }
