package nn

import (
	"math"
	"unsafe"
)

// colSource is the column matrix of one group of one or more images (what
// im2col writes: row (c, ki, kj), column (image, oh, ow)) as a gemm.BSource:
// the product packs its panels straight from the images, so the matrix,
// several megabytes for an early ResNet layer, is never written out and
// read back.
type colSource struct {
	g convGeom  // a copy: a source handed to gemm escapes, the caller's geometry should not
	x []float32 // the group's input channels of the first image, [cg, h, w] (columns by parity when g.colsDeint)

	// imageStride is the distance in x from one image to the next, when
	// the columns span several (g.c*h*w); 0 for one image.
	imageStride int
}

// colRun is a run of a panel's columns along one output row: outputs
// (oh, ow0 .. ow0+n-1) of the image at offset img in x, at panel columns
// off .. off+n-1.
type colRun struct{ img, oh, ow0, off, n int }

// colSeg is what one kernel tap copies into a panel row for one run: n
// input pixels from src (an offset from the channel's plane in the first
// image, stepping by the
// stride) to panel columns dst .. dst+n-1. Columns no segment covers are
// padding, zero.
type colSeg struct{ dst, src, n int }

// maxRuns is the number of runs a panel's stack buffers hold: a panel is
// at most a kernel's nr columns (48 here). Wider panels, which only the
// netlib build asks for, spill to the heap.
const maxRuns = 64

// PackB implements gemm.BSource. Rows that share a kernel tap (the same
// row of every channel) copy the same segments from their channel's
// plane, so the panel is filled tap by tap: the segments are worked out
// once per tap and panel, then copied for each channel.
func (s *colSource) PackB(nr, pc, kc, jc, nc int, dst []float32) {
	g := &s.g
	var runsBuf [maxRuns]colRun
	var segsBuf [maxRuns]colSeg
	taps := g.kh * g.kw
	plane := g.h * g.wd
	for jr := 0; jr < nc; jr += nr {
		nrr := min(nr, nc-jr)
		d := dst[jr*kc : jr*kc+kc*nr]
		// The panel's columns, split where they wrap to the next output row.
		runs := runsBuf[:0]
		for j := 0; j < nrr; {
			col := jc + jr + j
			img, pix := col/g.ohw, col%g.ohw
			oh, ow := pix/g.ow, pix%g.ow
			n := min(g.ow-ow, nrr-j)
			runs = append(runs, colRun{img * s.imageStride, oh, ow, j, n})
			j += n
		}
		for t := range taps {
			ki, kj := t/g.kw, t%g.kw
			// Rows pc <= c*taps+t < pc+kc are this tap's.
			c0 := (pc - t + taps - 1) / taps
			if c0*taps+t >= pc+kc {
				continue
			}
			segs := segsBuf[:0]
			covered := 0 // columns the segments fill
			for _, r := range runs {
				ih := r.oh*g.sh + ki*g.dh - g.ph
				if ih < 0 || ih >= g.h {
					continue
				}
				iw0 := r.ow0*g.sw + kj*g.dw - g.pw
				lo, hi := validRange(iw0, g.sw, g.wd, r.n)
				if lo < hi {
					iw := iw0 + lo*g.sw
					if g.colsDeint {
						iw = iw>>1 + iw&1*((g.wd+1)/2) // and the run's columns are contiguous
					}
					segs = append(segs, colSeg{r.off + lo, r.img + ih*g.wd + iw, hi - lo})
					covered += hi - lo
				}
			}
			for q := c0*taps + t - pc; q < kc; q += taps {
				row := d[q*nr : q*nr+nr]
				xc := s.x[(pc+q)/taps*plane:]
				if covered < nr {
					clear(row) // padding, and the columns past nc
				}
				switch {
				case g.sw == 1 || g.colsDeint:
					for _, sg := range segs {
						copyShort(row[sg.dst:sg.dst+sg.n], xc[sg.src:sg.src+sg.n])
					}
				case g.sw == 2:
					for _, sg := range segs {
						out := row[sg.dst : sg.dst+sg.n]
						src := xc[sg.src : sg.src+2*len(out)-1]
						for i := range out {
							out[i] = src[2*i]
						}
					}
				default:
					for _, sg := range segs {
						out := row[sg.dst : sg.dst+sg.n]
						src := xc[sg.src:]
						for i := range out {
							out[i] = src[i*g.sw]
						}
					}
				}
			}
		}
	}
}

// copyShort copies src into dst (of equal length): inline for the short
// runs of late layers, where a memmove call costs more than the copy.
func copyShort(dst, src []float32) {
	if len(dst) >= 16 {
		copy(dst, src)
		return
	}
	src = src[:len(dst)]
	for i := range dst {
		dst[i] = src[i]
	}
}

// colTSource is the transpose of colSource's matrix, as a gemm.BSource:
// row (image, oh, ow), column (c, ki, kj), the right operand of a weight
// gradient dW = dY · colᵀ. Its panels are packed straight from the images.
type colTSource struct {
	g           convGeom  // a copy, as in colSource
	x           []float32 // the input [N, C, H, W]
	imageStride int       // c*h*w
}

