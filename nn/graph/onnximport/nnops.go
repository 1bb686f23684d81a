package onnximport

import (
	"fmt"
	"math"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
)

// Network operators: convolution, pooling, normalizations, Gemm and
// MatMul. 2-D float32 cases run on nn's kernels; the rest on the generic
// kernels here.

func init() {
	register(buildConv, "Conv")
	register(buildConvTranspose, "ConvTranspose")
	register(buildPool, "MaxPool", "AveragePool")
	register(buildGlobalPool, "GlobalAveragePool", "GlobalMaxPool")
	register(buildBatchNorm, "BatchNormalization")
	register(buildInstanceNorm, "InstanceNormalization")
	register(buildLayerNorm, "LayerNormalization")
	register(buildLRN, "LRN")
	register(buildMVN, "MeanVarianceNormalization")
	register(buildGemm, "Gemm")
	register(buildMatMul, "MatMul")
}

// spatial holds the geometry of a convolution or pooling window over the
// trailing len(k) dimensions.
type spatial struct {
	k, s, d, pb, pe []int
}

// windowAttrs reads kernel_shape, strides, dilations, pads and auto_pad
// for an input with spatial dims in, returning the padded geometry.
func windowAttrs(c *nodeCtx, kernel []int, in []int, ceil bool) (spatial, error) {
	n := len(in)
	g := spatial{k: kernel, s: ones(n), d: ones(n), pb: make([]int, n), pe: make([]int, n)}
	if len(kernel) != n {
		return g, fmt.Errorf("kernel %v for %d spatial dimensions", kernel, n)
	}
	if st := c.ints("strides", nil); st != nil {
		if len(st) != n {
			return g, fmt.Errorf("strides %v for %d spatial dimensions", st, n)
		}
		g.s = toInts(st)
	}
	if dl := c.ints("dilations", nil); dl != nil {
		if len(dl) != n {
			return g, fmt.Errorf("dilations %v for %d spatial dimensions", dl, n)
		}
		g.d = toInts(dl)
	}
	for k := 0; k < n; k++ {
		if g.s[k] <= 0 || g.d[k] <= 0 || g.k[k] <= 0 || g.s[k] > 1<<20 || g.d[k] > 1<<20 || g.k[k] > 1<<20 {
			return g, fmt.Errorf("kernel %v, strides %v or dilations %v out of range", g.k, g.s, g.d)
		}
	}
	switch ap := c.str("auto_pad", "NOTSET"); ap {
	case "NOTSET", "":
		if p := c.ints("pads", nil); p != nil {
			if len(p) != 2*n {
				return g, fmt.Errorf("pads %v for %d spatial dimensions", p, n)
			}
			for k := 0; k < n; k++ {
				g.pb[k], g.pe[k] = int(p[k]), int(p[n+k])
				if p[k] < 0 || p[n+k] < 0 || p[k] > 1<<20 || p[n+k] > 1<<20 {
					return g, fmt.Errorf("pads %v", p)
				}
			}
		}
	case "VALID":
	case "SAME_UPPER", "SAME_LOWER":
		for k := 0; k < n; k++ {
			out := (in[k] + g.s[k] - 1) / g.s[k]
			total := max(0, (out-1)*g.s[k]+(g.k[k]-1)*g.d[k]+1-in[k])
			if ap == "SAME_UPPER" {
				g.pb[k] = total / 2
			} else {
				g.pb[k] = total - total/2
			}
			g.pe[k] = total - g.pb[k]
		}
	default:
		return g, fmt.Errorf("auto_pad %q", ap)
	}
	return g, nil
}

func ones(n int) []int {
	o := make([]int, n)
	for k := range o {
		o[k] = 1
	}
	return o
}

func toInts(v []int64) []int {
	o := make([]int, len(v))
	for k, e := range v {
		o[k] = int(e)
	}
	return o
}

func (g spatial) outSize(in []int, ceil bool) []int {
	out := make([]int, len(in))
	for k := range in {
		span := (g.k[k]-1)*g.d[k] + 1
		num := in[k] + g.pb[k] + g.pe[k] - span
		if ceil {
			out[k] = (num+g.s[k]-1)/g.s[k] + 1
			if (out[k]-1)*g.s[k] >= in[k]+g.pb[k] {
				out[k]--
			}
		} else {
			out[k] = floorDiv(num, g.s[k]) + 1
		}
		out[k] = max(out[k], 0)
	}
	return out
}

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func (g spatial) symmetric() bool {
	for k := range g.pb {
		if g.pb[k] != g.pe[k] {
			return false
		}
	}
	return true
}

