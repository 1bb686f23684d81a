package nn

import (
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/ckptkit/ckpt/nn/gemm"
	"github.com/ckptkit/ckpt/nn/internal/par"
	"github.com/ckptkit/ckpt/nn/internal/vec"
)

// ConvParams is the geometry of a 2-D convolution.
type ConvParams struct {
	Stride, Padding, Dilation [2]int
	Groups                    int
}

// Conv2d is torch.nn.Conv2d with zero padding. Weight is
// [out_channels, in_channels/groups, kh, kw], Bias [out_channels] or nil.
//
// Forward multiplies the weights, as a matrix, by the image's columns (the
// im2col matrix) with gemm.SgemmSource, which packs the columns straight
// from the image instead of materialising them; a 1×1, stride-1, unpadded
// convolution multiplies the input directly, and a depthwise convolution
// (one input and output channel per group) runs a direct loop. An eval-mode
// forward allocates only its output.
type Conv2d struct {
	Base
	InChannels, OutChannels int
	KernelSize              [2]int
	ConvParams
	Weight, Bias *Tensor

	// frozenCopy is the folded, packed copy a frozen convolution runs
	// with (see frozenPrep).
	frozenCopy atomic.Pointer[frozenCache]
}

// NewConv2d builds a Conv2d with a square kernel of size k (override with
// [KernelSize]); options [Stride], [Padding], [Dilation], [Groups] and
// [NoBias] mirror torch's arguments. Weights come from b ("weight", "bias"),
// or torch's default initialisation when b is nil.
func NewConv2d(b *Builder, in, out, k int, opts ...Option) *Conv2d {
	o := collect(opts)
	m := &Conv2d{InChannels: in, OutChannels: out}
	m.KernelSize = pair("kernel_size", o.kernel, k)
	if len(o.kernel) == 0 {
		m.KernelSize = [2]int{k, k}
	}
	m.Stride = pair("stride", o.stride, 1)
	m.Padding = pair("padding", o.padding, 0)
	m.Dilation = pair("dilation", o.dilation, 1)
	m.Groups = o.groups
	if m.Groups <= 0 || in%m.Groups != 0 || out%m.Groups != 0 {
		panic(fmt.Sprintf("nn: Conv2d: in_channels %d and out_channels %d must be divisible by groups %d", in, out, m.Groups))
	}
	fanIn := in / m.Groups * m.KernelSize[0] * m.KernelSize[1]
	bound := fanInBound(fanIn)
	m.Weight = b.Tensor("weight", []int{out, in / m.Groups, m.KernelSize[0], m.KernelSize[1]}, uniformInit(bound))
	if !o.noBias {
		m.Bias = b.Tensor("bias", []int{out}, uniformInit(bound))
	}
	m.RegisterParameter("weight", &m.Weight)
	m.RegisterParameter("bias", &m.Bias)
	return m
}

// Forward convolves x [N, C, H, W].
func (m *Conv2d) Forward(x *Tensor) *Tensor {
	if planOf(x) != nil {
		return ConvBNAct(m, nil, nil, x, nil)
	}
	if x.Dim() == 4 && m.Weight.Dim() == 4 {
		if g := convGeometry(x, m.Weight, m.Bias, m.ConvParams); depthwiseOutOfRange(&g) {
			y := conv2dPadded(x, m.Weight, m.ConvParams)
			if m.Bias != nil {
				y = y.Add(m.Bias.Reshape(1, m.OutChannels, 1, 1))
			}
			return y
		}
	}
	return conv2d(x, m.Weight, m.Bias, m.ConvParams)
}

// ExtraRepr prints torch's Conv2d arguments.
func (m *Conv2d) ExtraRepr() string {
	s := fmt.Sprintf("%d, %d, kernel_size=%s, stride=%s", m.InChannels, m.OutChannels,
		pyTuple(m.KernelSize[:]...), pyTuple(m.Stride[:]...))
	if m.Padding != [2]int{0, 0} {
		s += ", padding=" + pyTuple(m.Padding[:]...)
	}
	if m.Dilation != [2]int{1, 1} {
		s += ", dilation=" + pyTuple(m.Dilation[:]...)
	}
	if m.Groups != 1 {
		s += fmt.Sprintf(", groups=%d", m.Groups)
	}
	if m.Bias == nil {
		s += ", bias=False"
	}
	return s
}

