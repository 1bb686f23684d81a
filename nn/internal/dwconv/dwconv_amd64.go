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
func runsZ8(dst, src *float32, nblk int, runs *Run, nruns int, w *float32, bias, lo, hi float32)

//go:noescape
func runsZ4(dst, src *float32, nblk int, runs *Run, nruns int, w *float32, bias, lo, hi float32)

//go:noescape
func runsZ1(dst, src *float32, nblk int, runs *Run, nruns int, w *float32, bias, lo, hi float32)

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

func taps(dst, src []float32, offs []int, w []float32, bias float32) {
	switch {
	case hasAVX512 && len(dst) >= 16:
		cover(len(dst), 16, func(nv, j, nblk int) {
			switch nv {
			case 8:
				tapsZ8(&dst[j], &src[j], nblk, &offs[0], &w[0], len(offs), bias)
			case 4:
				tapsZ4(&dst[j], &src[j], nblk, &offs[0], &w[0], len(offs), bias)
			default:
				tapsZ1(&dst[j], &src[j], nblk, &offs[0], &w[0], len(offs), bias)
			}
		})
	case hasAVX2 && len(dst) >= 8:
		cover(len(dst), 8, func(nv, j, nblk int) {
			switch nv {
			case 8:
				tapsY8(&dst[j], &src[j], nblk, &offs[0], &w[0], len(offs), bias)
			case 4:
				tapsY4(&dst[j], &src[j], nblk, &offs[0], &w[0], len(offs), bias)
			default:
				tapsY1(&dst[j], &src[j], nblk, &offs[0], &w[0], len(offs), bias)
			}
		})
	default:
		tapsGo(dst, src, offs, w, bias)
	}
}

func tapRuns(dst, src []float32, runs []Run, w []float32, bias, lo, hi float32) {
	if !hasAVX512 || len(dst) < 16 {
		var offBuf [64]int
		var wBuf [64]float32
		offs, ws := expandRuns(runs, w, offBuf[:], wBuf[:])
		taps(dst, src, offs, ws, bias)
		clampGo(dst, lo, hi)
		return
	}
	cover(len(dst), 16, func(nv, j, nblk int) {
		switch nv {
		case 8:
			runsZ8(&dst[j], &src[j], nblk, &runs[0], len(runs), &w[0], bias, lo, hi)
		case 4:
			runsZ4(&dst[j], &src[j], nblk, &runs[0], len(runs), &w[0], bias, lo, hi)
		default:
			runsZ1(&dst[j], &src[j], nblk, &runs[0], len(runs), &w[0], bias, lo, hi)
		}
	})
}

// cover covers n >= vw outputs with blocks of 8, 4 and 1 vectors of vw
// floats, calling run(nv, j, nblk) for nblk blocks of nv vectors from j.
// Outputs are a function of the source alone, so a tail shorter than a
// block is covered by a block that ends at n and overlaps the one before.
//
// run is a closure called directly (cover is inlined), so the slices it
// hands the assembly do not escape.
func cover(n, vw int, run func(nv, j, nblk int)) {
	j := 0
	if b := n / (8 * vw); b > 0 {
		run(8, 0, b)
		j = b * 8 * vw
		if n-j > 4*vw {
			run(8, n-8*vw, 1)
			return
		}
	}
	if n-j >= 4*vw {
		run(4, j, 1)
		j += 4 * vw
	}
	if b := (n - j) / vw; b > 0 {
		run(1, j, b)
		j += b * vw
	}
	if j < n {
		run(1, n-vw, 1)
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