// padValue pads the trailing dims of x by pb/pe (negative crops) with
// value (constant mode), or by reflection or edge replication.
func padValue(x *graph.Value, pb, pe []int, mode string, value float64) (*graph.Value, error) {
	s := x.Shape()
	r := len(s)
	off := r - len(pb)
	shape := append([]int{}, s...)
	for k := range pb {
		shape[off+k] = s[off+k] + pb[k] + pe[k]
		if shape[off+k] < 0 {
			return nil, fmt.Errorf("pads %v %v crop %v below zero", pb, pe, s)
		}
		if mode == "reflect" && (pb[k] >= s[off+k] || pe[k] >= s[off+k]) && s[off+k] > 0 && (pb[k] > 0 || pe[k] > 0) {
			if s[off+k] == 1 {
				continue
			}
			return nil, fmt.Errorf("reflect pads %v %v exceed %v", pb, pe, s)
		}
	}
	if mode != "constant" {
		for k := range pb {
			if s[off+k] == 0 && (pb[k] > 0 || pe[k] > 0) {
				return nil, fmt.Errorf("%s padding of an empty dimension", mode)
			}
		}
	}
	n := numel(shape)
	xs := strides(s)
	fill := x.Numel() // index of the appended constant
	idx := make([]int, n)
	counter := make([]int, r)
	for k := 0; k < n; k++ {
		pos := 0
		for d := 0; d < r; d++ {
			c := counter[d]
			if d >= off {
				c -= pb[d-off]
			}
			if c < 0 || c >= s[d] {
				switch mode {
				case "edge":
					c = min(max(c, 0), s[d]-1)
				case "reflect":
					if s[d] == 1 {
						c = 0
						break
					}
					period := 2 * (s[d] - 1)
					c = ((c % period) + period) % period
					if c >= s[d] {
						c = period - c
					}
				default:
					pos = -1
				}
			}
			if pos < 0 {
				break
			}
			pos += c * xs[d]
		}
		if pos < 0 {
			pos = fill
		}
		idx[k] = pos
		for d := r - 1; d >= 0; d-- {
			counter[d]++
			if counter[d] < shape[d] {
				break
			}
			counter[d] = 0
		}
	}
	src := concatFlat([]*graph.Value{x.WithShape([]int{x.Numel()}), graph.Make(x.DType(), []int{1}, []float64{value})})
	return take(src, idx, shape), nil
}

// checkWork bounds a window op's output and its tap table by limit.
func checkWork(x *graph.Value, g spatial, limit int) error {
	out := g.outSize(x.Shape()[2:], true)
	n := numel(out)
	if n < 0 || n > limit || numel(g.k) > limit || n*numel(g.k) > 16*limit || n*x.Shape()[0]*x.Shape()[1] > 16*limit {
		return checkElems(limit+1, limit)
	}
	return nil
}

func buildConv(c *nodeCtx) (graph.Kernel, error) {
	limit := c.opts.MaxElements
	groups := int(c.int("group", 1))
	kattr := c.ints("kernel_shape", nil)
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x, w := in[0], in[1]
		var b *graph.Value
		if len(in) > 2 {
			b = in[2]
		}
		if x.Rank() < 3 || w.Rank() != x.Rank() {
			return nil, fmt.Errorf("input %v and weight %v", x.Shape(), w.Shape())
		}
		kernel := w.Shape()[2:]
		if kattr != nil && !sameShape(toInts(kattr), kernel) {
			return nil, fmt.Errorf("kernel_shape %v differs from the weight's %v", kattr, w.Shape())
		}
		g, err := windowAttrs(c, kernel, x.Shape()[2:], false)
		if err != nil {
			return nil, err
		}
		if err := checkWork(x, g, limit); err != nil {
			return nil, err
		}
		if groups <= 0 || x.Shape()[1] != w.Shape()[1]*groups || w.Shape()[0]%groups != 0 {
			return nil, fmt.Errorf("input %v, weight %v and %d groups do not fit", x.Shape(), w.Shape(), groups)
		}
		if x.DType() != graph.Float32 || x.Rank() > 4 {
			return conv(x, w, b, g, groups)
		}
		// nn's Conv2d: 1-D convolutions as 2-D ones of height 1.
		if x.Rank() == 3 {
			x = x.WithShape([]int{x.Shape()[0], x.Shape()[1], 1, x.Shape()[2]})
			w = w.WithShape([]int{w.Shape()[0], w.Shape()[1], 1, w.Shape()[2]})
			g = spatial{k: []int{1, g.k[0]}, s: []int{1, g.s[0]}, d: []int{1, g.d[0]}, pb: []int{0, g.pb[0]}, pe: []int{0, g.pe[0]}}
		}
		if !g.symmetric() {
			x, err = padValue(x, g.pb, g.pe, "constant", 0)
			if err != nil {
				return nil, err
			}
			g.pb, g.pe = []int{0, 0}, []int{0, 0}
		}
		var bt *nn.Tensor
		if b != nil {
			bt = b.Tensor()
		}
		y := nn.Conv2dFn(x.Tensor(), w.Tensor(), bt, nn.ConvParams{
			Stride: [2]int{g.s[0], g.s[1]}, Padding: [2]int{g.pb[0], g.pb[1]}, Dilation: [2]int{g.d[0], g.d[1]}, Groups: groups})
		if in[0].Rank() == 3 {
			y = y.Reshape(y.Shape()[0], y.Shape()[1], y.Shape()[3])
		}
		return one(graph.FromTensor(y)), nil
	}, nil
}

