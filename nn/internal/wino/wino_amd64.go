//go:build amd64 && !purego

package wino

import "golang.org/x/sys/cpu"

var impl = func() string {
	switch {
	case cpu.X86.HasAVX512F:
		return "avx512"
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return "avx2"
	}
	return "go"
}()

// Force selects the kernels ("avx512", "avx2" or "go") for tests of the
// paths this CPU would not take; one the CPU lacks is ignored.
func Force(isa string) {
	switch {
	case isa == "avx512" && cpu.X86.HasAVX512F,
		isa == "avx2" && cpu.X86.HasAVX2 && cpu.X86.HasFMA,
		isa == "go":
		impl = isa
	}
}

//go:noescape
func btAVX512(src *float32, ss int, dst *float32, ds int, n int, tail uint16)

//go:noescape
func atAVX512(src *float32, ss int, dst *float32, ds int, n int, tail uint16)

//go:noescape
func btAVX2(src *float32, ss int, dst *float32, ds int, n int)

//go:noescape
func atAVX2(src *float32, ss int, dst *float32, ds int, n int)

// btAsm runs the vector kernel over the first columns and returns how many
// it did; AVX-512 does all of them (a masked tail), AVX2 whole 8-lane
// groups.
func btAsm(src []float32, ss int, dst []float32, ds int, n int) int {
	switch impl {
	case "avx512":
		btAVX512(&src[0], ss, &dst[0], ds, n, uint16(1)<<(n%16)-1)
		return n
	case "avx2":
		if m := n &^ 7; m > 0 {
			btAVX2(&src[0], ss, &dst[0], ds, m)
			return m
		}
	}
	return 0
}

func atAsm(src []float32, ss int, dst []float32, ds int, n int) int {
	switch impl {
	case "avx512":
		atAVX512(&src[0], ss, &dst[0], ds, n, uint16(1)<<(n%16)-1)
		return n
	case "avx2":
		if m := n &^ 7; m > 0 {
			atAVX2(&src[0], ss, &dst[0], ds, m)
			return m
		}
	}
	return 0
}

//go:noescape
func gather4AVX512(dst, src *float32, n int, tail uint16)

//go:noescape
func scatter4AVX512(dst, src *float32, n int, tail uint16)

//go:noescape
func gather4AVX2(dst, src *float32, n int)

// gather4Asm does Gather4 with vector gathers and returns how many elements
// it did.
func gather4Asm(dst, src []float32, n int) int {
	switch impl {
	case "avx512":
		gather4AVX512(&dst[0], &src[0], n, uint16(1)<<(n%16)-1)
		return n
	case "avx2":
		if m := n &^ 7; m > 0 {
			gather4AVX2(&dst[0], &src[0], m)
			return m
		}
	}
	return 0
}

// scatter4Asm does Scatter4 with vector scatters (AVX-512 only) and returns
// how many elements it did.
func scatter4Asm(dst, src []float32, n int) int {
	if impl == "avx512" {
		scatter4AVX512(&dst[0], &src[0], n, uint16(1)<<(n%16)-1)
		return n
	}
	return 0
}
