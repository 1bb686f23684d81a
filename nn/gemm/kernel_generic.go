//go:build !amd64 || purego

package gemm

var kernels = []*kernel{goKernel}

const hasPackT = false

func packT(kc int, src *float32, ld int, dst *float32, rows int) { panic("unreachable") }

func packN(kc int, src *float32, ld int, dst *float32, cols int) { panic("unreachable") }

func peakLoops() map[string]func(int) { return nil }