// conv is a direct N-d convolution (any float type), with autograd for
// float32.
// tapTable maps each position of the grid from (row-major) and each kernel
// offset to the position of the grid to that the window of g puts there:
// taps[i*kn+k] = i*stride - pad_begin + k*dilation, per dimension, or -1
// outside to. A convolution reads its input from its output positions
// (from = output, to = input); a transposed one writes the other way.
func tapTable(from, to []int, g spatial) []int {
	kn, fn := numel(g.k), numel(from)
	taps := make([]int, fn*kn)
	fc := make([]int, len(from))
	kc := make([]int, len(g.k))
	for i := 0; i < fn; i++ {
		rem := i
		for d := len(from) - 1; d >= 0; d-- {
			fc[d] = rem % from[d]
			rem /= from[d]
		}
		for k := 0; k < kn; k++ {
			rem := k
			for d := len(g.k) - 1; d >= 0; d-- {
				kc[d] = rem % g.k[d]
				rem /= g.k[d]
			}
			pos := 0
			for d := range to {
				p := fc[d]*g.s[d] - g.pb[d] + kc[d]*g.d[d]
				if p < 0 || p >= to[d] {
					pos = -1
					break
				}
				pos = pos*to[d] + p
			}
			taps[i*kn+k] = pos
		}
	}
	return taps
}

func conv(x, w, b *graph.Value, g spatial, groups int) ([]*graph.Value, error) {
	xs, ws := x.Shape(), w.Shape()
	sp := xs[2:]
	out := g.outSize(sp, false)
	n, ci, co := xs[0], xs[1], ws[0]
	cig, cog := ci/groups, co/groups
	shape := append([]int{n, co}, out...)
	xf, wf := x.Float64s(), w.Float64s()
	var bf []float64
	if b != nil {
		bf = b.Float64s()
	}
	kn := numel(g.k)
	on := numel(out)
	inN := numel(sp)
	// For each output position and kernel offset, the input position or -1.
	taps := tapTable(out, sp, g)
	y := make([]float64, numel(shape))
	for bi := 0; bi < n; bi++ {
		for oc := 0; oc < co; oc++ {
			gr := oc / cog
			for o := 0; o < on; o++ {
				s := 0.0
				if bf != nil {
					s = bf[oc]
				}
				for ic := 0; ic < cig; ic++ {
					xb := (bi*ci + gr*cig + ic) * inN
					wb := (oc*cig + ic) * kn
					for k := 0; k < kn; k++ {
						if p := taps[o*kn+k]; p >= 0 {
							s += xf[xb+p] * wf[wb+k]
						}
					}
				}
				y[(bi*co+oc)*on+o] = s
			}
		}
	}
	res := graph.Make(x.DType(), shape, y)
	if x.DType() != graph.Float32 {
		return one(res), nil
	}
	tx, tw := x.Tensor(), w.Tensor()
	ins := []*nn.Tensor{tx, tw}
	if b != nil {
		ins = append(ins, b.Tensor())
	}
	t := nn.Record(res.Tensor(), "Conv", ins, func(gr []float32) [][]float32 {
		gx, gw := make([]float32, len(xf)), make([]float32, len(wf))
		var gb []float32
		if b != nil {
			gb = make([]float32, len(bf))
		}
		for bi := 0; bi < n; bi++ {
			for oc := 0; oc < co; oc++ {
				grp := oc / cog
				for o := 0; o < on; o++ {
					gv := float64(gr[(bi*co+oc)*on+o])
					if gb != nil {
						gb[oc] += float32(gv)
					}
					for ic := 0; ic < cig; ic++ {
						xb := (bi*ci + grp*cig + ic) * inN
						wb := (oc*cig + ic) * kn
						for k := 0; k < kn; k++ {
							if p := taps[o*kn+k]; p >= 0 {
								gx[xb+p] += float32(gv * wf[wb+k])
								gw[wb+k] += float32(gv * xf[xb+p])
							}
						}
					}
				}
			}
		}
		return [][]float32{gx, gw, gb}[:len(ins)]
	})
	return one(graph.FromTensor(t)), nil
}