// String returns torch's repr of the module.
func (m *Conv2d) String() string { return Repr(m) }

// Conv2dFn convolves x [N, C, H, W] with w [O, C/groups, kh, kw] and optional
// bias b [O], as torch.nn.functional.conv2d.
// Inside an [Infer] call of a [Prepare]d module, w is packed for the GEMM
// once, not on every call.
func Conv2dFn(x, w, b *Tensor, p ConvParams) *Tensor {
	if pl := planOf(x); pl != nil && !needGrad(x, w, b) {
		return conv2dPreparedFn(pl, x, w, b, p)
	}
	return conv2d(x, w, b, p)
}

type convGeom struct {
	n, c, h, wd, o, kh, kw, oh, ow int
	sh, sw, ph, pw, dh, dw, groups int
	cg, og, k, ohw                 int // per-group in/out channels, column rows, output pixels

	// colsDeint says the input the forward pass reads has each row's even
	// columns first, then its odd ones (see deinterleaveCols).
	colsDeint bool
}

func convGeometry(x, w, b *Tensor, p ConvParams) convGeom {
	if p.Groups == 0 {
		p.Groups = 1
	}
	for i := range 2 {
		if p.Stride[i] == 0 {
			p.Stride[i] = 1
		}
		if p.Dilation[i] == 0 {
			p.Dilation[i] = 1
		}
	}
	if x.Dim() != 4 || w.Dim() != 4 {
		shapeErr("Conv2d", "want input [N, C, H, W] and weight [O, C/groups, kh, kw]", x.shape, w.shape)
	}
	g := convGeom{n: x.shape[0], c: x.shape[1], h: x.shape[2], wd: x.shape[3],
		o: w.shape[0], kh: w.shape[2], kw: w.shape[3],
		sh: p.Stride[0], sw: p.Stride[1], ph: p.Padding[0], pw: p.Padding[1],
		dh: p.Dilation[0], dw: p.Dilation[1], groups: p.Groups}
	if g.c%g.groups != 0 || g.o%g.groups != 0 || w.shape[1] != g.c/g.groups {
		shapeErr("Conv2d", fmt.Sprintf("channels do not match weight with %d groups", g.groups), x.shape, w.shape)
	}
	if b != nil && (b.Dim() != 1 || b.shape[0] != g.o) {
		shapeErr("Conv2d", "bias does not match weight", w.shape, b.shape)
	}
	g.oh = (g.h+2*g.ph-g.dh*(g.kh-1)-1)/g.sh + 1
	g.ow = (g.wd+2*g.pw-g.dw*(g.kw-1)-1)/g.sw + 1
	if g.oh <= 0 || g.ow <= 0 {
		shapeErr("Conv2d", "input is smaller than the kernel", x.shape, w.shape)
	}
	g.cg, g.og = g.c/g.groups, g.o/g.groups
	g.k = g.cg * g.kh * g.kw
	g.ohw = g.oh * g.ow
	return g
}

func (g *convGeom) pointwise() bool {
	return g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0
}

func (g *convGeom) depthwise() bool { return g.cg == 1 && g.og == 1 && g.groups > 1 }

