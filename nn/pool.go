package nn

import (
	"fmt"
	"math"
)

// PoolParams is the geometry of a 2-D pooling window.
type PoolParams struct {
	KernelSize, Stride, Padding, Dilation [2]int
	CeilMode                              bool
}

// poolOutSize is torch's pooling_output_shape.
func poolOutSize(in, k, s, p, d int, ceil bool) int {
	num := in + 2*p - d*(k-1) - 1
	if ceil {
		num += s - 1
	}
	out := floorDiv(num, s) + 1
	if ceil && (out-1)*s >= in+p {
		out--
	}
	return out
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

type poolGeom struct {
	n, c, h, w, oh, ow int
	PoolParams
}

func poolGeometry(op string, x *Tensor, p PoolParams) poolGeom {
	if x.Dim() != 4 {
		shapeErr(op, "want input [N, C, H, W]", x.shape)
	}
	for i := range 2 {
		if p.Stride[i] == 0 {
			p.Stride[i] = p.KernelSize[i]
		}
		if p.Dilation[i] == 0 {
			p.Dilation[i] = 1
		}
		if p.Padding[i]*2 > p.KernelSize[i] {
			shapeErr(op, fmt.Sprintf("pad should be at most half of kernel size, but got pad=%d and kernel_size=%d", p.Padding[i], p.KernelSize[i]), x.shape)
		}
	}
	g := poolGeom{n: x.shape[0], c: x.shape[1], h: x.shape[2], w: x.shape[3], PoolParams: p}
	g.oh = poolOutSize(g.h, p.KernelSize[0], p.Stride[0], p.Padding[0], p.Dilation[0], p.CeilMode)
	g.ow = poolOutSize(g.w, p.KernelSize[1], p.Stride[1], p.Padding[1], p.Dilation[1], p.CeilMode)
	if g.oh <= 0 || g.ow <= 0 {
		shapeErr(op, "output size is too small", x.shape)
	}
	return g
}

// MaxPool2dFn is torch.nn.functional.max_pool2d. Padding counts as -inf, a
// window holding NaN gives NaN, and of equal values (+0 and -0) the first in
// row-major order is kept, as in torch's CPU kernel.
func MaxPool2dFn(x *Tensor, p PoolParams) *Tensor {
	g := poolGeometry("MaxPool2d", x, p)
	out := newResultData([]int{g.n, g.c, g.oh, g.ow}, false, x)
	if !needGrad(x) {
		maxPoolValues(&g, x.data, out.data)
		return out
	}
	idx := make([]int32, len(out.data))
	maxPoolWithIndices(&g, x.data, out.data, idx)
	hw, ohw, planes := g.h*g.w, g.oh*g.ow, g.n*g.c
	return record(out, "MaxPool2DWithIndicesBackward", []*Tensor{x}, func(gr []float32) [][]float32 {
		gx := gradBuf(len(x.data), true)
		parallelFor(planes, len(x.data), func(lo, hi int) {
			for nc := lo; nc < hi; nc++ {
				for i := range ohw {
					if j := idx[nc*ohw+i]; j >= 0 {
						gx[nc*hw+int(j)] += gr[nc*ohw+i]
					}
				}
			}
		})
		return [][]float32{gx}
	})
}

// maxPoolIndexed is max pooling that also records, in idx, each output's
// argmax within its input plane (-1 for a window that holds no input). It
// walks every window in torch's order and is the reference the faster
// maxPoolValues is tested against: the last NaN of a window wins, else its
// first maximum.
func maxPoolIndexed(gp *poolGeom, x, out []float32, idx []int32) {
	g := *gp
	hw, ohw := g.h*g.w, g.oh*g.ow
	kh, kw := g.KernelSize[0], g.KernelSize[1]
	sh, sw, ph, pw, dh, dw := g.Stride[0], g.Stride[1], g.Padding[0], g.Padding[1], g.Dilation[0], g.Dilation[1]
	parallelFor(g.n*g.c, len(out)*kh*kw, func(lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			xc := x[nc*hw : (nc+1)*hw]
			oc := out[nc*ohw : (nc+1)*ohw]
			for oh := range g.oh {
				for ow := range g.ow {
					best := float32(math.Inf(-1))
					bi := -1
					for ki := range kh {
						ih := oh*sh - ph + ki*dh
						if ih < 0 || ih >= g.h {
							continue
						}
						for kj := range kw {
							iw := ow*sw - pw + kj*dw
							if iw < 0 || iw >= g.w {
								continue
							}
							v := xc[ih*g.w+iw]
							if v > best || v != v || bi < 0 {
								best, bi = v, ih*g.w+iw
							}
						}
					}
					oc[oh*g.ow+ow] = best
					if idx != nil {
						idx[nc*ohw+oh*g.ow+ow] = int32(bi)
					}
				}
			}
		}
	})
}