func buildConvTranspose(c *nodeCtx) (graph.Kernel, error) {
	limit := c.opts.MaxElements
	groups := int(c.int("group", 1))
	kattr := c.ints("kernel_shape", nil)
	outPad := c.ints("output_padding", nil)
	outShape := c.ints("output_shape", nil)
	autoPad := c.str("auto_pad", "NOTSET")
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x, w := in[0], in[1]
		var b *graph.Value
		if len(in) > 2 {
			b = in[2]
		}
		if x.Rank() < 3 || w.Rank() != x.Rank() || x.Shape()[1] != w.Shape()[0] || groups <= 0 || w.Shape()[0]%groups != 0 {
			return nil, fmt.Errorf("input %v, weight %v and %d groups do not fit", x.Shape(), w.Shape(), groups)
		}
		sp := x.Shape()[2:]
		nd := len(sp)
		kernel := w.Shape()[2:]
		if kattr != nil && !sameShape(toInts(kattr), kernel) {
			return nil, fmt.Errorf("kernel_shape %v differs from the weight's %v", kattr, w.Shape())
		}
		g := spatial{k: kernel, s: ones(nd), d: ones(nd), pb: make([]int, nd), pe: make([]int, nd)}
		if st := c.ints("strides", nil); st != nil {
			g.s = toInts(st)
		}
		if dl := c.ints("dilations", nil); dl != nil {
			g.d = toInts(dl)
		}
		if p := c.ints("pads", nil); p != nil && len(p) == 2*nd {
			for k := 0; k < nd; k++ {
				g.pb[k], g.pe[k] = int(p[k]), int(p[nd+k])
			}
		}
		op := make([]int, nd)
		if outPad != nil {
			op = toInts(outPad)
		}
		if len(g.s) != nd || len(g.d) != nd || len(op) != nd || len(g.k) != nd {
			return nil, fmt.Errorf("attributes do not match %d spatial dimensions", nd)
		}
		for k := 0; k < nd; k++ {
			if g.s[k] <= 0 || g.d[k] <= 0 || g.s[k] > limit || g.d[k] > limit || op[k] < 0 || op[k] > limit {
				return nil, fmt.Errorf("strides %v, dilations %v, output_padding %v", g.s, g.d, op)
			}
		}
		out := make([]int, nd)
		for k := 0; k < nd; k++ {
			full := g.s[k]*(sp[k]-1) + op[k] + (g.k[k]-1)*g.d[k] + 1
			if outShape != nil {
				if len(outShape) < nd {
					return nil, fmt.Errorf("output_shape %v", outShape)
				}
				want := int(outShape[len(outShape)-nd+k])
				total := full - want
				if total < 0 {
					g.pb[k], g.pe[k] = 0, total
				} else if autoPad == "SAME_UPPER" {
					g.pb[k] = total / 2
				} else {
					g.pb[k] = total - total/2
				}
				g.pe[k] = total - g.pb[k]
			} else if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" {
				want := sp[k] * g.s[k]
				total := max(0, full-want)
				if autoPad == "SAME_UPPER" {
					g.pb[k] = total / 2
				} else {
					g.pb[k] = total - total/2
				}
				g.pe[k] = total - g.pb[k]
			}
			out[k] = full - g.pb[k] - g.pe[k]
			if out[k] < 0 {
				return nil, fmt.Errorf("negative output size")
			}
		}
		if n := numel(out); n > limit || n*x.Shape()[0]*w.Shape()[1]*groups > 16*limit || numel(sp)*numel(kernel) > 16*limit {
			return nil, checkElems(limit+1, limit)
		}
		return convTranspose(x, w, b, g, out, groups)
	}, nil
}

func convTranspose(x, w, b *graph.Value, g spatial, out []int, groups int) ([]*graph.Value, error) {
	xs, ws := x.Shape(), w.Shape()
	sp := xs[2:]
	n, ci := xs[0], xs[1]
	cig, cog := ci/groups, ws[1]
	co := cog * groups
	shape := append([]int{n, co}, out...)
	xf, wf := x.Float64s(), w.Float64s()
	var bf []float64
	if b != nil {
		bf = b.Float64s()
	}
	kn, inN, on := numel(g.k), numel(sp), numel(out)
	// taps[i*kn+k] is the output position input position i and kernel offset k write to, or -1.
	taps := tapTable(sp, out, g)
	y := make([]float64, numel(shape))
	for bi := 0; bi < n; bi++ {
		for oc := 0; oc < co; oc++ {
			if bf != nil {
				for o := 0; o < on; o++ {
					y[(bi*co+oc)*on+o] = bf[oc]
				}
			}
			grp, ocg := oc/cog, oc%cog
			for icg := 0; icg < cig; icg++ {
				ch := grp*cig + icg
				xb := (bi*ci + ch) * inN
				wb := (ch*cog + ocg) * kn
				yb := (bi*co + oc) * on
				for i := 0; i < inN; i++ {
					xv := xf[xb+i]
					for k := 0; k < kn; k++ {
						if p := taps[i*kn+k]; p >= 0 {
							y[yb+p] += xv * wf[wb+k]
						}
					}
				}
			}
		}
	}
	res := graph.Make(x.DType(), shape, y)
	if x.DType() != graph.Float32 {
		return one(res), nil
	}
	ins := []*nn.Tensor{x.Tensor(), w.Tensor()}
	if b != nil {
		ins = append(ins, b.Tensor())
	}
	t := nn.Record(res.Tensor(), "ConvTranspose", ins, func(gr []float32) [][]float32 {
		gx, gw := make([]float32, len(xf)), make([]float32, len(wf))
		var gb []float32
		if b != nil {
			gb = make([]float32, len(bf))
		}
		for bi := 0; bi < n; bi++ {
			for oc := 0; oc < co; oc++ {
				yb := (bi*co + oc) * on
				if gb != nil {
					for o := 0; o < on; o++ {
						gb[oc] += gr[yb+o]
					}
				}
				grp, ocg := oc/cog, oc%cog
				for icg := 0; icg < cig; icg++ {
					ch := grp*cig + icg
					xb := (bi*ci + ch) * inN
					wb := (ch*cog + ocg) * kn
					for i := 0; i < inN; i++ {
						for k := 0; k < kn; k++ {
							if p := taps[i*kn+k]; p >= 0 {
								gv := float64(gr[yb+p])
								gx[xb+i] += float32(gv * wf[wb+k])
								gw[wb+k] += float32(gv * xf[xb+i])
							}
						}
					}
				}
			}
		}
		return [][]float32{gx, gw, gb}[:len(ins)]
	})
	return one(graph.FromTensor(t)), nil
}

