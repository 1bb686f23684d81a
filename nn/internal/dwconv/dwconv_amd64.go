//go:build amd64 && !purego

package dwconv

import "golang.org/x/sys/cpu"

//go:generate go run gen_dwconv.go

//go:noescape
func tapsZ8(dst, src *float32, nblk int, offs *int, w *float32, ntaps int, bias float32)

//go:noescape
func tapsZ4(dst, src *float32, nblk int, offs *int, w *float32, ntaps int, bias float32)

//go:noescape
func tapsZ1(dst, src *float32, nblk int, offs *int, w *float32, ntaps int, bias float32)

//go:noescape
func tapsY8(dst, src *float32, nblk int, offs *int, w *float32, ntaps int, bias float32)

//go:noescape
func tapsY4(dst, src *float32, nblk int, offs *int, w *float32, ntaps int, bias float32)

//go:noescape
func tapsY1(dst, src *float32, nblk int, offs *int, w *float32, ntaps int, bias float32)

//go:noescape
func deint2DZ(even, odd *float32, dp int, src *float32, sp int, rows, cols int)

//go:noescape
func deint2DY(even, odd *float32, dp int, src *float32, sp int, rows, chunks int)

//go:noescape
func copy2DZ(dst *float32, dp int, src *float32, sp int, rows, cols int)

var (
	hasAVX512 = cpu.X86.HasAVX512F
	hasAVX2   = cpu.X86.HasAVX2 && cpu.X86.HasFMA
)

// Impl names the implementation in use: "avx512", "avx2" or "go".
var Impl = func() string {
	switch {
	case hasAVX512:
		return "avx512"
	case hasAVX2:
		return "avx2"
	}
	return "go"
}()

type tapsFn func(dst, src *float32, nblk int, offs *int, w *float32, ntaps int, bias float32)

func taps(dst, src []float32, offs []int, w []float32, bias float32) {
	switch {
	case hasAVX512 && len(dst) >= 16:
		tapsBlocks(dst, src, offs, w, bias, 16, tapsZ8, tapsZ4, tapsZ1)
	case hasAVX2 && len(dst) >= 8:
		tapsBlocks(dst, src, offs, w, bias, 8, tapsY8, tapsY4, tapsY1)
	default:
		tapsGo(dst, src, offs, w, bias)
	}
}

// tapsBlocks covers dst with blocks of 8, 4 and 1 vectors of vw floats.
// Outputs are a function of src alone, so a tail shorter than a block is
// covered by a block that ends at len(dst) and overlaps the one before.
// len(dst) >= vw.
func tapsBlocks(dst, src []float32, offs []int, w []float32, bias float32, vw int, k8, k4, k1 tapsFn) {
	n, nt := len(dst), len(offs)
	run := func(k tapsFn, j, nblk int) { k(&dst[j], &src[j], nblk, &offs[0], &w[0], nt, bias) }
	j := 0
	if b := n / (8 * vw); b > 0 {
		run(k8, 0, b)
		j = b * 8 * vw
		if r := n - j; r > 4*vw {
			run(k8, n-8*vw, 1)
			return
		}
	}
	if n-j >= 4*vw {
		run(k4, j, 1)
		j += 4 * vw
	}
	if b := (n - j) / vw; b > 0 {
		run(k1, j, b)
		j += b * vw
	}
	if j < n {
		run(k1, n-vw, 1)
	}
}

func copy2D(dst []float32, dp int, src []float32, sp, rows, cols int) {
	if !hasAVX512 {
		copy2DGo(dst, dp, src, sp, rows, cols)
		return
	}
	copy2DZ(&dst[0], dp, &src[0], sp, rows, cols)
}

func deinterleave2D(even, odd []float32, dp int, src []float32, sp, rows, cols int) {
	switch {
	case cols < 2:
		deinterleave2DGo(even, odd, dp, src, sp, rows, cols)
	case hasAVX512:
		deint2DZ(&even[0], &odd[0], dp, &src[0], sp, rows, cols)
	case hasAVX2 && cols >= 16:
		c := cols / 16
		deint2DY(&even[0], &odd[0], dp, &src[0], sp, rows, c)
		if cols > 16*c {
			deinterleave2DGo(even[8*c:], odd[8*c:], dp, src[16*c:], sp, rows, cols-16*c)
		}
	default:
		deinterleave2DGo(even, odd, dp, src, sp, rows, cols)
	}
}