// AvgPool2dFn is torch.nn.functional.avg_pool2d (no divisor_override).
func AvgPool2dFn(x *Tensor, p PoolParams, countIncludePad bool) *Tensor {
	p.Dilation = [2]int{1, 1}
	g := poolGeometry("AvgPool2d", x, p)
	if !needGrad(x) {
		out := newResultData([]int{g.n, g.c, g.oh, g.ow}, false, x)
		avgPoolValues(&g, x.data, out.data, countIncludePad)
		return out
	}
	out := newResult([]int{g.n, g.c, g.oh, g.ow}, x)
	avgPoolWindows(&g, x.data, out.data, countIncludePad)
	gg := g // a copy, so that g itself stays on the stack when no graph is recorded
	hw, ohw := g.h*g.w, g.oh*g.ow
	return record(out, "AvgPool2DBackward", []*Tensor{x}, func(gr []float32) [][]float32 {
		gx := gradBuf(len(x.data), true)
		for nc := range gg.n * gg.c {
			for oh := range gg.oh {
				for ow := range gg.ow {
					h0, h1, w0, w1, div := gg.avgWindow(oh, ow, countIncludePad)
					v := gr[nc*ohw+oh*gg.ow+ow] / div
					for ih := h0; ih < h1; ih++ {
						for iw := w0; iw < w1; iw++ {
							gx[nc*hw+ih*gg.w+iw] += v
						}
					}
				}
			}
		}
		return [][]float32{gx}
	})
}

// avgWindow returns the input window of output (oh, ow), clipped to the
// image, and its divisor, as torch computes them.
func (g *poolGeom) avgWindow(oh, ow int, countIncludePad bool) (h0, h1, w0, w1 int, div float32) {
	h0, w0 = oh*g.Stride[0]-g.Padding[0], ow*g.Stride[1]-g.Padding[1]
	h1, w1 = min(h0+g.KernelSize[0], g.h+g.Padding[0]), min(w0+g.KernelSize[1], g.w+g.Padding[1])
	size := (h1 - h0) * (w1 - w0)
	h0, w0 = max(h0, 0), max(w0, 0)
	h1, w1 = min(h1, g.h), min(w1, g.w)
	if countIncludePad {
		return h0, h1, w0, w1, float32(size)
	}
	return h0, h1, w0, w1, float32((h1 - h0) * (w1 - w0))
}

// avgPoolWindows is average pooling one window at a time, in torch's order
// (each window's sum from 0, row-major, then divided): the graph-recording
// path and the reference avgPoolValues is tested against.
func avgPoolWindows(g *poolGeom, x, out []float32, countIncludePad bool) {
	hw, ohw := g.h*g.w, g.oh*g.ow
	for nc := range g.n * g.c {
		xc := x[nc*hw : (nc+1)*hw]
		for oh := range g.oh {
			for ow := range g.ow {
				h0, h1, w0, w1, div := g.avgWindow(oh, ow, countIncludePad)
				var s float32
				for ih := h0; ih < h1; ih++ {
					for iw := w0; iw < w1; iw++ {
						s += xc[ih*g.w+iw]
					}
				}
				out[nc*ohw+oh*g.ow+ow] = s / div
			}
		}
	}
}

func adaptiveRange(i, in, out int) (int, int) {
	return (i * in) / out, ((i+1)*in + out - 1) / out
}

// AdaptiveAvgPool2dFn is torch.nn.functional.adaptive_avg_pool2d.
func AdaptiveAvgPool2dFn(x *Tensor, oh, ow int) *Tensor {
	return adaptivePool(x, oh, ow, false)
}

// AdaptiveMaxPool2dFn is torch.nn.functional.adaptive_max_pool2d.
func AdaptiveMaxPool2dFn(x *Tensor, oh, ow int) *Tensor {
	return adaptivePool(x, oh, ow, true)
}