func buildPool(c *nodeCtx) (graph.Kernel, error) {
	isMax := c.n.OpType == "MaxPool"
	kattr := c.ints("kernel_shape", nil)
	if kattr == nil {
		return nil, c.errorf("no kernel_shape")
	}
	ceil := c.int("ceil_mode", 0) != 0
	includePad := c.int("count_include_pad", 0) != 0
	storageOrder := c.int("storage_order", 0)
	wantIdx := len(c.n.Output) > 1 && c.n.Output[1] != ""
	limit := c.opts.MaxElements
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		if x.Rank() != len(kattr)+2 {
			return nil, fmt.Errorf("input %v for a %d-d kernel", x.Shape(), len(kattr))
		}
		sp := x.Shape()[2:]
		g, err := windowAttrs(c, toInts(kattr), sp, ceil)
		if err != nil {
			return nil, err
		}
		if err := checkWork(x, g, limit); err != nil {
			return nil, err
		}
		out := g.outSize(sp, ceil)
		if x.DType() == graph.Float32 && len(sp) == 2 && g.symmetric() && !wantIdx && !ceil && g.pb[0] <= g.k[0]/2 && g.pb[1] <= g.k[1]/2 {
			p := nn.PoolParams{KernelSize: [2]int{g.k[0], g.k[1]}, Stride: [2]int{g.s[0], g.s[1]}, Padding: [2]int{g.pb[0], g.pb[1]}, Dilation: [2]int{g.d[0], g.d[1]}}
			if isMax {
				return one(graph.FromTensor(nn.MaxPool2dFn(x.Tensor(), p))), nil
			}
			if g.d[0] == 1 && g.d[1] == 1 {
				return one(graph.FromTensor(nn.AvgPool2dFn(x.Tensor(), p, includePad))), nil
			}
		}
		return pool(x, g, out, isMax, includePad, storageOrder, wantIdx)
	}, nil
}

func pool(x *graph.Value, g spatial, out []int, isMax, includePad bool, storageOrder int64, wantIdx bool) ([]*graph.Value, error) {
	xs := x.Shape()
	sp := xs[2:]
	planes := xs[0] * xs[1]
	inN, on, kn := numel(sp), numel(out), numel(g.k)
	shape := append([]int{xs[0], xs[1]}, out...)
	xf := x.Float64s()
	y := make([]float64, planes*on)
	// Taps per output position (-1: padding), and the divisor for averages.
	taps := tapTable(out, sp, g)
	div := make([]float64, on)
	oc := make([]int, len(out))
	for o := 0; o < on; o++ {
		rem := o
		for d := len(out) - 1; d >= 0; d-- {
			oc[d] = rem % out[d]
			rem /= out[d]
		}
		cnt := 0
		padCnt := 1
		for d := range out {
			lo := oc[d]*g.s[d] - g.pb[d]
			hi := min(lo+(g.k[d]-1)*g.d[d]+1, sp[d]+g.pe[d])
			padCnt *= (hi - lo + g.d[d] - 1) / g.d[d]
		}
		for _, q := range taps[o*kn : (o+1)*kn] {
			if q >= 0 {
				cnt++
			}
		}
		div[o] = float64(cnt)
		if includePad {
			div[o] = float64(padCnt)
		}
	}
	arg := make([]int, planes*on)
	for p := 0; p < planes; p++ {
		base := p * inN
		for o := 0; o < on; o++ {
			if isMax {
				best, bi := math.Inf(-1), -1
				for k := 0; k < kn; k++ {
					if q := taps[o*kn+k]; q >= 0 && (bi < 0 || xf[base+q] > best) {
						best, bi = xf[base+q], q
					}
				}
				y[p*on+o] = best
				arg[p*on+o] = bi
			} else {
				s := 0.0
				for k := 0; k < kn; k++ {
					if q := taps[o*kn+k]; q >= 0 {
						s += xf[base+q]
					}
				}
				y[p*on+o] = s / div[o]
			}
		}
	}
	res := graph.Make(x.DType(), shape, y)
	if t := x.Tensor(); t != nil {
		res = graph.FromTensor(nn.Record(res.Tensor(), "Pool", []*nn.Tensor{t}, func(gr []float32) [][]float32 {
			gx := make([]float32, len(xf))
			for p := 0; p < planes; p++ {
				base := p * inN
				for o := 0; o < on; o++ {
					gv := gr[p*on+o]
					if isMax {
						if a := arg[p*on+o]; a >= 0 {
							gx[base+a] += gv
						}
						continue
					}
					for k := 0; k < kn; k++ {
						if q := taps[o*kn+k]; q >= 0 {
							gx[base+q] += gv / float32(div[o])
						}
					}
				}
			}
			return [][]float32{gx}
		}))
	}
	if !wantIdx {
		return one(res), nil
	}
	ind := make([]int64, len(arg))
	for p := 0; p < planes; p++ {
		for o := 0; o < on; o++ {
			a := arg[p*on+o]
			if storageOrder == 1 && len(sp) == 2 {
				h, w := a/sp[1], a%sp[1]
				a = w*sp[0] + h
			}
			ind[p*on+o] = int64(p*inN + a)
		}
	}
	return []*graph.Value{res, graph.FromInt64s(graph.Int64, shape, ind)}, nil
}