func conv2d(x, w, b *Tensor, p ConvParams) *Tensor {
	g := convGeometry(x, w, b, p)
	out := newResultData([]int{g.n, g.o, g.oh, g.ow}, false, x) // every path writes every element
	gf, xd := g, x.data                                         // the forward pass's view of the input
	if g.sw == 2 && g.kw > 1 && !g.depthwise() {
		// Stride-2 taps read every other column: laid out by parity, the
		// columns a tap reads are contiguous, and the kw taps of a row share
		// one copy of the input instead of each gathering from it.
		dt := deinterleaveCols(x, g.wd)
		defer Release(dt) // scratch of the forward pass alone
		xd, gf.colsDeint = dt.data, true
	}
	switch {
	case g.depthwise():
		depthwiseForward(&g, x.data, w.data, b, out.data)
	case g.groups >= 4 && g.og*g.k*g.ohw*g.groups >= parallelMin:
		// Many small groups (ResNeXt, RegNet) run in parallel; otherwise
		// groups run in turn and the product parallelises within each.
		gc, xc := gf, xd // the goroutines get copies, so gf and xd themselves do not escape
		for n := range g.n {
			parallelForWorkers(g.groups, min(runtime.GOMAXPROCS(0), g.groups), func(_, lo, hi int) {
				convGroups(&gc, xc, w.data, b, out.data, n, lo, hi)
			})
		}
	case g.groups == 1 && g.n > 1 && g.k > g.ohw:
		convBatched(&gf, x, xd, w.data, b, out.data)
	default:
		for n := range g.n {
			convGroups(&gf, xd, w.data, b, out.data, n, 0, g.groups)
		}
	}
	if !needGrad(x, w, b) {
		return out
	}
	gg := g // a copy, so that g itself stays on the stack when no graph is recorded
	return record(out, "ConvolutionBackward", []*Tensor{x, w, b}, func(gout []float32) [][]float32 {
		return conv2dBackward(&gg, x, w, b, gout)
	})
}

// convGroups convolves groups [lo, hi) of image n: the group's weights
// times its columns, which a pointwise convolution's input already is.
func convGroups(g *convGeom, x, w []float32, b *Tensor, out []float32, n, lo, hi int) {
	hw := g.h * g.wd
	for gr := lo; gr < hi; gr++ {
		xin := x[(n*g.c+gr*g.cg)*hw:]
		dst := out[(n*g.o+gr*g.og)*g.ohw:]
		beta := float32(0)
		if b != nil {
			fillRows(dst, g.ohw, b.data[gr*g.og:(gr+1)*g.og])
			beta = 1
		}
		if g.pointwise() {
			gemm.Sgemm(false, false, g.og, g.ohw, g.k, 1, w[gr*g.og*g.k:], g.k, xin, g.ohw, beta, dst, g.ohw)
		} else {
			gemm.SgemmSource(g.og, g.ohw, g.k, 1, w[gr*g.og*g.k:], g.k, &colSource{g: *g, x: xin}, beta, dst, g.ohw)
		}
	}
}

// convBatched convolves all the images of x in one product, for layers
// whose weights outweigh an image's columns (k > oh*ow: the later layers of
// a CNN), which image by image would pack the weights once per image. The
// product's columns run image after image, so its [O, N*oh*ow] result is
// then scattered into out's [N, O, oh*ow].
func convBatched(g *convGeom, x *Tensor, xd, w []float32, b *Tensor, out []float32) {
	cols := g.n * g.ohw
	tt := newResultData([]int{g.o, cols}, false, x)
	defer Release(tt)
	tmp := tt.data
	beta := float32(0)
	if b != nil {
		fillRows(tmp, cols, b.data)
		beta = 1
	}
	src := &colSource{g: *g, x: xd, imageStride: g.c * g.h * g.wd}
	gemm.SgemmSource(g.o, cols, g.k, 1, w, g.k, src, beta, tmp, cols)
	for n := range g.n {
		for oc := range g.o {
			copy(out[(n*g.o+oc)*g.ohw:(n*g.o+oc+1)*g.ohw], tmp[oc*cols+n*g.ohw:])
		}
	}
}

// fillRows sets row r of dst, rows of n floats, to v[r] for every r <
// len(v): a bias laid out for a product that adds to it (beta = 1).
func fillRows(dst []float32, n int, v []float32) {
	for r, x := range v {
		d := dst[r*n : (r+1)*n]
		for i := range d {
			d[i] = x
		}
	}
}

