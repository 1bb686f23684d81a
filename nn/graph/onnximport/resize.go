package onnximport

import (
	"bytes"
	"fmt"
	"math"
	"strings"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
)

// Resize, Upsample, Pad and Einsum.

func init() {
	register(buildResize, "Resize")
	register(buildUpsample, "Upsample")
	register(buildPad, "Pad")
	register(buildEinsum, "Einsum")
	register(func(c *nodeCtx) (graph.Kernel, error) {
		return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
			x := in[0].Float64s()
			d := make([]int64, len(x))
			for k, e := range x {
				d[k] = b2i(math.IsNaN(e))
			}
			return one(graph.FromInt64s(graph.Bool, in[0].Shape(), d)), nil
		}, nil
	}, "IsNaN")
}

type resizeSpec struct {
	mode, coord, nearest string
	a                    float64
	exclude              bool
	extrap               float64
}

// taps1d returns, for each output index along an axis of in elements, the
// input indices and weights that make it, and whether it is outside the
// input (tf_crop_and_resize's extrapolation).
func (r resizeSpec) taps1d(in, out int, scale, outLen float64, roiStart, roiEnd float64) ([][]int, [][]float64, []bool) {
	idx := make([][]int, out)
	w := make([][]float64, out)
	outside := make([]bool, out)
	for o := 0; o < out; o++ {
		fo := float64(o)
		var x float64
		switch r.coord {
		case "half_pixel":
			x = (fo+0.5)/scale - 0.5
		case "pytorch_half_pixel":
			if out > 1 {
				x = (fo+0.5)/scale - 0.5
			}
		case "align_corners":
			if outLen > 1 {
				x = fo * float64(in-1) / (outLen - 1)
			}
		case "asymmetric":
			x = fo / scale
		case "tf_half_pixel_for_nn":
			x = (fo + 0.5) / scale
		case "tf_crop_and_resize":
			if out > 1 {
				x = roiStart*float64(in-1) + fo*(roiEnd-roiStart)*float64(in-1)/float64(out-1)
			} else {
				x = 0.5 * (roiStart + roiEnd) * float64(in-1)
			}
			outside[o] = x < 0 || x > float64(in-1)
		}
		clampI := func(i int) int { return min(max(i, 0), in-1) }
		switch r.mode {
		case "nearest":
			var n float64
			switch r.nearest {
			case "round_prefer_ceil":
				n = math.Floor(x + 0.5)
			case "floor":
				n = math.Floor(x)
			case "ceil":
				n = math.Ceil(x)
			default: // round_prefer_floor
				if x-math.Floor(x) == 0.5 {
					n = math.Floor(x)
				} else {
					n = math.Round(x)
				}
			}
			idx[o], w[o] = []int{clampI(int(n))}, []float64{1}
		case "linear":
			if r.coord != "tf_crop_and_resize" && r.coord != "align_corners" {
				x = math.Max(x, 0)
			}
			f := math.Floor(x)
			t := x - f
			i0 := int(f)
			idx[o], w[o] = []int{clampI(i0), clampI(i0 + 1)}, []float64{1 - t, t}
			if i0+1 > in-1 {
				idx[o], w[o] = []int{clampI(i0)}, []float64{1}
			}
		case "cubic":
			f := math.Floor(x)
			t := x - f
			a := r.a
			cs := []float64{
				((a*(t+1)-5*a)*(t+1)+8*a)*(t+1) - 4*a,
				((a+2)*t-(a+3))*t*t + 1,
				((a+2)*(1-t)-(a+3))*(1-t)*(1-t) + 1,
				((a*(2-t)-5*a)*(2-t)+8*a)*(2-t) - 4*a,
			}
			i0 := int(f) - 1
			ii := make([]int, 4)
			total := 0.0
			for k := range ii {
				ii[k] = clampI(i0 + k)
				if r.exclude && (i0+k < 0 || i0+k >= in) {
					cs[k] = 0
				}
				total += cs[k]
			}
			if r.exclude && total != 0 {
				for k := range cs {
					cs[k] /= total
				}
			}
			idx[o], w[o] = ii, cs
		}
	}
	return idx, w, outside
}

