//go:build !amd64 || purego

package wino

var impl = "go"

func btAsm(src []float32, ss int, dst []float32, ds int, n int) int { return 0 }
func atAsm(src []float32, ss int, dst []float32, ds int, n int) int { return 0 }

// Force is a no-op without assembly kernels: only "go" exists.
func Force(isa string) { _ = isa }

func gather4Asm(dst, src []float32, n int) int  { return 0 }
func scatter4Asm(dst, src []float32, n int) int { return 0 }