// deinterleaveCols returns x's data with each row of width wd rearranged
// as its even columns, then its odd ones: column iw moves to iw/2, or to
// (wd+1)/2 + iw/2 when iw is odd. The result is scratch of an inference
// call's arena inside one, for the caller to Release.
func deinterleaveCols(x *Tensor, wd int) *Tensor {
	ot := newResultData(cloneInts(x.shape), false, x)
	deinterleaveInto(ot.data, x.data, wd)
	return ot
}

// deinterleaveInto writes src into dst with each row of width wd laid out
// as its even columns, then its odd ones.
func deinterleaveInto(dst, src []float32, wd int) {
	half := (wd + 1) / 2
	parallelFor(len(src)/wd, len(src), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			s, d := src[r*wd:(r+1)*wd], dst[r*wd:(r+1)*wd]
			for j := range half {
				d[j] = s[2*j]
			}
			for j := range wd / 2 {
				d[half+j] = s[2*j+1]
			}
		}
	})
}

// im2col writes the columns of one group of one image: row (c, ki, kj) holds
// the input pixels that kernel tap meets at every output position.
func im2col(g *convGeom, x, col []float32) {
	if g.k*g.ohw < parallelMin {
		im2colRange(g, x, col, 0, g.cg)
		return
	}
	gc := *g // the goroutines get a copy, so g itself does not escape
	parallelFor(g.cg, g.k*g.ohw, func(lo, hi int) { im2colRange(&gc, x, col, lo, hi) })
}

func im2colRange(g *convGeom, x, col []float32, c0, c1 int) {
	for c := c0; c < c1; c++ {
		xc := x[c*g.h*g.wd : (c+1)*g.h*g.wd]
		for ki := range g.kh {
			for kj := range g.kw {
				row := col[((c*g.kh+ki)*g.kw+kj)*g.ohw:][:g.ohw]
				// Output columns whose input column is inside the image.
				off := kj*g.dw - g.pw
				lo, hi := validRange(off, g.sw, g.wd, g.ow)
				for oh := range g.oh {
					r := row[oh*g.ow : (oh+1)*g.ow]
					ih := oh*g.sh - g.ph + ki*g.dh
					if ih < 0 || ih >= g.h {
						clear(r)
						continue
					}
					xr := xc[ih*g.wd : (ih+1)*g.wd]
					for ow := range r[:lo] {
						r[ow] = 0
					}
					if g.sw == 1 {
						// Inline copy: rows are short (7 to 112), where
						// a memmove call costs more than the loop.
						dst, src := r[lo:hi], xr[lo+off:hi+off]
						src = src[:len(dst)]
						for i := range dst {
							dst[i] = src[i]
						}
					} else {
						for ow := lo; ow < hi; ow++ {
							r[ow] = xr[ow*g.sw+off]
						}
					}
					for ow := hi; ow < len(r); ow++ {
						r[ow] = 0
					}
				}
			}
		}
	}
}

// col2im adds columns back into the input gradient (the adjoint of im2col).
func col2im(g *convGeom, col, dx []float32) {
	for c := range g.cg {
		xc := dx[c*g.h*g.wd : (c+1)*g.h*g.wd]
		for ki := range g.kh {
			for kj := range g.kw {
				row := col[((c*g.kh+ki)*g.kw+kj)*g.ohw:][:g.ohw]
				off := kj*g.dw - g.pw
				lo, hi := validRange(off, g.sw, g.wd, g.ow)
				for oh := range g.oh {
					ih := oh*g.sh - g.ph + ki*g.dh
					if ih < 0 || ih >= g.h {
						continue
					}
					r := row[oh*g.ow : (oh+1)*g.ow]
					xr := xc[ih*g.wd : (ih+1)*g.wd]
					for ow := lo; ow < hi; ow++ {
						xr[ow*g.sw+off] += r[ow]
					}
				}
			}
		}
	}
}