func buildGlobalPool(c *nodeCtx) (graph.Kernel, error) {
	op := "ReduceMean"
	if c.n.OpType == "GlobalMaxPool" {
		op = "ReduceMax"
	}
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		var axes []int
		for d := 2; d < x.Rank(); d++ {
			axes = append(axes, d)
		}
		if len(axes) == 0 {
			return one(x), nil
		}
		return one(reduceAxes(x, axes, true, op)), nil
	}, nil
}

func buildBatchNorm(c *nodeCtx) (graph.Kernel, error) {
	eps := float64(c.float("epsilon", 1e-5))
	momentum := float64(c.float("momentum", 0.9))
	trainAttr := c.int("training_mode", 0) != 0
	nout := len(c.n.Output)
	if c.opset < 9 && c.int("spatial", 1) == 0 {
		return nil, c.unsupported("spatial=0")
	}
	opset := c.opset
	return func(ctx *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		if x.Rank() < 2 || len(in) < 5 {
			return nil, fmt.Errorf("input %v", x.Shape())
		}
		if x.DType() != graph.Float32 {
			return nil, fmt.Errorf("%s input is not supported", x.DType())
		}
		f := func(v *graph.Value) (*nn.Tensor, error) {
			if v == nil || v.DType() != graph.Float32 {
				return nil, fmt.Errorf("scale, bias, mean and variance must be float32")
			}
			return v.Tensor(), nil
		}
		scale, err := f(in[1])
		if err != nil {
			return nil, err
		}
		bias, _ := f(in[2])
		mean, _ := f(in[3])
		vr, _ := f(in[4])
		if bias == nil || mean == nil || vr == nil {
			return nil, fmt.Errorf("scale, bias, mean and variance must be float32")
		}
		xt := x.Tensor()
		if trainAttr && opset >= 14 {
			// ONNX's training mode: batch statistics, and running statistics
			// as outputs, with the population variance.
			y := nn.BatchNormFn(xt, nil, nil, scale, bias, true, 0, eps)
			ch := x.Shape()[1]
			inner := numel(x.Shape()[2:])
			nb := x.Shape()[0]
			xd := xt.Data()
			rm, rv := make([]float64, ch), make([]float64, ch)
			md, vd := mean.Data(), vr.Data()
			for cc := 0; cc < ch; cc++ {
				s, ss := 0.0, 0.0
				for b := 0; b < nb; b++ {
					for _, e := range xd[(b*ch+cc)*inner : (b*ch+cc+1)*inner] {
						s += float64(e)
						ss += float64(e) * float64(e)
					}
				}
				cnt := float64(nb * inner)
				mu := s / cnt
				rm[cc] = float64(md[cc])*momentum + mu*(1-momentum)
				rv[cc] = float64(vd[cc])*momentum + (ss/cnt-mu*mu)*(1-momentum)
			}
			outs := []*graph.Value{graph.FromTensor(y)}
			if nout > 1 {
				outs = append(outs, graph.Make(graph.Float32, []int{ch}, rm), graph.Make(graph.Float32, []int{ch}, rv))
			}
			return outs, nil
		}
		if ctx != nil && ctx.Training && nout == 1 {
			// The graph is being trained: torch's batch norm, updating the
			// running statistics (buffers) in place.
			return one(graph.FromTensor(nn.BatchNormFn(xt, mean, vr, scale, bias, true, 1-momentum, eps))), nil
		}
		y := nn.BatchNormFn(xt, mean, vr, scale, bias, false, 0, eps)
		outs := []*graph.Value{graph.FromTensor(y)}
		for len(outs) < nout {
			outs = append(outs, nil)
		}
		return outs, nil
	}, nil
}

func buildInstanceNorm(c *nodeCtx) (graph.Kernel, error) {
	eps := float64(c.float("epsilon", 1e-5))
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		if x.DType() != graph.Float32 || x.Rank() < 3 {
			return nil, fmt.Errorf("input %s%v", x.DType(), x.Shape())
		}
		return one(graph.FromTensor(nn.GroupNormFn(x.Tensor(), x.Shape()[1], in[1].Tensor(), in[2].Tensor(), eps))), nil
	}, nil
}

