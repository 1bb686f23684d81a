package nn

import (
	"math"
	"sync"

	"github.com/ckptkit/ckpt/nn/internal/dwconv"
	"github.com/ckptkit/ckpt/nn/internal/vec"
)

// depthwiseForward convolves each channel of x with its own kernel (groups
// = channels, one output channel per group) into out, adding the bias when
// there is one. Every element of out is written, so out need not be zero.
//
// Each channel is first laid out in scratch memory as a zero-padded plane
// split into sh·sw stride-phase planes (plane (a, b) holds the padded
// input's rows ≡ a mod sh and columns ≡ b mod sw). In that layout the tap
// (ki, kj) of output (oh, ow) reads phase plane ((ki·dh) mod sh,
// (kj·dw) mod sw) at row oh + ki·dh/sh and column ow + kj·dw/sw, a constant
// offset from the output's position when the output is counted with the
// phase planes' row pitch. So one call to dwconv.TapRuns filters the whole
// channel as a flat one-dimensional signal, with no padding tests in the
// loop; the pitch-wide rows it produces (their last columns are wasted
// work) are then copied out to the ow-wide output rows.
func depthwiseForward(gp *convGeom, x, w []float32, b *Tensor, out []float32) {
	var bias []float32
	if b != nil {
		bias = b.data
	}
	depthwiseForwardAct(gp, x, w, bias, vec.Identity, out)
}

// depthwiseForwardAct is depthwiseForward with the bias (nil for none) as a
// slice and the activation a applied to each output plane as soon as it is
// filtered, while it is still in cache, instead of in a pass of its own
// over the whole output (a prepared depthwise conv-bn-ReLU6).
func depthwiseForwardAct(gp *convGeom, x, w, bias []float32, a vec.Act, out []float32) {
	g := *gp // the goroutines get a copy, so the caller's geometry does not escape
	parallelFor(g.n*g.c, g.n*g.c*g.ohw*g.kh*g.kw, func(lo, hi int) {
		depthwiseChannels(&g, x, w, bias, a, out, lo, hi)
	})
}

// dwScratch is one worker's phase planes, flat output and taps.
type dwScratch struct {
	buf  []float32
	runs []dwconv.Run
}

var dwPool = sync.Pool{New: func() any { return new(dwScratch) }}

// depthwiseChannels convolves the channels lo..hi-1 of the batch
// (index n·C + c).
func depthwiseChannels(g *convGeom, x, w, bias []float32, a vec.Act, out []float32, lo, hi int) {
	if lo >= hi {
		return // an empty batch
	}
	sh, sw := g.sh, g.sw
	pitch := (g.wd + 2*g.pw + sw - 1) / sw // phase plane width
	prows := (g.h + 2*g.ph + sh - 1) / sh  // phase plane height
	plane := pitch * prows
	planes := sh*sw*plane + dwconv.Slack
	n := (g.oh-1)*pitch + g.ow // flat outputs, the last row's waste left off
	direct := pitch == g.ow    // flat outputs are the output plane itself
	// Two sets of planes: channel nc+1 is laid out before channel nc is
	// filtered, so the filter's loads do not wait on the stores just made
	// to the same memory.
	size := 2 * planes
	if !direct {
		size += n
	}
	s := dwPool.Get().(*dwScratch)
	defer dwPool.Put(s)
	if cap(s.buf) < size {
		s.buf = make([]float32, size)
	}
	srcs := [2][]float32{s.buf[:planes], s.buf[planes : 2*planes]}
	tmp := s.buf[2*planes : size]
	clear(s.buf[:2*planes]) // the padding; channels overwrite only the interior
	s.runs = depthwiseRuns(g, s.runs[:0], pitch, plane)
	hw, taps := g.h*g.wd, g.kh*g.kw
	clo, chi, clamped := actClamp(a) // a ReLU or ReLU6 is applied by the filter itself
	fillPhasePlanes(g, srcs[lo%2], x[lo*hw:(lo+1)*hw], pitch, plane)
	for nc := lo; nc < hi; nc++ {
		if nc+1 < hi {
			fillPhasePlanes(g, srcs[(nc+1)%2], x[(nc+1)*hw:(nc+2)*hw], pitch, plane)
		}
		src, c := srcs[nc%2], nc%g.c
		var bv float32
		if bias != nil {
			bv = bias[c]
		}
		dst := out[nc*g.ohw : (nc+1)*g.ohw]
		wc := w[c*taps : (c+1)*taps]
		if direct {
			dwconv.TapRunsClamp(dst, src, s.runs, wc, bv, clo, chi)
		} else {
			dwconv.TapRunsClamp(tmp, src, s.runs, wc, bv, clo, chi)
			dwconv.Copy2D(dst, g.ow, tmp, pitch, g.oh, g.ow)
		}
		if !clamped {
			vec.Apply(dst, a)
		}
	}
}