// validRange returns the output positions [lo, hi) whose input index
// ow*stride+off lies in [0, size).
func validRange(off, stride, size, outSize int) (int, int) {
	lo := 0
	if off < 0 {
		lo = (-off + stride - 1) / stride
	}
	hi := 0
	if size-off > 0 {
		hi = (size - off + stride - 1) / stride
	}
	lo, hi = min(lo, outSize), min(hi, outSize)
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

// parallelMin is the amount of work (inner-loop iterations) below which
// parallelFor does not start goroutines.
const parallelMin = 1 << 15

// parallelFor runs f over [0, n) split across GOMAXPROCS goroutines when the
// work is large enough to pay for them.
func parallelFor(n, work int, f func(lo, hi int)) {
	p := runtime.GOMAXPROCS(0)
	if p <= 1 || n < 2 || work < parallelMin {
		f(0, n)
		return
	}
	p = min(p, n)
	par.Do(p, func(i int) { f(i*n/p, (i+1)*n/p) })
}

// parallelChunks runs f over [0, n) in parallel pieces when n is large
// (elementwise work, where a piece is a plain index range).
func parallelChunks(n int, f func(lo, hi int)) {
	if n < 4*parallelMin {
		f(0, n)
		return
	}
	parallelFor(n, n, f)
}

// parallelForWorkers splits [0, n) into workers contiguous ranges run
// concurrently; f also gets its worker index, to pick a private buffer.
func parallelForWorkers(n, workers int, f func(worker, lo, hi int)) {
	par.Do(workers, func(i int) { f(i, i*n/workers, (i+1)*n/workers) })
}

// conv2dBackward returns the gradients of x, w and b (nil for those that do
// not require grad) from gout, the gradient of the output [N, O, oh, ow].
//
// The weight gradient of a convolution without groups is one product over
// the whole batch, dW = dY · colᵀ, with dY gathered as [O, N*oh*ow] and
// colᵀ packed straight from the images (colTSource); the input gradient of
// a stride-1 one is the convolution of dY with the flipped, transposed
// weights, which the forward pass's packed kernels compute; other
// convolutions scatter Wᵀ·dY back through col2im, a channel per goroutine.
// Every product splits over the GEMM's threads.
func conv2dBackward(g *convGeom, x, w, b *Tensor, gout []float32) [][]float32 {
	var gx, gw, gb []float32
	if b != nil && b.requiresGrad {
		gb = biasGrad(g, gout)
	}
	needX, needW := x.requiresGrad, w.requiresGrad
	if !needX && !needW {
		return [][]float32{nil, nil, gb}
	}
	if g.depthwise() {
		gx, gw = depthwiseBackward(g, x.data, w.data, gout, needX, needW)
		return [][]float32{gx, gw, gb}
	}
	if g.groups != 1 {
		gx, gw = convBackwardGroups(g, x.data, w.data, gout, needX, needW)
		return [][]float32{gx, gw, gb}
	}
	// dY as one [O, N*ohw] matrix: gout itself for one image.
	dy := gout
	cols := g.n * g.ohw
	if g.n > 1 && (needW || !g.stride1()) {
		dy = gradBuf(len(gout), false)
		defer putGradBuf(dy)
		parallelFor(g.o, len(gout), func(lo, hi int) {
			for o := lo; o < hi; o++ {
				for n := range g.n {
					copy(dy[o*cols+n*g.ohw:o*cols+(n+1)*g.ohw], gout[(n*g.o+o)*g.ohw:])
				}
			}
		})
	}
	if needW {
		gw = make([]float32, len(w.data))
		if g.pointwise() && g.n == 1 {
			gemm.Sgemm(false, true, g.o, g.k, g.ohw, 1, dy, g.ohw, x.data, g.ohw, 0, gw, g.k)
		} else {
			src := &colTSource{g: *g, x: x.data, imageStride: g.c * g.h * g.wd}
			gemm.SgemmSource(g.o, g.k, cols, 1, dy, cols, src, 0, gw, g.k)
		}
	}
	if !needX {
		return [][]float32{nil, gw, gb}
	}
	switch {
	case g.pointwise():
		gx = gradBuf(len(x.data), false) // beta 0: every element is written
		hw := g.h * g.wd
		for n := range g.n {
			gemm.Sgemm(true, false, g.k, g.ohw, g.o, 1, w.data, g.k, gout[n*g.o*g.ohw:], g.ohw, 0, gx[n*g.c*hw:], g.ohw)
		}
	case g.stride1():
		gx = convTransposeStride1(g, w.data, gout)
	default:
		gx = gradBuf(len(x.data), true)
		col := gradBuf(g.k*cols, false)
		defer putGradBuf(col)
		gemm.Sgemm(true, false, g.k, cols, g.o, 1, w.data, g.k, dy, cols, 0, col, cols)
		gc := *g
		parallelFor(g.n*g.c, g.k*cols, func(lo, hi int) {
			for nc := lo; nc < hi; nc++ {
				col2imChannel(&gc, col, cols, nc/gc.c, nc%gc.c, gx)
			}
		})
	}
	return [][]float32{gx, gw, gb}
}

// stride1 reports whether the convolution's input gradient is itself a
// convolution of the output gradient: stride and dilation 1, and padding
// below the kernel size.
func (g *convGeom) stride1() bool {
	return g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.ph < g.kh && g.pw < g.kw
}

// biasGrad sums gout over images and pixels per output channel, in float64.
func biasGrad(g *convGeom, gout []float32) []float32 {
	gb := make([]float32, g.o)
	parallelFor(g.o, len(gout), func(lo, hi int) {
		for o := lo; o < hi; o++ {
			acc := 0.0
			for n := range g.n {
				s := 0.0
				for _, v := range gout[(n*g.o+o)*g.ohw : (n*g.o+o+1)*g.ohw] {
					s += float64(v)
				}
				acc += s
			}
			gb[o] = float32(acc)
		}
	})
	return gb
}

// convTransposeStride1 returns the input gradient of a stride-1 convolution
// without groups: dY convolved, with padding k-1-p, by the weights flipped
// in both spatial axes and with in and out channels swapped.
func convTransposeStride1(g *convGeom, w, gout []float32) []float32 {
	taps := g.kh * g.kw
	wt := gradBuf(len(w), false) // every element is written
	defer putGradBuf(wt)
	for o := range g.o {
		for c := range g.c {
			src := w[(o*g.c+c)*taps:][:taps]
			dst := wt[(c*g.o+o)*taps:][:taps]
			for t, v := range src {
				dst[taps-1-t] = v
			}
		}
	}
	dy := &Tensor{data: gout, shape: []int{g.n, g.o, g.oh, g.ow}}
	wT := &Tensor{data: wt, shape: []int{g.c, g.o, g.kh, g.kw}}
	return conv2d(dy, wT, nil, ConvParams{Stride: [2]int{1, 1}, Dilation: [2]int{1, 1}, Padding: [2]int{g.kh - 1 - g.ph, g.kw - 1 - g.pw}, Groups: 1}).data
}

// col2imChannel adds channel c of image n of the column matrix col (rows
// (c, ki, kj), columns (image, oh, ow), cols wide) into the input gradient
// dx [N, C, H, W]: the adjoint of im2col for one plane.
func col2imChannel(g *convGeom, col []float32, cols, n, c int, dx []float32) {
	xc := dx[(n*g.c+c)*g.h*g.wd:][:g.h*g.wd]
	for ki := range g.kh {
		for kj := range g.kw {
			row := col[((c*g.kh+ki)*g.kw+kj)*cols+n*g.ohw:][:g.ohw]
			off := kj*g.dw - g.pw
			lo, hi := validRange(off, g.sw, g.wd, g.ow)
			for oh := range g.oh {
				ih := oh*g.sh - g.ph + ki*g.dh
				if ih < 0 || ih >= g.h {
					continue
				}
				r := row[oh*g.ow : (oh+1)*g.ow]
				xr := xc[ih*g.wd : (ih+1)*g.wd]
				for ow := lo; ow < hi; ow++ {
					xr[ow*g.sw+off] += r[ow]
				}
			}
		}
	}
}

// depthwiseBackward is the backward pass of a depthwise convolution, a
// channel per goroutine: each weight's gradient is one float64 sum over the
// images and rows in order, so the result does not depend on the split.
//
// At stride 1 the input gradient is the depthwise convolution of the output
// gradient by the flipped kernels (padded by k-1-p), on the forward pass's
// kernels. At stride 2 the input's rows are first laid out by column parity
// (deinterleaveCols' order), which makes the columns each tap reads, and
// the input-gradient columns it updates, contiguous runs for the vector
// kernels; the gradient is put back in order at the end.
func depthwiseBackward(g *convGeom, x, w, gout []float32, needX, needW bool) (gx, gw []float32) {
	deint := g.sw == 2 && g.dw == 1 && g.wd >= 2
	if needX {
		// Written whole by the stride-1 convolution or the interleave at
		// the end; otherwise the loops below add into it.
		gx = gradBuf(len(x), !g.stride1() && !deint)
	}
	if needW {
		gw = make([]float32, len(w))
	}
	taps := g.kh * g.kw
	gxRows := gx // the input gradient the loops below update, nil for none
	if gx != nil && g.stride1() {
		wf := make([]float32, len(w))
		for c := range g.c {
			for t := range taps {
				wf[c*taps+taps-1-t] = w[c*taps+t]
			}
		}
		dy := &Tensor{data: gout, shape: []int{g.n, g.c, g.oh, g.ow}}
		wt := &Tensor{data: wf, shape: []int{g.c, 1, g.kh, g.kw}}
		tg := convGeometry(dy, wt, nil, ConvParams{Stride: [2]int{1, 1}, Dilation: [2]int{1, 1},
			Padding: [2]int{g.kh - 1 - g.ph, g.kw - 1 - g.pw}, Groups: g.c})
		depthwiseForward(&tg, gout, wf, nil, gx)
		gxRows = nil
	}
	if !needW && gxRows == nil {
		return gx, gw
	}
	xs := x
	if deint {
		xs = gradBuf(len(x), false)
		defer putGradBuf(xs)
		deinterleaveInto(xs, x, g.wd)
		if gxRows != nil {
			gxRows = gradBuf(len(x), true)
			defer putGradBuf(gxRows)
		}
	}
	depthwiseGradRows(g, xs, w, gout, gxRows, gw, deint)
	if deint && gxRows != nil {
		interleaveRows(gx, gxRows, g.wd)
	}
	return gx, gw
}

// depthwiseGradRows adds the weight gradient (gw, nil for none) and the
// input gradient (gx, nil for none) of a depthwise convolution, output row
// by output row. With deint, x and gx have their rows laid out by column
// parity (stride 2, no dilation).
func depthwiseGradRows(g *convGeom, x, w, gout, gx, gw []float32, deint bool) {
	hw, taps, half := g.h*g.wd, g.kh*g.kw, (g.wd+1)/2
	gc := *g
	parallelFor(g.c, g.n*len(w)*g.ohw, func(lo, hi int) {
		g := &gc
		// Per tap column kj: the output columns [los, his) whose input
		// column is inside the row, where the run of inputs they read
		// starts, and its step; and the weight gradient's sums.
		los, his, x0s, s := make([]int, g.kw), make([]int, g.kw), make([]int, g.kw), make([]float64, taps)
		step := g.sw
		for kj := range g.kw {
			e := kj*g.dw - g.pw
			los[kj], his[kj] = validRange(e, g.sw, g.wd, g.ow)
			x0s[kj] = los[kj]*g.sw + e
			if deint {
				// Column 2·ow+e is at (e odd: half +) ow + floor(e/2).
				x0s[kj] = los[kj] + e>>1
				if e&1 != 0 {
					x0s[kj] += half
				}
			}
		}
		if deint {
			step = 1
		}
		for c := lo; c < hi; c++ {
			clear(s)
			wc := w[c*taps : (c+1)*taps]
			for n := range g.n {
				nc := n*g.c + c
				xc := x[nc*hw : (nc+1)*hw]
				var gxc []float32
				if gx != nil {
					gxc = gx[nc*hw : (nc+1)*hw]
				}
				// Output row by output row, so that the input rows a row's
				// taps read and update stay in cache across its taps.
				for oh := range g.oh {
					grow := gout[nc*g.ohw+oh*g.ow : nc*g.ohw+(oh+1)*g.ow]
					for ki := range g.kh {
						ih := oh*g.sh - g.ph + ki*g.dh
						if ih < 0 || ih >= g.h {
							continue
						}
						xrow := xc[ih*g.wd : (ih+1)*g.wd]
						for kj := range g.kw {
							if his[kj] <= los[kj] {
								continue
							}
							t, gr, x0 := ki*g.kw+kj, grow[los[kj]:his[kj]], x0s[kj]
							if step == 1 {
								if gw != nil {
									_, d := vec.SumDotDevF64(gr, xrow[x0:x0+len(gr)], 0)
									s[t] += d
								}
								if gxc != nil {
									r := gxc[ih*g.wd+x0:][:len(gr)]
									vec.AxpbyF64(r, gr, r, float64(wc[t]), 1, 0) // r += w·gr
								}
								continue
							}
							if gw != nil {
								for i, gv := range gr {
									s[t] += float64(gv * xrow[x0+i*step])
								}
							}
							if gxc != nil {
								wv, r := wc[t], gxc[ih*g.wd:(ih+1)*g.wd]
								for i, gv := range gr {
									r[x0+i*step] += gv * wv
								}
							}
						}
					}
				}
			}
			if gw != nil {
				for t, v := range s {
					gw[c*taps+t] = float32(v)
				}
			}
		}
	})
}

// interleaveRows undoes deinterleaveInto, from src into dst.
func interleaveRows(dst, src []float32, wd int) {
	half := (wd + 1) / 2
	parallelFor(len(src)/wd, len(src), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			s, d := src[r*wd:(r+1)*wd], dst[r*wd:(r+1)*wd]
			for j := range half {
				d[2*j] = s[j]
			}
			for j := range wd / 2 {
				d[2*j+1] = s[half+j]
			}
		}
	})
}

