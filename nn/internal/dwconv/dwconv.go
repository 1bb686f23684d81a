package dwconv

import (
	"fmt"
	"math"
)

// Taps sets dst[j] = bias + Σ_t w[t]·src[j+offs[t]] for every j <
// len(dst). Every offset must be non-negative with offs[t]+len(dst) <=
// len(src), and w must have a weight per offset; dst must not overlap src.
// The order of the sum is not specified (float32 rounding may differ
// between implementations).
func Taps(dst, src []float32, offs []int, w []float32, bias float32) {
	n := len(dst)
	if len(w) < len(offs) {
		panic(fmt.Sprintf("dwconv: %d weights for %d taps", len(w), len(offs)))
	}
	for _, o := range offs {
		if o < 0 || o+n > len(src) {
			panic(fmt.Sprintf("dwconv: tap offset %d with %d outputs outside a source of %d", o, n, len(src)))
		}
	}
	if n == 0 {
		return
	}
	if len(offs) == 0 {
		for j := range dst {
			dst[j] = bias
		}
		return
	}
	taps(dst, src, offs, w[:len(offs)], bias)
}

// A Run is a run of taps whose source offsets are consecutive: tap i < Len
// of the run reads src[j+Off+i] with weight w[W+i*WStep].
type Run struct{ Off, Len, W, WStep int }

// MaxRun is the longest Run [TapRuns] takes.
const MaxRun = 8

// Slack is how many floats past the last one a run reads src must still
// hold for [TapRuns]: a vector implementation loads whole vectors.
const Slack = 16

// TapRuns is [Taps] with the taps given as runs: dst[j] = bias + Σ over
// runs r and i < r.Len of w[r.W+i·r.WStep]·src[j+r.Off+i]. Each run needs
// 1 <= Len <= MaxRun, Off >= 0 and Off+Len-1+len(dst)+Slack <= len(src);
// dst must not overlap src.
func TapRuns(dst, src []float32, runs []Run, w []float32, bias float32) {
	inf := float32(math.Inf(1))
	TapRunsClamp(dst, src, runs, w, bias, -inf, inf)
}

// TapRunsClamp is [TapRuns] with every output clamped to [lo, hi] as it is
// stored: lo 0 and hi +Inf fuse a ReLU into the filter, lo 0 and hi 6 a
// ReLU6, without a second pass over dst. An output that is NaN stays NaN.
func TapRunsClamp(dst, src []float32, runs []Run, w []float32, bias, lo, hi float32) {
	n := len(dst)
	for _, r := range runs {
		last := r.W + (r.Len-1)*r.WStep
		if r.Len < 1 || r.Len > MaxRun || r.Off < 0 || r.Off+r.Len-1+n+Slack > len(src) ||
			r.W < 0 || r.W >= len(w) || last < 0 || last >= len(w) {
			panic(fmt.Sprintf("dwconv: run %+v with %d outputs outside a source of %d or %d weights", r, n, len(src), len(w)))
		}
	}
	if n == 0 {
		return
	}
	if len(runs) == 0 {
		for j := range dst {
			dst[j] = bias
		}
		clampGo(dst, lo, hi)
		return
	}
	tapRuns(dst, src, runs, w, bias, lo, hi)
}

// clampGo clamps x to [lo, hi] in place, leaving NaN as it is.
func clampGo(x []float32, lo, hi float32) {
	if math.IsInf(float64(lo), -1) && math.IsInf(float64(hi), 1) {
		return
	}
	for i, v := range x {
		if v < lo {
			x[i] = lo
		} else if v > hi {
			x[i] = hi
		}
	}
}

// expandRuns lists the taps of runs as offsets and weights, in offs and ws
// when they are long enough.
func expandRuns(runs []Run, w []float32, offs []int, ws []float32) ([]int, []float32) {
	offs, ws = offs[:0], ws[:0]
	for _, r := range runs {
		for i := range r.Len {
			offs = append(offs, r.Off+i)
			ws = append(ws, w[r.W+i*r.WStep])
		}
	}
	return offs, ws
}

// tapRunsGo is TapRuns by way of tapsGo.
func tapRunsGo(dst, src []float32, runs []Run, w []float32, bias float32) {
	var offBuf [64]int
	var wBuf [64]float32
	offs, ws := expandRuns(runs, w, offBuf[:], wBuf[:])
	tapsGo(dst, src, offs, ws, bias)
}

// Copy2D copies rows rows of cols floats from src to dst, the rows
// starting dp floats apart in dst and sp apart in src.
func Copy2D(dst []float32, dp int, src []float32, sp, rows, cols int) {
	if rows <= 0 || cols <= 0 {
		return
	}
	check2D("Copy2D destination", len(dst), dp, rows, cols)
	check2D("Copy2D source", len(src), sp, rows, cols)
	copy2D(dst, dp, src, sp, rows, cols)
}

// Deinterleave2D splits rows rows of cols floats of src into their even
// and odd elements: even[r*dp+i] = src[r*sp+2i] for 2i < cols and
// odd[r*dp+i] = src[r*sp+2i+1] for 2i+1 < cols.
func Deinterleave2D(even, odd []float32, dp int, src []float32, sp, rows, cols int) {
	if rows <= 0 || cols <= 0 {
		return
	}
	check2D("Deinterleave2D source", len(src), sp, rows, cols)
	check2D("Deinterleave2D even", len(even), dp, rows, (cols+1)/2)
	if cols > 1 {
		check2D("Deinterleave2D odd", len(odd), dp, rows, cols/2)
	}
	deinterleave2D(even, odd, dp, src, sp, rows, cols)
}

func check2D(what string, n, pitch, rows, cols int) {
	if cols > pitch && rows > 1 || (rows-1)*pitch+cols > n {
		panic(fmt.Sprintf("dwconv: %s of %d floats too short for %d rows of %d with pitch %d", what, n, rows, cols, pitch))
	}
}

// tapsGo is Taps in pure Go: the taps are applied four at a time, so each
// output is loaded and stored once per four taps.
func tapsGo(dst, src []float32, offs []int, w []float32, bias float32) {
	n := len(dst)
	for j := range dst {
		dst[j] = bias
	}
	t := 0
	for ; t+4 <= len(offs); t += 4 {
		w0, w1, w2, w3 := w[t], w[t+1], w[t+2], w[t+3]
		s0 := src[offs[t]:][:n]
		s1 := src[offs[t+1]:][:n]
		s2 := src[offs[t+2]:][:n]
		s3 := src[offs[t+3]:][:n]
		for j := range dst {
			dst[j] += w0*s0[j] + w1*s1[j] + w2*s2[j] + w3*s3[j]
		}
	}
	for ; t < len(offs); t++ {
		wt := w[t]
		s := src[offs[t]:][:n]
		for j := range dst {
			dst[j] += wt * s[j]
		}
	}
}

func copy2DGo(dst []float32, dp int, src []float32, sp, rows, cols int) {
	for r := range rows {
		copy(dst[r*dp:r*dp+cols], src[r*sp:r*sp+cols])
	}
}

func deinterleave2DGo(even, odd []float32, dp int, src []float32, sp, rows, cols int) {
	for r := range rows {
		s := src[r*sp : r*sp+cols]
		e := even[r*dp : r*dp+(cols+1)/2]
		for i := range e {
			e[i] = s[2*i]
		}
		if cols > 1 {
			o := odd[r*dp : r*dp+cols/2]
			for i := range o {
				o[i] = s[2*i+1]
			}
		}
	}
}