// interpAxis applies per-output taps along axis.
func interpAxis(v *graph.Value, axis int, idx [][]int, w [][]float64) *graph.Value {
	s := v.Shape()
	outer, in, inner := numel(s[:axis]), s[axis], numel(s[axis+1:])
	out := len(idx)
	shape := append([]int{}, s...)
	shape[axis] = out
	x := v.Float64s()
	y := make([]float64, outer*out*inner)
	for o := 0; o < outer; o++ {
		for j := 0; j < out; j++ {
			for i := 0; i < inner; i++ {
				acc := 0.0
				for t, src := range idx[j] {
					acc += w[j][t] * x[(o*in+src)*inner+i]
				}
				y[(o*out+j)*inner+i] = acc
			}
		}
	}
	res := graph.Make(v.DType(), shape, y)
	if t := v.Tensor(); t != nil {
		res = graph.FromTensor(nn.Record(res.Tensor(), "Resize", []*nn.Tensor{t}, func(g []float32) [][]float32 {
			gx := make([]float32, len(x))
			for o := 0; o < outer; o++ {
				for j := 0; j < out; j++ {
					for i := 0; i < inner; i++ {
						gv := g[(o*out+j)*inner+i]
						for t, src := range idx[j] {
							gx[(o*in+src)*inner+i] += gv * float32(w[j][t])
						}
					}
				}
			}
			return [][]float32{gx}
		}))
	}
	return res
}

func (r resizeSpec) run(x *graph.Value, scales []float64, sizes []int, roi []float64, limit int) (*graph.Value, error) {
	rank := x.Rank()
	if sizes == nil && len(scales) != rank || sizes != nil && len(sizes) != rank {
		return nil, fmt.Errorf("scales %v or sizes %v for rank %d", scales, sizes, rank)
	}
	out := make([]int, rank)
	sc := make([]float64, rank)
	outLen := make([]float64, rank)
	for d := 0; d < rank; d++ {
		in := x.Shape()[d]
		if sizes != nil {
			out[d] = sizes[d]
			sc[d] = float64(sizes[d]) / float64(in)
			outLen[d] = float64(sizes[d])
		} else {
			if !(scales[d] > 0) {
				return nil, fmt.Errorf("scale %g", scales[d])
			}
			out[d] = int(math.Floor(float64(in) * scales[d]))
			sc[d] = scales[d]
			outLen[d] = float64(in) * scales[d]
		}
		if out[d] < 0 || out[d] > limit {
			return nil, fmt.Errorf("output size %d", out[d])
		}
	}
	if err := checkElems(numelChecked(out, limit), limit); err != nil {
		return nil, err
	}
	v := x
	var masks [][]bool
	for d := 0; d < rank; d++ {
		start, end := 0.0, 1.0
		if len(roi) == 2*rank {
			start, end = roi[d], roi[rank+d]
		}
		if out[d] == x.Shape()[d] && sc[d] == 1 && r.coord != "tf_crop_and_resize" {
			masks = append(masks, nil)
			continue
		}
		if x.Shape()[d] == 0 {
			return nil, fmt.Errorf("cannot resize an empty dimension")
		}
		idx, w, outside := r.taps1d(x.Shape()[d], out[d], sc[d], outLen[d], start, end)
		v = interpAxis(v, d, idx, w)
		masks = append(masks, outside)
	}
	if r.coord == "tf_crop_and_resize" {
		f := append([]float64{}, v.Float64s()...)
		st := strides(out)
		masked := make([]bool, len(f))
		for k := range f {
			for d := 0; d < rank; d++ {
				if m := masks[d]; m != nil && m[k/st[d]%out[d]] {
					f[k] = r.extrap
					masked[k] = true
					break
				}
			}
		}
		res := graph.Make(x.DType(), out, f)
		if t := v.Tensor(); t != nil {
			// Extrapolated elements are constants: no gradient reaches the input.
			res = graph.FromTensor(nn.Record(res.Tensor(), "ResizeExtrapolate", []*nn.Tensor{t}, func(g []float32) [][]float32 {
				gx := append([]float32{}, g...)
				for k, m := range masked {
					if m {
						gx[k] = 0
					}
				}
				return [][]float32{gx}
			}))
		}
		v = res
	}
	return v, nil
}

