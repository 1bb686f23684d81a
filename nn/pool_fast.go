package nn

import (
	"math"
	"sync"
)

// Inference paths of the pooling ops: no argmax indices, no bounds tests in
// the inner loops, work split over the N×C planes.
//
// Max pooling is separable: the maximum over a kh×kw window is the maximum
// over its kh rows of each row's maximum over kw columns. maxPoolPlanes works
// on a whole plane at a time, as long vectors, so that short rows cost no
// more than long ones:
//
//  1. the plane is copied into P, a buffer with -inf all around it (the
//     padding, and past the right and bottom edges what ceil_mode windows
//     reach); P's rows are plen long, a multiple of the column stride;
//  2. S = the running maximum of P over kw columns, at every position of the
//     flattened plane (kw-1 elementwise passes over shifted P; the values that
//     straddle two rows are never read);
//  3. H = every sw-th element of S: the row maxima of all windows, rows of
//     hs = plen/sw;
//  4. V = the running maximum of H over kh rows (elementwise passes over H
//     shifted by whole rows), at every row where a window can start;
//  5. output row o is the first ow elements of V's row o*sh.
//
// A -inf in P changes no window's result: it is never greater than what a
// window already holds, and torch starts a window at -inf too. Taken rows
// first, then columns, the result is bit-for-bit torch's: a window walked in
// row-major order keeps its first maximum (+0 against -0) unless a NaN
// comes, and then its last NaN. Each row's first maximum, then the first row
// holding the window's maximum, is the row-major first; and the last NaN of
// the last row holding one is the row-major last.

// poolScratch is a worker's buffer, reused between calls.
type poolScratch struct{ buf []float32 }

var poolScratches sync.Pool

func getPoolScratch(n int) *poolScratch {
	s, _ := poolScratches.Get().(*poolScratch)
	if s == nil {
		s = new(poolScratch)
	}
	if cap(s.buf) < n {
		s.buf = make([]float32, n)
	}
	s.buf = s.buf[:n]
	return s
}

// maxPoolValues is max pooling without argmax indices (inference).
func maxPoolValues(gp *poolGeom, x, out []float32) {
	work := len(x) + len(out)*gp.KernelSize[0]
	if work < parallelMin {
		maxPoolPlanes(gp, x, out, 0, gp.n*gp.c)
		return
	}
	g := *gp // the goroutines get a copy, so gp does not escape
	parallelFor(g.n*g.c, work, func(lo, hi int) { maxPoolPlanes(&g, x, out, lo, hi) })
}

// maxPoolPlanes pools planes [lo, hi) of x into out.
func maxPoolPlanes(g *poolGeom, x, out []float32, lo, hi int) {
	kh, kw := g.KernelSize[0], g.KernelSize[1]
	sh, sw, ph, pw, dh, dw := g.Stride[0], g.Stride[1], g.Padding[0], g.Padding[1], g.Dilation[0], g.Dilation[1]
	h, w, oh, ow := g.h, g.w, g.oh, g.ow
	// P's rows and columns: up to the last that a window reads.
	prows := (oh-1)*sh + (kh-1)*dh + 1
	plen := (ow-1)*sw + (kw-1)*dw + 1
	plen = (plen + sw - 1) / sw * sw
	hs := plen / sw
	// The image rows and columns that windows read.
	ih1, iw1 := min(h, prows-ph), min(w, plen-pw)
	np := prows * plen
	vrows := (oh-1)*sh + 1 // rows of V: window starts
	n := np                // P
	if kw > 1 {
		n += np // S
	}
	if sw > 1 {
		n += np / sw // H
	}
	direct := sh == 1 && hs == ow // V is the output plane
	if kh > 1 && !direct {
		n += vrows * hs // V
	}
	sc := getPoolScratch(n)
	buf := sc.buf
	P, buf := buf[:np], buf[np:]
	ninf := float32(math.Inf(-1))
	for i := range P {
		P[i] = ninf
	}
	S, H := P, P
	if kw > 1 {
		S, buf = buf[:np], buf[np:]
		H = S
	}
	if sw > 1 {
		H, buf = buf[:np/sw], buf[np/sw:]
	}
	var V []float32
	if kh > 1 && !direct {
		V = buf[:vrows*hs]
	}
	hw, ohw := h*w, oh*ow
	for nc := lo; nc < hi; nc++ {
		xc := x[nc*hw : (nc+1)*hw]
		oc := out[nc*ohw : (nc+1)*ohw]
		for ih := range max(ih1, 0) {
			copy(P[(ph+ih)*plen+pw:(ph+ih)*plen+pw+iw1], xc[ih*w:ih*w+iw1])
		}
		if kw > 1 {
			m := np - (kw-1)*dw
			maxKeepFirst(S[:m], P[:m], P[dw:dw+m])
			for kj := 2; kj < kw; kj++ {
				maxKeepFirst(S[:m], S[:m], P[kj*dw:kj*dw+m])
			}
		}
		if sw > 1 {
			everyNth(H, S, sw)
		}
		if kh == 1 {
			V = H
		} else {
			if direct {
				V = oc
			}
			m, r := vrows*hs, dh*hs
			maxKeepFirst(V[:m], H[:m], H[r:r+m])
			for ki := 2; ki < kh; ki++ {
				maxKeepFirst(V[:m], V[:m], H[ki*r:ki*r+m])
			}
		}
		if kh == 1 || !direct {
			for o := range oh {
				copy(oc[o*ow:(o+1)*ow], V[o*sh*hs:o*sh*hs+ow])
			}
		}
	}
	poolScratches.Put(sc)
}

// maxKeepFirstGo sets dst[i] to b[i] when b[i] > a[i] or b[i] is NaN, and
// to a[i] otherwise: one step of a max that walks a then b. dst may be a.
func maxKeepFirstGo(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i, v := range b {
		if u := a[i]; v > u || v != v {
			dst[i] = v
		} else {
			dst[i] = u
		}
	}
}

// everyNthGo sets dst[i] to src[i*n].
func everyNthGo(dst, src []float32, n int) {
	if len(dst) == 0 {
		return
	}
	src = src[:(len(dst)-1)*n+1]
	for i := range dst {
		dst[i] = src[i*n]
	}
}
