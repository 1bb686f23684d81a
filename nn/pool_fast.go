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
//     reach); P's rows are plen long, a multiple of the column stride.
//     Where there is nothing to pad (2×2 stride-2 pools of even sizes), P is
//     the plane itself;
//  2. S = the running maximum of P over kw columns, at every position of the
//     flattened plane (kw-1 elementwise passes over shifted P; the values that
//     straddle two rows are never read);
//  3. H = every sw-th element of S: the row maxima of all windows, rows of
//     hs = plen/sw;
//  4. output row o is the maximum of H's rows o*sh, o*sh+dh, ... (the first
//     ow of each); when sh is 1, or rows are short, this is done for all
//     rows at once, as passes over H shifted by whole rows into V, whose row
//     o*sh is output row o (V is the output plane itself when sh is 1 and
//     H's rows are ow long).
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
	// Without padding, and with windows that end at the right edge, P is
	// the plane itself (2×2 stride-2 pools of even sizes).
	inPlace := ph == 0 && pw == 0 && plen == w && prows <= h
	n := np // P
	if inPlace {
		n = 0
	}
	if kw > 1 {
		n += np // S
	}
	if sw > 1 {
		n += np / sw // H
	}
	// V: the maximum over kh rows at every row where a window can start,
	// flattened; unless the row stride skips rows and output rows are long
	// enough to be done one by one.
	flat := kh > 1 && (sh == 1 || ow < 16)
	direct := flat && sh == 1 && hs == ow // V is the output plane
	vrows := (oh-1)*sh + 1
	if flat && !direct {
		n += vrows * hs
	}
	sc := getPoolScratch(n)
	buf := sc.buf
	var P []float32
	if !inPlace {
		P, buf = buf[:np], buf[np:]
		ninf := float32(math.Inf(-1))
		for i := range P {
			P[i] = ninf
		}
	}
	S, H := P, P
	if kw > 1 {
		S, buf = buf[:np], buf[np:]
		H = S
	}
	if sw > 1 {
		H, buf = buf[:np/sw], buf[np/sw:]
	}
	V := buf
	hw, ohw := h*w, oh*ow
	for nc := lo; nc < hi; nc++ {
		xc := x[nc*hw : (nc+1)*hw]
		oc := out[nc*ohw : (nc+1)*ohw]
		if inPlace {
			P = xc[:np]
			if kw == 1 {
				S = P
				if sw == 1 {
					H = P
				}
			}
		} else {
			for ih := range max(ih1, 0) {
				copy(P[(ph+ih)*plen+pw:(ph+ih)*plen+pw+iw1], xc[ih*w:ih*w+iw1])
			}
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
		switch {
		case flat:
			if direct {
				V = oc
			}
			m, r := vrows*hs, dh*hs
			maxKeepFirst(V[:m], H[:m], H[r:r+m])
			for ki := 2; ki < kh; ki++ {
				maxKeepFirst(V[:m], V[:m], H[ki*r:ki*r+m])
			}
			if !direct {
				for o := range oh {
					copy(oc[o*ow:(o+1)*ow], V[o*sh*hs:o*sh*hs+ow])
				}
			}
		case kh == 1:
			for o := range oh {
				copy(oc[o*ow:(o+1)*ow], H[o*sh*hs:o*sh*hs+ow])
			}
		default:
			for o := range oh {
				orow := oc[o*ow : (o+1)*ow]
				r := o * sh * hs
				maxKeepFirst(orow, H[r:r+ow], H[r+dh*hs:r+dh*hs+ow])
				for ki := 2; ki < kh; ki++ {
					maxKeepFirst(orow, orow, H[r+ki*dh*hs:r+ki*dh*hs+ow])
				}
			}
		}
	}
	poolScratches.Put(sc)
}