// convBackwardGroups is the backward pass of a grouped convolution, group
// by group and image by image through im2col and col2im.
func convBackwardGroups(g *convGeom, x, w, gout []float32, needX, needW bool) (gx, gw []float32) {
	if needX {
		gx = gradBuf(len(x), true)
	}
	if needW {
		gw = make([]float32, len(w))
	}
	hw := g.h * g.wd
	col := make([]float32, g.k*g.ohw)
	for n := range g.n {
		for gr := range g.groups {
			xin := x[(n*g.c+gr*g.cg)*hw:]
			gsrc := gout[(n*g.o+gr*g.og)*g.ohw:]
			wg := w[gr*g.og*g.k:]
			if gw != nil {
				src := xin
				if !g.pointwise() {
					im2col(g, xin, col)
					src = col
				}
				// dW_g += dY_g · colᵀ
				gemm.Sgemm(false, true, g.og, g.k, g.ohw, 1, gsrc, g.ohw, src, g.ohw, 1, gw[gr*g.og*g.k:], g.k)
			}
			if gx != nil {
				dx := gx[(n*g.c+gr*g.cg)*hw:]
				if g.pointwise() {
					gemm.Sgemm(true, false, g.k, g.ohw, g.og, 1, wg, g.k, gsrc, g.ohw, 1, dx, g.ohw)
				} else {
					// dcol = W_gᵀ · dY_g, then scatter back.
					gemm.Sgemm(true, false, g.k, g.ohw, g.og, 1, wg, g.k, gsrc, g.ohw, 0, col, g.ohw)
					col2im(g, col, dx)
				}
			}
		}
	}
	return gx, gw
}