// actClamp returns the interval an activation clamps to, when it is a
// clamp (Identity, ReLU, ReLU6): clamped reports it is, and then the
// activation is exactly min(max(x, lo), hi). For any other activation it
// returns (-Inf, +Inf), a clamp that changes nothing, and false.
func actClamp(a vec.Act) (lo, hi float32, clamped bool) {
	inf := float32(math.Inf(1))
	switch a {
	case vec.Identity:
		return -inf, inf, true
	case vec.ReLU:
		return 0, inf, true
	case vec.ReLU6:
		return 0, 6, true
	}
	return -inf, inf, false
}

// depthwiseRuns appends the kernel's taps to runs as runs of consecutive
// offsets into the phase planes: tap (ki, kj) reads phase plane
// ((ki·dh) mod sh, (kj·dw) mod sw) at row ki·dh/sh and column kj·dw/sw, so
// the taps of one kernel row that share a phase plane (every sw-th tap, for
// dilation 1) are a run.
func depthwiseRuns(g *convGeom, runs []dwconv.Run, pitch, plane int) []dwconv.Run {
	sh, sw := g.sh, g.sw
	for ki := range g.kh {
		r := ki * g.dh
		rowOff := (r%sh)*sw*plane + r/sh*pitch
		for b := range sw {
			for kj := range g.kw {
				c := kj * g.dw
				if c%sw != b {
					continue
				}
				off, t := rowOff+b*plane+c/sw, ki*g.kw+kj
				if k := len(runs) - 1; k >= 0 && runs[k].Off+runs[k].Len == off && runs[k].Len < dwconv.MaxRun &&
					(runs[k].Len == 1 || runs[k].W+runs[k].Len*runs[k].WStep == t) {
					if runs[k].Len == 1 {
						runs[k].WStep = t - runs[k].W
					}
					runs[k].Len++
					continue
				}
				runs = append(runs, dwconv.Run{Off: off, Len: 1, W: t, WStep: 1})
			}
		}
	}
	return runs
}

// fillPhasePlanes writes the channel xc [h, wd] into the interior of its
// phase planes (see depthwiseForward); the padding is left as it is.
func fillPhasePlanes(g *convGeom, planes, xc []float32, pitch, plane int) {
	sh, sw, wd := g.sh, g.sw, g.wd
	for a := range sh {
		ih0 := ((a-g.ph)%sh + sh) % sh // first input row in row phase a
		if ih0 >= g.h {
			continue
		}
		rows := (g.h - ih0 + sh - 1) / sh
		base := a*sw*plane + (ih0+g.ph)/sh*pitch
		xs := xc[ih0*wd:]
		switch sw {
		case 1:
			dwconv.Copy2D(planes[base+g.pw:], pitch, xs, sh*wd, rows, wd)
		case 2:
			even := planes[base+g.pw%2*plane+g.pw/2:]
			odd := planes[base+(g.pw+1)%2*plane+(g.pw+1)/2:]
			dwconv.Deinterleave2D(even, odd, pitch, xs, sh*wd, rows, wd)
		default:
			for r := range rows {
				for j, v := range xs[r*sh*wd : r*sh*wd+wd] {
					col := j + g.pw
					planes[base+col%sw*plane+r*pitch+col/sw] = v
				}
			}
		}
	}
}