// maxKeepFirstGo sets dst[i] to b[i] when b[i] > a[i] or b[i] is NaN, and
// to a[i] otherwise: one step of a max that walks a then b. dst may be a.
// It selects bit patterns under two separate conditions, which the compiler
// turns into conditional moves: on random data a branch on "v > u || v != v"
// is mispredicted half the time, and costs several times as much.
func maxKeepFirstGo(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i, v := range b {
		u := a[i]
		r, vb := math.Float32bits(u), math.Float32bits(v)
		if v > u {
			r = vb
		}
		if v != v {
			r = vb
		}
		dst[i] = math.Float32frombits(r)
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

// avgPoolValues is average pooling without a graph: the same sums as
// avgPoolWindows, each window's in the same order, so the same bits, but
// taken as elementwise passes over a whole plane of window sums, over planes
// in parallel.
//
// The plane is copied into P, a buffer with zeros around it; adding a zero
// for each window element in the padding, or past the edge with ceil_mode,
// changes no sum, as a sum that starts at +0 is never -0 and x + 0 = x for
// every other x (NaN and infinities included). A window's sum is then kh*kw
// additions in row-major order, each one a pass of A[i] += P[off + i*sw]
// over the whole plane: A[o*L + c] is the sum of the window at row o*sh and
// column c*sw of P, with L = sh*plen/sw, so that consecutive output rows are
// L apart in A as their windows are sh rows apart in P. A's elements past
// ow in each row are sums of windows no output has (sh-1 of every sh
// rows, and those straddling two rows): wasted work, but in long vectors.
func avgPoolValues(gp *poolGeom, x, out []float32, countIncludePad bool) {
	work := len(x) + len(out)*gp.KernelSize[0]*gp.KernelSize[1]*gp.Stride[0]
	if work < parallelMin {
		avgPoolPlanes(gp, x, out, countIncludePad, 0, gp.n*gp.c)
		return
	}
	g := *gp // the goroutines get a copy, so gp does not escape
	parallelFor(g.n*g.c, work, func(lo, hi int) { avgPoolPlanes(&g, x, out, countIncludePad, lo, hi) })
}

func avgPoolPlanes(g *poolGeom, x, out []float32, countIncludePad bool, lo, hi int) {
	kh, kw := g.KernelSize[0], g.KernelSize[1]
	sh, sw, ph, pw := g.Stride[0], g.Stride[1], g.Padding[0], g.Padding[1]
	h, w, oh, ow := g.h, g.w, g.oh, g.ow
	plen := (ow-1)*sw + kw
	plen = (plen + sw - 1) / sw * sw
	L := sh * plen / sw
	// The image rows and columns that windows read.
	ih1, iw1 := min(h, (oh-1)*sh+kh-ph), min(w, plen-pw)
	// P's rows: the last pass reads up to (oh*L-1)*sw + (kh-1)*plen + kw-1.
	np := (oh*sh + kh) * plen
	na := oh * L
	sc := getPoolScratch(np + 2*na)
	P, A, D := sc.buf[:np], sc.buf[np:np+na], sc.buf[np+na:]
	clear(P)
	// D holds the divisors, laid out as A: small ints, exact in float32 (and
	// 1 under the sums no output has).
	for i := range D {
		D[i] = 1
	}
	for o := range oh {
		for c := range ow {
			_, _, _, _, D[o*L+c] = g.avgWindow(o, c, countIncludePad)
		}
	}
	hw, ohw := h*w, oh*ow
	for nc := lo; nc < hi; nc++ {
		xc := x[nc*hw : (nc+1)*hw]
		oc := out[nc*ohw : (nc+1)*ohw]
		for ih := range max(ih1, 0) {
			copy(P[(ph+ih)*plen+pw:(ph+ih)*plen+pw+iw1], xc[ih*w:ih*w+iw1])
		}
		clear(A)
		for ki := range kh {
			for kj := range kw {
				addStrided(A, P[ki*plen+kj:], sw)
			}
		}
		if L == ow {
			divTo(oc, A, D)
			continue
		}
		divTo(A, A, D)
		for o := range oh {
			copy(oc[o*ow:(o+1)*ow], A[o*L:o*L+ow])
		}
	}
	poolScratches.Put(sc)
}

// planeMeans sets out[i] to the mean of x[i*hw:(i+1)*hw]: adaptive average
// pooling to 1×1. Each plane is summed from 0 in order, as
// adaptivePoolWindows does, so with the same bits; four planes go side by
// side, so that four independent sums fill the adder's latency.
func planeMeans(x, out []float32, hw int) {
	if len(out) >= 4 && len(x) >= 4*parallelMin {
		parallelFor((len(out)+3)/4, len(x), func(lo, hi int) {
			hi = min(4*hi, len(out))
			planeMeansRange(x[4*lo*hw:hi*hw], out[4*lo:hi], hw)
		})
		return
	}
	planeMeansRange(x, out, hw)
}

func planeMeansRange(x, out []float32, hw int) {
	div := float32(hw)
	i := 0
	for ; i+4 <= len(out); i += 4 {
		x0 := x[i*hw : (i+1)*hw]
		x1 := x[(i+1)*hw : (i+2)*hw]
		x2 := x[(i+2)*hw : (i+3)*hw]
		x3 := x[(i+3)*hw : (i+4)*hw]
		var s0, s1, s2, s3 float32
		for j, v := range x0 {
			s0 += v
			s1 += x1[j]
			s2 += x2[j]
			s3 += x3[j]
		}
		out[i], out[i+1], out[i+2], out[i+3] = s0/div, s1/div, s2/div, s3/div
	}
	for ; i < len(out); i++ {
		var s float32
		for _, v := range x[i*hw : (i+1)*hw] {
			s += v
		}
		out[i] = s / div
	}
}

// addStridedGo sets dst[i] += src[i*n].
func addStridedGo(dst, src []float32, n int) {
	if len(dst) == 0 {
		return
	}
	if n == 1 {
		src = src[:len(dst)]
		for i, v := range src {
			dst[i] += v
		}
		return
	}
	src = src[:(len(dst)-1)*n+1]
	for i := range dst {
		dst[i] += src[i*n]
	}
}

// divToGo sets dst[i] = a[i] / b[i].
func divToGo(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] = a[i] / b[i]
	}
}