func buildLayerNorm(c *nodeCtx) (graph.Kernel, error) {
	axis := c.int("axis", -1)
	eps := float64(c.float("epsilon", 1e-5))
	nout := len(c.n.Output)
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		a, err := normAxis(axis, x.Rank())
		if err != nil {
			return nil, err
		}
		if x.DType() != graph.Float32 {
			return nil, fmt.Errorf("%s input is not supported", x.DType())
		}
		norm := x.Shape()[a:]
		y := nn.LayerNormFn(x.Tensor(), norm, nil, nil, eps)
		if in[1] != nil {
			y = y.Mul(in[1].Tensor())
		}
		if len(in) > 2 && in[2] != nil {
			y = y.Add(in[2].Tensor())
		}
		outs := []*graph.Value{graph.FromTensor(y)}
		if nout > 1 {
			rows, d := numel(x.Shape()[:a]), numel(norm)
			xd := x.Tensor().Data()
			mean, inv := make([]float64, rows), make([]float64, rows)
			for r := 0; r < rows; r++ {
				s, ss := 0.0, 0.0
				for _, e := range xd[r*d : (r+1)*d] {
					s += float64(e)
				}
				mu := s / float64(d)
				for _, e := range xd[r*d : (r+1)*d] {
					ss += (float64(e) - mu) * (float64(e) - mu)
				}
				mean[r], inv[r] = mu, 1/math.Sqrt(ss/float64(d)+eps)
			}
			st := append([]int{}, x.Shape()...)
			for k := a; k < len(st); k++ {
				st[k] = 1
			}
			tx := x.Tensor()
			// Mean = sum(x)/d: d Mean/dx = 1/d. InvStdDev = (var + eps)^-1/2:
			// d/dx_i = -inv^3 (x_i - mean)/d.
			mt := nn.Record(nn.New(f64sToF32(mean), st...), "LayerNormMean", []*nn.Tensor{tx}, func(g []float32) [][]float32 {
				gx := make([]float32, len(xd))
				for r := 0; r < rows; r++ {
					for k := r * d; k < (r+1)*d; k++ {
						gx[k] = g[r] / float32(d)
					}
				}
				return [][]float32{gx}
			})
			it := nn.Record(nn.New(f64sToF32(inv), st...), "LayerNormInvStdDev", []*nn.Tensor{tx}, func(g []float32) [][]float32 {
				gx := make([]float32, len(xd))
				for r := 0; r < rows; r++ {
					c := -float64(g[r]) * inv[r] * inv[r] * inv[r] / float64(d)
					for k := r * d; k < (r+1)*d; k++ {
						gx[k] = float32(c * (float64(xd[k]) - mean[r]))
					}
				}
				return [][]float32{gx}
			})
			outs = append(outs, graph.FromTensor(mt), graph.FromTensor(it))
		}
		return outs, nil
	}, nil
}

func buildLRN(c *nodeCtx) (graph.Kernel, error) {
	alpha, beta, bias := float64(c.float("alpha", 1e-4)), float64(c.float("beta", 0.75)), float64(c.float("bias", 1))
	size := int(c.int("size", 0))
	if size <= 0 {
		return nil, c.errorf("size %d", size)
	}
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		if x.Rank() < 2 {
			return nil, fmt.Errorf("input %v", x.Shape())
		}
		s := x.Shape()
		n, ch, inner := s[0], s[1], numel(s[2:])
		xf := x.Float64s()
		y := make([]float64, len(xf))
		den := make([]float64, len(xf)) // bias + alpha/size * sum of squares
		lo, hi := (size-1)/2, size/2    // floor and ceil of (size-1)/2
		hi = (size - 1) - lo
		for b := 0; b < n; b++ {
			for cc := 0; cc < ch; cc++ {
				for i := 0; i < inner; i++ {
					sq := 0.0
					for j := max(0, cc-lo); j <= min(ch-1, cc+hi); j++ {
						v := xf[(b*ch+j)*inner+i]
						sq += v * v
					}
					p := (b*ch+cc)*inner + i
					den[p] = bias + alpha/float64(size)*sq
					y[p] = xf[p] / math.Pow(den[p], beta)
				}
			}
		}
		t := x.Tensor()
		if t == nil {
			return one(graph.Make(x.DType(), s, y)), nil
		}
		out := nn.Record(nn.New(f64sToF32(y), s...), "LRN", []*nn.Tensor{t}, func(g []float32) [][]float32 {
			// y_c = x_c d_c^-beta with d_c = bias + alpha/size sum_{j in win(c)} x_j^2:
			// gx_k = g_k d_k^-beta - 2 alpha/size beta x_k sum_{c: k in win(c)} g_c x_c d_c^(-beta-1).
			gx := make([]float32, len(g))
			for b := 0; b < n; b++ {
				for k := 0; k < ch; k++ {
					for i := 0; i < inner; i++ {
						p := (b*ch+k)*inner + i
						acc := 0.0
						for c := max(0, k-hi); c <= min(ch-1, k+lo); c++ {
							q := (b*ch+c)*inner + i
							acc += float64(g[q]) * xf[q] * math.Pow(den[q], -beta-1)
						}
						gx[p] = float32(float64(g[p])*math.Pow(den[p], -beta) - 2*alpha/float64(size)*beta*xf[p]*acc)
					}
				}
			}
			return [][]float32{gx}
		})
		return one(graph.FromTensor(out)), nil
	}, nil
}

func buildMVN(c *nodeCtx) (graph.Kernel, error) {
	axesAttr := c.ints("axes", []int64{0, 2, 3})
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		axes, err := normAxes(axesAttr, x.Rank())
		if err != nil {
			return nil, err
		}
		mean := reduceAxes(x, axes, true, "ReduceMean")
		d, err := binop(x, mean, binSpec{f: func(a, b float64) float64 { return a - b },
			da: func(_, _, _ float64) float64 { return 1 }, db: func(_, _, _ float64) float64 { return -1 }})
		if err != nil {
			return nil, err
		}
		sq := unary(d, func(v float64) float64 { return v * v }, func(v, _ float64) float64 { return 2 * v })
		vr := reduceAxes(sq, axes, true, "ReduceMean")
		// d / (sqrt(v) + 1e-9)
		r, err := binop(d, vr, binSpec{f: func(a, b float64) float64 { return a / (math.Sqrt(b) + 1e-9) },
			da: func(_, b, _ float64) float64 { return 1 / (math.Sqrt(b) + 1e-9) },
			db: func(a, b, _ float64) float64 {
				s := math.Sqrt(b) + 1e-9
				return -a / (s * s) * 0.5 / math.Sqrt(b)
			}})
		if err != nil {
			return nil, err
		}
		return one(r), nil
	}, nil
}