func buildResize(c *nodeCtx) (graph.Kernel, error) {
	r := resizeSpec{
		mode: c.str("mode", "nearest"), coord: c.str("coordinate_transformation_mode", "half_pixel"),
		nearest: c.str("nearest_mode", "round_prefer_floor"), a: float64(c.float("cubic_coeff_a", -0.75)),
		exclude: c.int("exclude_outside", 0) != 0, extrap: float64(c.float("extrapolation_value", 0)),
	}
	if c.opset < 11 {
		r.coord = "asymmetric"
		if r.mode == "nearest" {
			r.nearest = "floor"
		}
	}
	switch r.mode {
	case "nearest", "linear", "cubic":
	default:
		return nil, c.unsupported("mode %q", r.mode)
	}
	if c.opset < 11 && r.mode == "cubic" {
		return nil, c.unsupported("mode %q", r.mode)
	}
	switch r.coord {
	case "half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize":
	default:
		return nil, c.unsupported("coordinate_transformation_mode %q", r.coord)
	}
	if c.int("antialias", 0) != 0 {
		return nil, c.unsupported("antialias")
	}
	if c.has("axes") {
		return nil, c.unsupported("axes")
	}
	if p := c.str("keep_aspect_ratio_policy", "stretch"); p != "stretch" {
		return nil, c.unsupported("keep_aspect_ratio_policy %q", p)
	}
	opset := c.opset
	limit := c.opts.MaxElements
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		var scales, roi []float64
		var sizes []int
		get := func(k int) *graph.Value {
			if k < len(in) && in[k] != nil && in[k].Numel() > 0 {
				return in[k]
			}
			return nil
		}
		if opset < 11 {
			if v := get(1); v != nil {
				scales = v.Float64s()
			}
		} else {
			if v := get(1); v != nil {
				roi = v.Float64s()
			}
			if v := get(2); v != nil {
				scales = v.Float64s()
			}
			if v := get(3); v != nil {
				sizes = v.Ints()
			}
		}
		if scales == nil && sizes == nil {
			return nil, fmt.Errorf("neither scales nor sizes")
		}
		y, err := r.run(x, scales, sizes, roi, limit)
		if err != nil {
			return nil, err
		}
		return one(y), nil
	}, nil
}

func buildUpsample(c *nodeCtx) (graph.Kernel, error) {
	mode := c.str("mode", "nearest")
	if mode == "bilinear" {
		mode = "linear"
	}
	if mode != "nearest" && mode != "linear" {
		return nil, c.unsupported("mode %q", mode)
	}
	r := resizeSpec{mode: mode, coord: "asymmetric", nearest: "floor"}
	attrScales := c.floats("scales", nil)
	opset := c.opset
	limit := c.opts.MaxElements
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		var scales []float64
		if opset >= 9 && len(in) > 1 && in[1] != nil {
			scales = in[1].Float64s()
		} else {
			for _, s := range attrScales {
				scales = append(scales, float64(s))
			}
		}
		y, err := r.run(in[0], scales, nil, nil, limit)
		if err != nil {
			return nil, err
		}
		return one(y), nil
	}, nil
}

func buildPad(c *nodeCtx) (graph.Kernel, error) {
	mode := c.str("mode", "constant")
	switch mode {
	case "constant", "reflect", "edge":
	default:
		return nil, c.unsupported("mode %q", mode)
	}
	attrPads := c.ints("pads", c.ints("paddings", nil))
	attrValue := float64(c.float("value", 0))
	opset := c.opset
	limit := c.opts.MaxElements
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		pads, value := attrPads, attrValue
		var axes []int64
		if opset >= 11 {
			pads = in[1].Int64s()
			value = 0
			if len(in) > 2 && in[2] != nil && in[2].Numel() > 0 {
				value = in[2].Float64s()[0]
			}
			if len(in) > 3 && in[3] != nil {
				axes = in[3].Int64s()
			}
		}
		r := x.Rank()
		pb, pe := make([]int, r), make([]int, r)
		if axes != nil {
			as, err := normAxes(axes, r)
			if err != nil {
				return nil, err
			}
			if len(pads) != 2*len(as) {
				return nil, fmt.Errorf("%d pads for %d axes", len(pads), len(as))
			}
			for k, a := range as {
				pb[a], pe[a] = int(pads[k]), int(pads[len(as)+k])
			}
		} else {
			if len(pads) != 2*r {
				return nil, fmt.Errorf("%d pads for rank %d", len(pads), r)
			}
			for k := 0; k < r; k++ {
				pb[k], pe[k] = int(pads[k]), int(pads[r+k])
			}
		}
		n := 1
		for k := 0; k < r; k++ {
			n *= max(0, x.Shape()[k]+pb[k]+pe[k])
		}
		if err := checkElems(n, limit); err != nil {
			return nil, err
		}
		y, err := padValue(x, pb, pe, mode, value)
		if err != nil {
			return nil, err
		}
		return one(y), nil
	}, nil
}