// PackB implements gemm.BSource. The panel's rows (output pixels) are cut
// into runs along output rows once; then, run by run, each column (a
// channel and kernel tap) copies the input row segment that tap reads to a
// stride-nr column of the panel. Going run by run keeps the panel rows
// being written (a run's worth) in L1 while all nr columns fill them.
func (s *colTSource) PackB(nr, pc, kc, jc, nc int, dst []float32) {
	g := &s.g
	var runsBuf [maxRuns]colRun
	runs := runsBuf[:0]
	for p := 0; p < kc; {
		row := pc + p
		img, pix := row/g.ohw, row%g.ohw
		oh, ow := pix/g.ow, pix%g.ow
		n := min(g.ow-ow, kc-p)
		runs = append(runs, colRun{img * s.imageStride, oh, ow, p, n})
		p += n
	}
	taps := g.kh * g.kw
	plane := g.h * g.wd
	var chBuf, kiBuf, kjBuf [maxRuns]int
	fast := coltAVX512 && len(s.x) <= math.MaxInt32
	for jr := 0; jr < nc; jr += nr {
		nrr := min(nr, nc-jr)
		d := dst[jr*kc : jr*kc+kc*nr]
		if nrr < nr {
			clear(d)
		}
		ch, kis, kjs := chBuf[:], kiBuf[:], kjBuf[:]
		if nrr > maxRuns { // wider panels (netlib's) spill to the heap
			ch, kis, kjs = make([]int, nrr), make([]int, nrr), make([]int, nrr)
		}
		ch, kis, kjs = ch[:nrr], kis[:nrr], kjs[:nrr]
		for jj := range nrr {
			col := jc + jr + jj
			t := col % taps
			ch[jj], kis[jj], kjs[jj] = col/taps*plane, t/g.kw, t%g.kw
		}
		if fast {
			s.gatherRuns(runs, d, nr, nrr, ch, kis, kjs)
			continue
		}
		for _, r := range runs {
			base := unsafe.Pointer(&d[r.off*nr])
			for jj := range nrr {
				out := unsafe.Add(base, jj*4)
				ih := r.oh*g.sh + kis[jj]*g.dh - g.ph
				lo, hi := 0, 0
				iw0 := r.ow0*g.sw + kjs[jj]*g.dw - g.pw
				if ih >= 0 && ih < g.h {
					lo, hi = validRange(iw0, g.sw, g.wd, r.n)
				}
				for i := range lo {
					*(*float32)(unsafe.Add(out, i*nr*4)) = 0
				}
				if lo < hi {
					src := s.x[r.img+ch[jj]+ih*g.wd+iw0+lo*g.sw:]
					src = src[:(hi-lo-1)*g.sw+1]
					if g.sw == 1 {
						for i, v := range src {
							*(*float32)(unsafe.Add(out, (lo+i)*nr*4)) = v
						}
					} else {
						for i := range hi - lo {
							*(*float32)(unsafe.Add(out, (lo+i)*nr*4)) = src[i*g.sw]
						}
					}
				}
				for i := hi; i < r.n; i++ {
					*(*float32)(unsafe.Add(out, i*nr*4)) = 0
				}
			}
		}
	}
}

// colTLanes is what colTGatherAVX512 reads for 16 panel columns of one
// run: lane j's first input offset (row 0 of the run), its valid rows
// [lo, lo+width), and the input stride from one row of the run to the
// next. Its layout is the assembly's.
type colTLanes struct {
	idx, lo, width [16]int32
	sw             int32
}

// gatherRuns is the loop of PackB over runs with the AVX-512 gather: 16
// columns of a run's rows at a time, each row one gather and one store,
// instead of a scalar store per element down a column. Columns from nrr to
// nr (past the matrix) are written as zeros.
func (s *colTSource) gatherRuns(runs []colRun, d []float32, nr, nrr int, ch, kis, kjs []int) {
	g := &s.g
	for _, r := range runs {
		for g0 := 0; g0 < nr; g0 += 16 {
			nc := min(16, nr-g0)
			l := colTLanes{sw: int32(g.sw)}
			for j := range min(nc, nrr-g0) {
				jj := g0 + j
				ih := r.oh*g.sh + kis[jj]*g.dh - g.ph
				if ih < 0 || ih >= g.h {
					continue
				}
				iw0 := r.ow0*g.sw + kjs[jj]*g.dw - g.pw
				if lo, hi := validRange(iw0, g.sw, g.wd, r.n); lo < hi {
					l.idx[j] = int32(r.img + ch[jj] + ih*g.wd + iw0)
					l.lo[j], l.width[j] = int32(lo), int32(hi-lo)
				}
			}
			colTGatherAVX512(&d[r.off*nr+g0], nr, r.n, &s.x[0], &l, 1<<nc-1)
		}
	}
}