// matmul multiplies with numpy's matmul semantics (1-D operands promoted,
// batch dimensions broadcast).
func matmul(a, b *graph.Value) (*graph.Value, error) {
	as, bs := a.Shape(), b.Shape()
	if len(as) == 0 || len(bs) == 0 {
		return nil, fmt.Errorf("matmul of a scalar")
	}
	va, vb := a, b
	if len(as) == 1 {
		va = a.WithShape([]int{1, as[0]})
	}
	if len(bs) == 1 {
		vb = b.WithShape([]int{bs[0], 1})
	}
	sa, sb := va.Shape(), vb.Shape()
	m, k, k2, n := sa[len(sa)-2], sa[len(sa)-1], sb[len(sb)-2], sb[len(sb)-1]
	if k != k2 {
		return nil, fmt.Errorf("inner dimensions of %v and %v differ", as, bs)
	}
	batch, err := broadcast(sa[:len(sa)-2], sb[:len(sb)-2])
	if err != nil {
		return nil, err
	}
	outShape := append(append([]int{}, batch...), m, n)
	var res *graph.Value
	if va.DType() == graph.Float32 && vb.DType() == graph.Float32 {
		ta := va.Tensor()
		if len(sb) == 2 && len(sa) >= 2 {
			res = graph.FromTensor(ta.MatMul(vb.Tensor()))
		} else {
			ea := expandTo(va, append(append([]int{}, batch...), m, k))
			eb := expandTo(vb, append(append([]int{}, batch...), k, n))
			if len(batch) == 0 {
				res = graph.FromTensor(ea.Tensor().MatMul(eb.Tensor()))
			} else {
				res = graph.FromTensor(ea.Tensor().MatMul(eb.Tensor()))
			}
		}
	} else {
		ea := expandTo(va, append(append([]int{}, batch...), m, k)).Float64s()
		eb := expandTo(vb, append(append([]int{}, batch...), k, n)).Float64s()
		nb := numel(batch)
		y := make([]float64, nb*m*n)
		for bi := 0; bi < nb; bi++ {
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					s := 0.0
					for q := 0; q < k; q++ {
						s += ea[(bi*m+i)*k+q] * eb[(bi*k+q)*n+j]
					}
					y[(bi*m+i)*n+j] = s
				}
			}
		}
		res = graph.Make(a.DType(), outShape, y)
	}
	final := append([]int{}, batch...)
	if len(as) > 1 {
		final = append(final, m)
	}
	if len(bs) > 1 {
		final = append(final, n)
	}
	return res.WithShape(final), nil
}

func buildMatMul(c *nodeCtx) (graph.Kernel, error) {
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		if in[0].DType() != in[1].DType() {
			return nil, fmt.Errorf("operand types %s and %s differ", in[0].DType(), in[1].DType())
		}
		r, err := matmul(in[0], in[1])
		if err != nil {
			return nil, err
		}
		return one(r), nil
	}, nil
}

func buildGemm(c *nodeCtx) (graph.Kernel, error) {
	alpha, beta := float64(c.float("alpha", 1)), float64(c.float("beta", 1))
	ta, tb := c.int("transA", 0) != 0, c.int("transB", 0) != 0
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		a, b := in[0], in[1]
		var cv *graph.Value
		if len(in) > 2 {
			cv = in[2]
		}
		if a.Rank() != 2 || b.Rank() != 2 {
			return nil, fmt.Errorf("operands %v and %v are not matrices", a.Shape(), b.Shape())
		}
		if a.DType() == graph.Float32 && !ta && tb && alpha == 1 && beta == 1 && (cv == nil || cv.Rank() == 1 && cv.Shape()[0] == b.Shape()[0]) {
			var bias *nn.Tensor
			if cv != nil {
				bias = cv.Tensor()
			}
			return one(graph.FromTensor(nn.LinearFn(a.Tensor(), b.Tensor(), bias))), nil
		}
		if ta {
			a = permute(a, []int{1, 0})
		}
		if tb {
			b = permute(b, []int{1, 0})
		}
		y, err := matmul(a, b)
		if err != nil {
			return nil, err
		}
		if alpha != 1 {
			y = unary(y, func(v float64) float64 { return alpha * v }, func(_, _ float64) float64 { return alpha })
		}
		if cv != nil && beta != 0 {
			if beta != 1 {
				cv = unary(cv, func(v float64) float64 { return beta * v }, func(_, _ float64) float64 { return beta })
			}
			if y.Tensor() != nil {
				y = graph.FromTensor(y.Tensor().Add(cv.Tensor()))
			} else if y, err = binop(y, cv, binSpec{f: func(p, q float64) float64 { return p + q }, fi: func(p, q int64) int64 { return p + q }}); err != nil {
				return nil, err
			}
		}
		return one(y), nil
	}, nil
}