// einsumPlan is a parsed equation: per operand its labels, the output
// labels, and each label's dimension.
type einsumPlan struct {
	ops [][]byte
	out []byte
}

func parseEinsum(eq string, ranks []int) (einsumPlan, error) {
	eq = strings.ReplaceAll(eq, " ", "")
	lhs, rhs, explicit := strings.Cut(eq, "->")
	terms := strings.Split(lhs, ",")
	if len(terms) != len(ranks) {
		return einsumPlan{}, fmt.Errorf("equation %q for %d operands", eq, len(ranks))
	}
	var p einsumPlan
	ellRank := 0
	for k, t := range terms {
		if strings.Contains(t, "...") {
			ellRank = max(ellRank, ranks[k]-(len(t)-3))
		}
	}
	ell := make([]byte, ellRank)
	for k := range ell {
		ell[k] = byte('0' + k)
	}
	expand := func(t string, rank int) ([]byte, error) {
		if i := strings.Index(t, "..."); i >= 0 {
			n := rank - (len(t) - 3)
			if n < 0 {
				return nil, fmt.Errorf("term %q for rank %d", t, rank)
			}
			return []byte(t[:i] + string(ell[ellRank-n:]) + t[i+3:]), nil
		}
		return []byte(t), nil
	}
	count := map[byte]int{}
	for k, t := range terms {
		l, err := expand(t, ranks[k])
		if err != nil {
			return p, err
		}
		if len(l) != ranks[k] {
			return p, fmt.Errorf("term %q for rank %d", t, ranks[k])
		}
		p.ops = append(p.ops, l)
		for _, b := range l {
			count[b]++
		}
	}
	if explicit {
		l, err := expand(rhs, ellRank+len(strings.ReplaceAll(rhs, "...", "")))
		if err != nil {
			return p, err
		}
		p.out = l
	} else {
		p.out = append(p.out, ell...)
		for b := byte('A'); b <= 'z'; b++ {
			if count[b] == 1 {
				p.out = append(p.out, b)
			}
		}
	}
	return p, nil
}

func buildEinsum(c *nodeCtx) (graph.Kernel, error) {
	eq := c.str("equation", "")
	limit := c.opts.MaxElements
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		ranks := make([]int, len(in))
		for k, v := range in {
			ranks[k] = v.Rank()
		}
		p, err := parseEinsum(eq, ranks)
		if err != nil {
			return nil, err
		}
		dims := map[byte]int{}
		var labels []byte
		for k, l := range p.ops {
			for j, b := range l {
				d := in[k].Shape()[j]
				if old, ok := dims[b]; ok && old != d && old != 1 && d != 1 {
					return nil, fmt.Errorf("label %c has sizes %d and %d", b, old, d)
				} else if !ok {
					labels = append(labels, b)
					dims[b] = d
				} else {
					dims[b] = max(old, d)
				}
			}
		}
		pos := map[byte]int{}
		for k, b := range labels {
			pos[b] = k
		}
		outShape := make([]int, len(p.out))
		for k, b := range p.out {
			if _, ok := dims[b]; !ok {
				return nil, fmt.Errorf("output label %c is not in the inputs", b)
			}
			outShape[k] = dims[b]
		}
		if y, ok := einsumMatMul(p, in, dims, outShape); ok {
			return one(y), nil
		}
		total := 1
		for _, b := range labels {
			total *= dims[b]
		}
		if err := checkElems(total, limit); err != nil {
			return nil, err
		}
		// Flat offsets of every operand and the output for each label combination.
		offset := func(l []byte, shape []int, ctr []int) int {
			o := 0
			for j, b := range l {
				i := ctr[pos[b]]
				if shape[j] == 1 {
					i = 0
				}
				o = o*shape[j] + i
			}
			return o
		}
		data := make([][]float64, len(in))
		for k, v := range in {
			data[k] = v.Float64s()
		}
		y := make([]float64, numel(outShape))
		offs := make([][]int, len(in)+1)
		ctr := make([]int, len(labels))
		for n := 0; n < total; n++ {
			prod := 1.0
			for k, l := range p.ops {
				o := offset(l, in[k].Shape(), ctr)
				offs[k] = append(offs[k], o)
				prod *= data[k][o]
			}
			o := offset(p.out, outShape, ctr)
			offs[len(in)] = append(offs[len(in)], o)
			y[o] += prod
			for d := len(ctr) - 1; d >= 0; d-- {
				ctr[d]++
				if ctr[d] < dims[labels[d]] {
					break
				}
				ctr[d] = 0
			}
		}
		res := graph.Make(in[0].DType(), outShape, y)
		if in[0].DType() == graph.Float32 {
			ts := make([]*nn.Tensor, len(in))
			for k, v := range in {
				ts[k] = v.Tensor()
			}
			res = graph.FromTensor(nn.Record(res.Tensor(), "Einsum", ts, func(g []float32) [][]float32 {
				grads := make([][]float32, len(in))
				for k := range in {
					if !ts[k].RequiresGrad() {
						continue
					}
					grads[k] = make([]float32, len(data[k]))
					for n := 0; n < total; n++ {
						prod := float64(g[offs[len(in)][n]])
						for j := range in {
							if j != k {
								prod *= data[j][offs[j][n]]
							}
						}
						grads[k][offs[k][n]] += float32(prod)
					}
				}
				return grads
			}))
		}
		return one(res), nil
	}, nil
}