func adaptivePool(x *Tensor, oh, ow int, isMax bool) *Tensor {
	if x.Dim() != 4 || oh <= 0 || ow <= 0 {
		shapeErr("AdaptivePool2d", fmt.Sprintf("want input [N, C, H, W] and positive output size (%d, %d)", oh, ow), x.shape)
	}
	n, c, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	out := newResultData([]int{n, c, oh, ow}, false, x)
	hw, ohw := h*w, oh*ow
	var idx []int32
	if isMax && needGrad(x) {
		idx = make([]int32, len(out.data))
	}
	if !isMax && oh == 1 && ow == 1 {
		planeMeans(x.data, out.data, hw)
	} else {
		adaptivePoolWindows(x.data, out.data, n*c, h, w, oh, ow, isMax, idx)
	}
	name := "AdaptiveAvgPool2DBackward"
	if isMax {
		name = "AdaptiveMaxPool2DBackward"
	}
	if !needGrad(x) {
		return out
	}
	return record(out, name, []*Tensor{x}, func(gr []float32) [][]float32 {
		gx := gradBuf(len(x.data), true)
		for nc := range n * c {
			for i := range oh {
				h0, h1 := adaptiveRange(i, h, oh)
				for j := range ow {
					w0, w1 := adaptiveRange(j, w, ow)
					o := nc*ohw + i*ow + j
					if isMax {
						gx[nc*hw+int(idx[o])] += gr[o]
						continue
					}
					v := gr[o] / float32((h1-h0)*(w1-w0))
					for ih := h0; ih < h1; ih++ {
						for iw := w0; iw < w1; iw++ {
							gx[nc*hw+ih*w+iw] += v
						}
					}
				}
			}
		}
		return [][]float32{gx}
	})
}

// MaxPool2d is torch.nn.MaxPool2d (options [KernelSize], [Stride] (default:
// the kernel size), [Padding], [Dilation], [CeilMode]).
type MaxPool2d struct {
	Base
	PoolParams
	repr [4][]int // kernel, stride, padding, dilation as given, for printing
}

func poolArgs(k int, o options) ([]int, []int, []int, []int) {
	kernel := o.kernel
	if kernel == nil {
		kernel = []int{k}
	}
	stride := o.stride
	if stride == nil {
		stride = kernel
	}
	padding := o.padding
	if padding == nil {
		padding = []int{0}
	}
	dil := o.dilation
	if dil == nil {
		dil = []int{1}
	}
	return kernel, stride, padding, dil
}

// NewMaxPool2d returns a MaxPool2d with a square window of size k.
func NewMaxPool2d(k int, opts ...Option) *MaxPool2d {
	o := collect(opts)
	kernel, stride, padding, dil := poolArgs(k, o)
	m := &MaxPool2d{repr: [4][]int{kernel, stride, padding, dil}}
	m.KernelSize = pair("kernel_size", kernel, 0)
	m.Stride = pair("stride", stride, 0)
	m.Padding = pair("padding", padding, 0)
	m.Dilation = pair("dilation", dil, 1)
	m.CeilMode = o.ceilMode
	return m
}

// Forward pools x [N, C, H, W].
func (m *MaxPool2d) Forward(x *Tensor) *Tensor { return MaxPool2dFn(x, m.PoolParams) }

// ExtraRepr prints torch's MaxPool2d arguments as they were given.
func (m *MaxPool2d) ExtraRepr() string {
	return fmt.Sprintf("kernel_size=%s, stride=%s, padding=%s, dilation=%s, ceil_mode=%s",
		pyIntOrTuple(m.repr[0]), pyIntOrTuple(m.repr[1]), pyIntOrTuple(m.repr[2]), pyIntOrTuple(m.repr[3]), pyBool(m.CeilMode))
}

// String returns torch's repr of the module.
func (m *MaxPool2d) String() string { return Repr(m) }

// AvgPool2d is torch.nn.AvgPool2d (options [KernelSize], [Stride],
// [Padding], [CeilMode], [ExcludePad]).
type AvgPool2d struct {
	Base
	PoolParams
	CountIncludePad bool
	repr            [3][]int
}

// NewAvgPool2d returns an AvgPool2d with a square window of size k.
func NewAvgPool2d(k int, opts ...Option) *AvgPool2d {
	o := collect(opts)
	kernel, stride, padding, _ := poolArgs(k, o)
	m := &AvgPool2d{repr: [3][]int{kernel, stride, padding}, CountIncludePad: !o.excludePad}
	m.KernelSize = pair("kernel_size", kernel, 0)
	m.Stride = pair("stride", stride, 0)
	m.Padding = pair("padding", padding, 0)
	m.Dilation = [2]int{1, 1}
	m.CeilMode = o.ceilMode
	return m
}