// einsumMatMul computes a two-operand float32 equation as one batched
// matrix product when it is one: every label appears once per term, with
// the same size in both operands, and every label of one operand only is
// an output label. The labels in both operands and the output are the batch,
// those in both operands only are contracted, the rest are A's rows and B's
// columns; each operand is permuted to [batch, rows|contracted,
// contracted|columns] and the product permuted to the output's order. That
// is attention's "bhid,bhjd->bhij" and "bhij,bhjd->bhid" (MaxViT, and
// what users' own models write), which the generic loop over every label
// combination runs in float64 at a cost of the whole index space. It
// reports false, and the generic loop runs, for anything else (diagonals,
// broadcast size-1 labels, sums over one operand's own labels, more or
// fewer operands).
func einsumMatMul(p einsumPlan, in []*graph.Value, dims map[byte]int, outShape []int) (*graph.Value, bool) {
	if len(in) != 2 || in[0].DType() != graph.Float32 || in[1].DType() != graph.Float32 {
		return nil, false
	}
	a, b, out := p.ops[0], p.ops[1], p.out
	once := func(l []byte) bool {
		for k := range l {
			if bytes.IndexByte(l[k+1:], l[k]) >= 0 {
				return false
			}
		}
		return true
	}
	if !once(a) || !once(b) || !once(out) {
		return nil, false
	}
	for k, v := range in {
		for j, l := range p.ops[k] {
			if v.Shape()[j] != dims[l] {
				return nil, false
			}
		}
	}
	var batch, rows, cols, sum []byte
	for _, l := range a {
		inB, inOut := bytes.IndexByte(b, l) >= 0, bytes.IndexByte(out, l) >= 0
		switch {
		case inB && inOut:
			batch = append(batch, l)
		case inB:
			sum = append(sum, l)
		case inOut:
			rows = append(rows, l)
		default:
			return nil, false
		}
	}
	for _, l := range b {
		inA, inOut := bytes.IndexByte(a, l) >= 0, bytes.IndexByte(out, l) >= 0
		switch {
		case inA:
		case inOut:
			cols = append(cols, l)
		default:
			return nil, false
		}
	}
	for _, l := range out {
		if bytes.IndexByte(a, l) < 0 && bytes.IndexByte(b, l) < 0 {
			return nil, false
		}
	}
	size := func(ls []byte) int {
		n := 1
		for _, l := range ls {
			n *= dims[l]
		}
		return n
	}
	// arrange permutes t (labels have) to the labels want, as a tensor of
	// shape.
	arrange := func(t *nn.Tensor, have, want []byte, shape ...int) *nn.Tensor {
		perm := make([]int, len(want))
		moved := false
		for k, l := range want {
			perm[k] = bytes.IndexByte(have, l)
			moved = moved || perm[k] != k
		}
		if moved {
			t = t.Permute(perm...)
		}
		return t.Reshape(shape...)
	}
	nb, m, k, n := size(batch), size(rows), size(sum), size(cols)
	ta := arrange(in[0].Tensor(), a, joinLabels(batch, rows, sum), nb, m, k)
	tb := arrange(in[1].Tensor(), b, joinLabels(batch, sum, cols), nb, k, n)
	prod := joinLabels(batch, rows, cols)
	var shape []int
	for _, l := range prod {
		shape = append(shape, dims[l])
	}
	y := ta.MatMul(tb).Reshape(shape...)
	return graph.FromTensor(arrange(y, prod, out, outShape...)), true
}

func joinLabels(ls ...[]byte) []byte {
	var out []byte
	for _, l := range ls {
		out = append(out, l...)
	}
	return out
}