// Forward pools x [N, C, H, W].
func (m *AvgPool2d) Forward(x *Tensor) *Tensor {
	return AvgPool2dFn(x, m.PoolParams, m.CountIncludePad)
}

// ExtraRepr prints torch's "kernel_size=.., stride=.., padding=..".
func (m *AvgPool2d) ExtraRepr() string {
	return fmt.Sprintf("kernel_size=%s, stride=%s, padding=%s", pyIntOrTuple(m.repr[0]), pyIntOrTuple(m.repr[1]), pyIntOrTuple(m.repr[2]))
}

// String returns torch's repr of the module.
func (m *AvgPool2d) String() string { return Repr(m) }

// AdaptiveAvgPool2d is torch.nn.AdaptiveAvgPool2d.
type AdaptiveAvgPool2d struct {
	Base
	OutputSize [2]int
	repr       []int
}

// NewAdaptiveAvgPool2d returns an AdaptiveAvgPool2d with output size size
// (one value for a square output, or height and width).
func NewAdaptiveAvgPool2d(size ...int) *AdaptiveAvgPool2d {
	return &AdaptiveAvgPool2d{OutputSize: pair("output_size", size, 1), repr: size}
}

// Forward pools x [N, C, H, W] to the output size.
func (m *AdaptiveAvgPool2d) Forward(x *Tensor) *Tensor {
	return AdaptiveAvgPool2dFn(x, m.OutputSize[0], m.OutputSize[1])
}

// ExtraRepr prints "output_size=..".
func (m *AdaptiveAvgPool2d) ExtraRepr() string { return "output_size=" + pyIntOrTuple(m.repr) }

// String returns torch's repr of the module.
func (m *AdaptiveAvgPool2d) String() string { return Repr(m) }

// AdaptiveMaxPool2d is torch.nn.AdaptiveMaxPool2d (without return_indices).
type AdaptiveMaxPool2d struct {
	Base
	OutputSize [2]int
	repr       []int
}

// NewAdaptiveMaxPool2d returns an AdaptiveMaxPool2d with output size size.
func NewAdaptiveMaxPool2d(size ...int) *AdaptiveMaxPool2d {
	return &AdaptiveMaxPool2d{OutputSize: pair("output_size", size, 1), repr: size}
}

// Forward pools x [N, C, H, W] to the output size.
func (m *AdaptiveMaxPool2d) Forward(x *Tensor) *Tensor {
	return AdaptiveMaxPool2dFn(x, m.OutputSize[0], m.OutputSize[1])
}

// ExtraRepr prints "output_size=..".
func (m *AdaptiveMaxPool2d) ExtraRepr() string { return "output_size=" + pyIntOrTuple(m.repr) }

// String returns torch's repr of the module.
func (m *AdaptiveMaxPool2d) String() string { return Repr(m) }

// adaptivePoolWindows is adaptive pooling one window at a time, in torch's
// order; idx, if not nil, gets max pooling's argmax.
func adaptivePoolWindows(x, out []float32, planes, h, w, oh, ow int, isMax bool, idx []int32) {
	hw, ohw := h*w, oh*ow
	for nc := range planes {
		xc := x[nc*hw : (nc+1)*hw]
		for i := range oh {
			h0, h1 := adaptiveRange(i, h, oh)
			for j := range ow {
				w0, w1 := adaptiveRange(j, w, ow)
				o := nc*ohw + i*ow + j
				if isMax {
					best, bi := float32(math.Inf(-1)), -1
					for ih := h0; ih < h1; ih++ {
						for iw := w0; iw < w1; iw++ {
							v := xc[ih*w+iw]
							if v > best || v != v || bi < 0 {
								best, bi = v, ih*w+iw
							}
						}
					}
					out[o] = best
					if idx != nil {
						idx[o] = int32(bi)
					}
					continue
				}
				var s float32
				for ih := h0; ih < h1; ih++ {
					for _, v := range xc[ih*w+w0 : ih*w+w1] {
						s += v
					}
				}
				out[o] = s / float32((h1-h0)*(w1-w0))
			}
		}
	}
}
