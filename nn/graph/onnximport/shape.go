package onnximport

import (
	"fmt"
	"math"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
)

// Shape and data-movement operators. All of them move elements with take,
// so float32 gradients flow through them.

func init() {
	register(buildReshape, "Reshape")
	register(buildFlatten, "Flatten")
	register(buildTranspose, "Transpose")
	register(buildSqueeze, "Squeeze", "Unsqueeze")
	register(buildConcat, "Concat")
	register(buildSplit, "Split")
	register(buildSlice, "Slice")
	register(buildGather, "Gather")
	register(buildGatherElements, "GatherElements")
	register(buildGatherND, "GatherND")
	register(buildScatterND, "ScatterND")
	register(buildScatterElements, "ScatterElements", "Scatter")
	register(buildExpand, "Expand")
	register(buildTile, "Tile")
	register(buildShape, "Shape")
	register(buildSize, "Size")
	register(buildConstantOfShape, "ConstantOfShape")
	register(buildRange, "Range")
	register(buildConstant, "Constant")
	register(buildTrilu, "Trilu")
	register(buildNonZero, "NonZero")
	register(buildCompress, "Compress")
	register(buildOneHot, "OneHot")
	register(buildEyeLike, "EyeLike")
	register(buildDepthToSpace, "DepthToSpace", "SpaceToDepth")
	register(buildDropout, "Dropout")
	register(buildReverseSequence, "ReverseSequence")
}

func identityIdx(n int) []int {
	idx := make([]int, n)
	for k := range idx {
		idx[k] = k
	}
	return idx
}

func buildReshape(c *nodeCtx) (graph.Kernel, error) {
	allowZero := c.int("allowzero", 0) != 0
	attrShape := c.ints("shape", nil)
	opset := c.opset
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		spec := attrShape
		if opset >= 5 {
			if len(in) < 2 || in[1] == nil {
				return nil, fmt.Errorf("no shape input")
			}
			spec = in[1].Int64s()
		}
		shape := make([]int, len(spec))
		infer, known := -1, 1
		for k, d := range spec {
			switch {
			case d == 0 && !allowZero:
				if k >= x.Rank() {
					return nil, fmt.Errorf("shape %v copies dimension %d of %v", spec, k, x.Shape())
				}
				shape[k] = x.Shape()[k]
			case d == -1:
				if infer >= 0 {
					return nil, fmt.Errorf("shape %v infers two dimensions", spec)
				}
				infer = k
				continue
			case d < -1:
				return nil, fmt.Errorf("shape %v has a negative dimension", spec)
			default:
				shape[k] = int(d)
			}
			known *= shape[k]
		}
		if infer >= 0 {
			if known == 0 {
				return nil, fmt.Errorf("cannot infer a dimension of %v for %v", spec, x.Shape())
			}
			shape[infer] = x.Numel() / known
		}
		if numel(shape) != x.Numel() {
			return nil, fmt.Errorf("cannot reshape %v to %v", x.Shape(), spec)
		}
		return one(x.WithShape(shape)), nil
	}, nil
}

func buildFlatten(c *nodeCtx) (graph.Kernel, error) {
	axis := c.int("axis", 1)
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		a := axis
		if a < 0 {
			a += int64(x.Rank())
		}
		if a < 0 || a > int64(x.Rank()) {
			return nil, fmt.Errorf("axis %d out of range for rank %d", axis, x.Rank())
		}
		outer := numel(x.Shape()[:a])
		return one(x.WithShape([]int{outer, numel(x.Shape()[a:])})), nil
	}, nil
}

func buildTranspose(c *nodeCtx) (graph.Kernel, error) {
	permAttr := c.ints("perm", nil)
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		r := x.Rank()
		perm := make([]int, r)
		if permAttr == nil {
			for k := range perm {
				perm[k] = r - 1 - k
			}
		} else {
			p, err := normAxes(permAttr, r)
			if err != nil || len(p) != r {
				return nil, fmt.Errorf("perm %v is not a permutation of %d axes", permAttr, r)
			}
			perm = p
		}
		return one(permute(x, perm)), nil
	}, nil
}

func buildSqueeze(c *nodeCtx) (graph.Kernel, error) {
	unsq := c.n.OpType == "Unsqueeze"
	attrAxes := c.ints("axes", nil)
	fromInput := c.opset >= 13
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		axes := attrAxes
		if fromInput {
			axes = nil
			if len(in) > 1 && in[1] != nil {
				axes = in[1].Int64s()
			}
		}
		if unsq {
			r := x.Rank() + len(axes)
			as, err := normAxes(axes, r)
			if err != nil {
				return nil, err
			}
			ins := map[int]bool{}
			for _, a := range as {
				ins[a] = true
			}
			shape := make([]int, 0, r)
			j := 0
			for d := 0; d < r; d++ {
				if ins[d] {
					shape = append(shape, 1)
				} else {
					shape = append(shape, x.Shape()[j])
					j++
				}
			}
			return one(x.WithShape(shape)), nil
		}
		drop := map[int]bool{}
		if axes == nil {
			for d, s := range x.Shape() {
				if s == 1 {
					drop[d] = true
				}
			}
		} else {
			as, err := normAxes(axes, x.Rank())
			if err != nil {
				return nil, err
			}
			for _, a := range as {
				if x.Shape()[a] != 1 {
					return nil, fmt.Errorf("cannot squeeze axis %d of %v", a, x.Shape())
				}
				drop[a] = true
			}
		}
		var shape []int
		for d, s := range x.Shape() {
			if !drop[d] {
				shape = append(shape, s)
			}
		}
		return one(x.WithShape(shape)), nil
	}, nil
}

func buildConcat(c *nodeCtx) (graph.Kernel, error) {
	axis := c.int("axis", 1)
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		var vals []*graph.Value
		for _, v := range in {
			if v != nil {
				vals = append(vals, v)
			}
		}
		if len(vals) == 0 {
			return nil, fmt.Errorf("no inputs")
		}
		r := vals[0].Rank()
		a, err := normAxis(axis, r)
		if err != nil {
			return nil, err
		}
		shape := append([]int{}, vals[0].Shape()...)
		shape[a] = 0
		for _, v := range vals {
			if v.Rank() != r || v.DType() != vals[0].DType() {
				return nil, fmt.Errorf("inputs %v and %v do not concatenate", vals[0], v)
			}
			for d := range shape {
				if d != a && v.Shape()[d] != shape[d] {
					return nil, fmt.Errorf("shapes %v and %v differ outside axis %d", vals[0].Shape(), v.Shape(), a)
				}
			}
			shape[a] += v.Shape()[a]
		}
		if vals[0].DType() == graph.Float32 {
			var ts []*nn.Tensor
			for _, v := range vals {
				if v.Numel() > 0 {
					ts = append(ts, v.Tensor())
				}
			}
			if len(ts) > 0 && len(ts) == len(vals) {
				return one(graph.FromTensor(nn.Cat(ts, a))), nil
			}
		}
		outer := numel(shape[:a])
		inner := numel(shape[a+1:])
		// Build one flat value from all inputs, then gather.
		var src []*graph.Value
		offs := []int{0}
		for _, v := range vals {
			src = append(src, v.WithShape([]int{v.Numel()}))
			offs = append(offs, offs[len(offs)-1]+v.Numel())
		}
		flat := src[0]
		if len(src) > 1 {
			flat = concatFlat(src)
		}
		idx := make([]int, 0, numel(shape))
		for o := 0; o < outer; o++ {
			for k, v := range vals {
				n := v.Shape()[a] * inner
				base := offs[k] + o*n
				for j := 0; j < n; j++ {
					idx = append(idx, base+j)
				}
			}
		}
		return one(take(flat, idx, shape)), nil
	}, nil
}

// concatFlat joins 1-D values end to end.
func concatFlat(vs []*graph.Value) *graph.Value {
	dt := vs[0].DType()
	n := 0
	for _, v := range vs {
		n += v.Numel()
	}
	if dt == graph.Float32 {
		var ts []*nn.Tensor
		for _, v := range vs {
			if v.Numel() > 0 {
				ts = append(ts, v.Tensor())
			}
		}
		if len(ts) == 0 {
			return graph.FromTensor(nn.Zeros(0))
		}
		return graph.FromTensor(nn.Cat(ts, 0))
	}
	if dt.IsFloat() {
		d := make([]float64, 0, n)
		for _, v := range vs {
			d = append(d, v.Float64s()...)
		}
		return graph.FromFloat64s(dt, []int{n}, d)
	}
	d := make([]int64, 0, n)
	for _, v := range vs {
		d = append(d, v.Int64s()...)
	}
	return graph.FromInt64s(dt, []int{n}, d)
}

// sliceAxis returns the elements start..start+n of v along axis.
func sliceAxis(v *graph.Value, axis, start, n int) *graph.Value {
	s := v.Shape()
	outer, inner := numel(s[:axis]), numel(s[axis+1:])
	shape := append([]int{}, s...)
	shape[axis] = n
	idx := make([]int, 0, outer*n*inner)
	for o := 0; o < outer; o++ {
		base := (o*s[axis] + start) * inner
		for j := 0; j < n*inner; j++ {
			idx = append(idx, base+j)
		}
	}
	return take(v, idx, shape)
}

func buildSplit(c *nodeCtx) (graph.Kernel, error) {
	axis := c.int("axis", 0)
	attrSplit := c.ints("split", nil)
	numOut := c.int("num_outputs", 0)
	nout := len(c.n.Output)
	fromInput := c.opset >= 13
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		a, err := normAxis(axis, x.Rank())
		if err != nil {
			return nil, err
		}
		split := attrSplit
		if fromInput {
			split = nil
			if len(in) > 1 && in[1] != nil {
				split = in[1].Int64s()
			}
		}
		dim := x.Shape()[a]
		if split == nil {
			parts := nout
			if numOut > 0 {
				parts = int(numOut)
			}
			size := (dim + parts - 1) / parts
			for k := 0; k < parts; k++ {
				split = append(split, int64(min(size, dim-k*size)))
			}
		}
		if len(split) != nout {
			return nil, fmt.Errorf("%d split sizes for %d outputs", len(split), nout)
		}
		outs := make([]*graph.Value, nout)
		start := 0
		for k, n := range split {
			if n < 0 || start+int(n) > dim {
				return nil, fmt.Errorf("split %v does not fit dimension %d", split, dim)
			}
			outs[k] = sliceAxis(x, a, start, int(n))
			start += int(n)
		}
		if start != dim {
			return nil, fmt.Errorf("split %v does not sum to dimension %d", split, dim)
		}
		return outs, nil
	}, nil
}

func buildSlice(c *nodeCtx) (graph.Kernel, error) {
	attrStarts, attrEnds, attrAxes := c.ints("starts", nil), c.ints("ends", nil), c.ints("axes", nil)
	fromInput := c.opset >= 10
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		starts, ends, axes := attrStarts, attrEnds, attrAxes
		var steps []int64
		if fromInput {
			if len(in) < 3 || in[1] == nil || in[2] == nil {
				return nil, fmt.Errorf("starts and ends are required")
			}
			starts, ends = in[1].Int64s(), in[2].Int64s()
			axes = nil
			if len(in) > 3 && in[3] != nil {
				axes = in[3].Int64s()
			}
			if len(in) > 4 && in[4] != nil {
				steps = in[4].Int64s()
			}
		}
		if len(starts) != len(ends) {
			return nil, fmt.Errorf("%d starts and %d ends", len(starts), len(ends))
		}
		r := x.Rank()
		if axes == nil {
			for k := range starts {
				axes = append(axes, int64(k))
			}
		}
		if len(axes) != len(starts) || steps != nil && len(steps) != len(starts) {
			return nil, fmt.Errorf("starts, ends, axes and steps differ in length")
		}
		as, err := normAxes(axes, r)
		if err != nil {
			return nil, err
		}
		st := make([]int, r)
		step := make([]int, r)
		shape := append([]int{}, x.Shape()...)
		for d := range st {
			step[d] = 1
		}
		for k, a := range as {
			dim := int64(x.Shape()[a])
			s, e := starts[k], ends[k]
			sp := int64(1)
			if steps != nil {
				sp = steps[k]
			}
			if sp == 0 {
				return nil, fmt.Errorf("step 0")
			}
			if s < 0 {
				s += dim
			}
			if e < 0 {
				e += dim
			}
			if sp > 0 {
				s = min(max(s, 0), dim)
				e = min(max(e, 0), dim)
			} else {
				s = min(max(s, 0), dim-1)
				e = min(max(e, -1), dim-1)
			}
			n := int64(0)
			if sp > 0 && e > s {
				n = (e - s + sp - 1) / sp
			} else if sp < 0 && e < s {
				n = (s - e - sp - 1) / -sp
			}
			st[a], step[a], shape[a] = int(s), int(sp), int(n)
		}
		xs := strides(x.Shape())
		total := numel(shape)
		idx := make([]int, total)
		counter := make([]int, r)
		for k := 0; k < total; k++ {
			off := 0
			for d := 0; d < r; d++ {
				off += (st[d] + counter[d]*step[d]) * xs[d]
			}
			idx[k] = off
			for d := r - 1; d >= 0; d-- {
				counter[d]++
				if counter[d] < shape[d] {
					break
				}
				counter[d] = 0
			}
		}
		return one(take(x, idx, shape)), nil
	}, nil
}

func buildGather(c *nodeCtx) (graph.Kernel, error) {
	axis := c.int("axis", 0)
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x, ind := in[0], in[1]
		a, err := normAxis(axis, x.Rank())
		if err != nil {
			return nil, err
		}
		s := x.Shape()
		dim := s[a]
		outer, inner := numel(s[:a]), numel(s[a+1:])
		ids := ind.Int64s()
		shape := append(append(append([]int{}, s[:a]...), ind.Shape()...), s[a+1:]...)
		idx := make([]int, 0, outer*len(ids)*inner)
		for o := 0; o < outer; o++ {
			for _, id := range ids {
				if id < 0 {
					id += int64(dim)
				}
				if id < 0 || id >= int64(dim) {
					return nil, fmt.Errorf("index %d out of range for dimension %d", id, dim)
				}
				base := (o*dim + int(id)) * inner
				for j := 0; j < inner; j++ {
					idx = append(idx, base+j)
				}
			}
		}
		return one(take(x, idx, shape)), nil
	}, nil
}

// elementIndex maps every element of an index tensor (same rank as x) to
// the flat position in x it selects along axis.
func elementIndex(xs []int, is []int, ids []int64, a int) ([]int, error) {
	st := strides(xs)
	ist := strides(is)
	out := make([]int, len(ids))
	for k, id := range ids {
		dim := int64(xs[a])
		if id < 0 {
			id += dim
		}
		if id < 0 || id >= dim {
			return nil, fmt.Errorf("index %d out of range for dimension %d", ids[k], dim)
		}
		off, rem := 0, k
		for d := range is {
			c := rem / ist[d]
			rem %= ist[d]
			if d == a {
				c = int(id)
			} else if c >= xs[d] {
				return nil, fmt.Errorf("indices of shape %v do not fit data of shape %v", is, xs)
			}
			off += c * st[d]
		}
		out[k] = off
	}
	return out, nil
}

func buildGatherElements(c *nodeCtx) (graph.Kernel, error) {
	axis := c.int("axis", 0)
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x, ind := in[0], in[1]
		a, err := normAxis(axis, x.Rank())
		if err != nil {
			return nil, err
		}
		if ind.Rank() != x.Rank() {
			return nil, fmt.Errorf("indices rank %d, data rank %d", ind.Rank(), x.Rank())
		}
		idx, err := elementIndex(x.Shape(), ind.Shape(), ind.Int64s(), a)
		if err != nil {
			return nil, err
		}
		return one(take(x, idx, ind.Shape())), nil
	}, nil
}

// scatter returns x with the elements at positions pos replaced (or
// combined by reduction) by those of upd; float32 gradients flow to both.
func scatter(x, upd *graph.Value, pos []int, reduction string) (*graph.Value, error) {
	if x.DType() != upd.DType() {
		return nil, fmt.Errorf("data %s and updates %s differ in type", x.DType(), upd.DType())
	}
	combine := func(a, b float64) float64 { return b }
	switch reduction {
	case "", "none":
	case "add":
		combine = func(a, b float64) float64 { return a + b }
	case "mul":
		combine = func(a, b float64) float64 { return a * b }
	case "max":
		combine = math.Max
	case "min":
		combine = math.Min
	default:
		return nil, fmt.Errorf("reduction %q", reduction)
	}
	if tx := x.Tensor(); tx != nil && reduction != "max" && reduction != "min" {
		tu := upd.Tensor()
		xd := tx.Data()
		d := append([]float32{}, xd...)
		u := tu.Data()
		for k, p := range pos {
			d[p] = float32(combine(float64(d[p]), float64(u[k])))
		}
		out := nn.Record(nn.New(d, x.Shape()...), "Scatter", []*nn.Tensor{tx, tu}, func(g []float32) [][]float32 {
			gx := append([]float32{}, g...)
			gu := make([]float32, len(u))
			switch reduction {
			case "add": // y[p] = x[p] + the updates at p
				for k, p := range pos {
					gu[k] = g[p]
				}
			case "mul": // y[p] = x[p] * the product of the updates at p
				at := map[int][]int{}
				for k, p := range pos {
					at[p] = append(at[p], k)
				}
				for p, ks := range at {
					prod := 1.0
					for _, k := range ks {
						prod *= float64(u[k])
					}
					gx[p] = float32(float64(g[p]) * prod)
					for _, k := range ks {
						others := float64(xd[p])
						for _, j := range ks {
							if j != k {
								others *= float64(u[j])
							}
						}
						gu[k] = float32(float64(g[p]) * others)
					}
				}
			default: // the last update at p replaces x[p]
				last := map[int]int{}
				for k, p := range pos {
					last[p] = k
				}
				for p, k := range last {
					gu[k] = g[p]
					gx[p] = 0
				}
			}
			return [][]float32{gx, gu}
		})
		return graph.FromTensor(out), nil
	}
	if !x.DType().IsFloat() {
		d := append([]int64{}, x.Int64s()...)
		u := upd.Int64s()
		for k, p := range pos {
			d[p] = int64(combine(float64(d[p]), float64(u[k])))
		}
		return graph.FromInt64s(x.DType(), x.Shape(), d), nil
	}
	d := append([]float64{}, x.Float64s()...)
	u := upd.Float64s()
	for k, p := range pos {
		d[p] = combine(d[p], u[k])
	}
	return graph.Make(x.DType(), x.Shape(), d), nil
}

func buildScatterElements(c *nodeCtx) (graph.Kernel, error) {
	axis := c.int("axis", 0)
	red := c.str("reduction", "none")
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x, ind, upd := in[0], in[1], in[2]
		a, err := normAxis(axis, x.Rank())
		if err != nil {
			return nil, err
		}
		if ind.Rank() != x.Rank() || !sameShape(ind.Shape(), upd.Shape()) {
			return nil, fmt.Errorf("indices %v and updates %v do not fit data %v", ind.Shape(), upd.Shape(), x.Shape())
		}
		pos, err := elementIndex(x.Shape(), ind.Shape(), ind.Int64s(), a)
		if err != nil {
			return nil, err
		}
		r, err := scatter(x, upd, pos, red)
		if err != nil {
			return nil, err
		}
		return one(r), nil
	}, nil
}

// ndIndex resolves GatherND/ScatterND index tuples into flat offsets of
// slices of x, with the slice length.
func ndIndex(xs []int, ind *graph.Value, batch int) ([]int, int, error) {
	is := ind.Shape()
	if len(is) == 0 {
		return nil, 0, fmt.Errorf("indices must have rank >= 1")
	}
	q := is[len(is)-1]
	if batch+q > len(xs) {
		return nil, 0, fmt.Errorf("index tuples of %d for data of rank %d", q, len(xs))
	}
	st := strides(xs)
	sliceLen := numel(xs[batch+q:])
	ids := ind.Int64s()
	n := len(ids) / max(q, 1)
	if q == 0 {
		n = numel(is[:len(is)-1])
	}
	perBatch := n / max(numel(xs[:batch]), 1)
	out := make([]int, n)
	for k := 0; k < n; k++ {
		off := 0
		if batch > 0 {
			b := k / max(perBatch, 1)
			off = b * st[batch-1]
		}
		for j := 0; j < q; j++ {
			id := ids[k*q+j]
			dim := int64(xs[batch+j])
			if id < 0 {
				id += dim
			}
			if id < 0 || id >= dim {
				return nil, 0, fmt.Errorf("index %d out of range for dimension %d", ids[k*q+j], dim)
			}
			off += int(id) * st[batch+j]
		}
		out[k] = off
	}
	return out, sliceLen, nil
}

func buildGatherND(c *nodeCtx) (graph.Kernel, error) {
	batch := int(c.int("batch_dims", 0))
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x, ind := in[0], in[1]
		offs, sl, err := ndIndex(x.Shape(), ind, batch)
		if err != nil {
			return nil, err
		}
		q := ind.Shape()[ind.Rank()-1]
		shape := append(append([]int{}, ind.Shape()[:ind.Rank()-1]...), x.Shape()[batch+q:]...)
		idx := make([]int, 0, len(offs)*sl)
		for _, o := range offs {
			for j := 0; j < sl; j++ {
				idx = append(idx, o+j)
			}
		}
		return one(take(x, idx, shape)), nil
	}, nil
}

func buildScatterND(c *nodeCtx) (graph.Kernel, error) {
	red := c.str("reduction", "none")
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x, ind, upd := in[0], in[1], in[2]
		offs, sl, err := ndIndex(x.Shape(), ind, 0)
		if err != nil {
			return nil, err
		}
		if len(offs)*sl != upd.Numel() {
			return nil, fmt.Errorf("updates %v do not fit indices %v", upd.Shape(), ind.Shape())
		}
		pos := make([]int, 0, upd.Numel())
		for _, o := range offs {
			for j := 0; j < sl; j++ {
				pos = append(pos, o+j)
			}
		}
		r, err := scatter(x, upd, pos, red)
		if err != nil {
			return nil, err
		}
		return one(r), nil
	}, nil
}

func buildExpand(c *nodeCtx) (graph.Kernel, error) {
	limit := c.opts.MaxElements
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		want := in[1].Ints()
		shape, err := broadcast(in[0].Shape(), want)
		if err != nil {
			return nil, err
		}
		if err := checkElems(numelChecked(shape, limit), limit); err != nil {
			return nil, err
		}
		return one(expandTo(in[0], shape)), nil
	}, nil
}

func buildTile(c *nodeCtx) (graph.Kernel, error) {
	limit := c.opts.MaxElements
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		reps := in[1].Ints()
		if len(reps) != x.Rank() {
			return nil, fmt.Errorf("%d repeats for rank %d", len(reps), x.Rank())
		}
		shape := make([]int, x.Rank())
		n := 1
		for d, r := range reps {
			if r < 0 {
				return nil, fmt.Errorf("negative repeat %d", r)
			}
			shape[d] = x.Shape()[d] * r
			n *= shape[d]
			if n > limit {
				return nil, checkElems(n, limit)
			}
		}
		xs := strides(x.Shape())
		idx := make([]int, numel(shape))
		counter := make([]int, len(shape))
		for k := range idx {
			off := 0
			for d := range shape {
				off += (counter[d] % x.Shape()[d]) * xs[d]
			}
			idx[k] = off
			for d := len(shape) - 1; d >= 0; d-- {
				counter[d]++
				if counter[d] < shape[d] {
					break
				}
				counter[d] = 0
			}
		}
		return one(take(x, idx, shape)), nil
	}, nil
}

func buildShape(c *nodeCtx) (graph.Kernel, error) {
	start, end := c.int("start", 0), c.int("end", math.MaxInt64)
	hasEnd := c.has("end")
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		r := int64(in[0].Rank())
		s, e := start, end
		if !hasEnd {
			e = r
		}
		if s < 0 {
			s += r
		}
		if e < 0 {
			e += r
		}
		s, e = min(max(s, 0), r), min(max(e, 0), r)
		var d []int64
		for k := s; k < e; k++ {
			d = append(d, int64(in[0].Shape()[k]))
		}
		return one(graph.FromInt64s(graph.Int64, []int{len(d)}, d)), nil
	}, nil
}

func buildSize(c *nodeCtx) (graph.Kernel, error) {
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		return one(graph.Scalar64(int64(in[0].Numel()))), nil
	}, nil
}

func buildConstantOfShape(c *nodeCtx) (graph.Kernel, error) {
	fill := graph.FromFloat64s(graph.Float32, []int{1}, []float64{0})
	if a := c.attrs["value"]; a != nil && a.T != nil {
		v, err := ValueFromProto(a.T)
		if err != nil {
			return nil, c.errorf("value: %v", err)
		}
		if v.Numel() != 1 {
			return nil, c.errorf("value has %d elements, want 1", v.Numel())
		}
		fill = v
	}
	limit := c.opts.MaxElements
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		shape := in[0].Ints()
		n := 1
		for _, d := range shape {
			if d < 0 {
				return nil, fmt.Errorf("negative dimension in %v", shape)
			}
			n *= d
			if n > limit {
				return nil, checkElems(n, limit)
			}
		}
		return one(take(fill, make([]int, n), shape)), nil
	}, nil
}

func buildRange(c *nodeCtx) (graph.Kernel, error) {
	limit := c.opts.MaxElements
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		dt := in[0].DType()
		if !dt.IsFloat() {
			s, l, d := in[0].Int64s()[0], in[1].Int64s()[0], in[2].Int64s()[0]
			if d == 0 {
				return nil, fmt.Errorf("delta 0")
			}
			n := max(int64(0), (l-s+d-sign64(d))/d)
			if n > int64(limit) {
				return nil, checkElems(limit+1, limit)
			}
			v := make([]int64, n)
			for k := range v {
				v[k] = s + int64(k)*d
			}
			return one(graph.FromInt64s(dt, []int{int(n)}, v)), nil
		}
		s, l, d := in[0].Float64s()[0], in[1].Float64s()[0], in[2].Float64s()[0]
		nf := math.Ceil((l - s) / d)
		if math.IsNaN(nf) || nf > float64(limit) {
			return nil, fmt.Errorf("range of %g elements", nf)
		}
		n := max(0, int(nf))
		v := make([]float64, n)
		for k := range v {
			v[k] = s + float64(k)*d
		}
		return one(graph.Make(dt, []int{n}, v)), nil
	}, nil
}

func sign64(x int64) int64 {
	if x < 0 {
		return -1
	}
	return 1
}

func buildConstant(c *nodeCtx) (graph.Kernel, error) {
	var v *graph.Value
	for name, a := range c.attrs {
		var err error
		switch name {
		case "value":
			v, err = ValueFromProto(a.T)
		case "value_float":
			v = graph.FromFloat64s(graph.Float32, []int{}, []float64{float64(a.F)})
		case "value_floats":
			f := make([]float64, len(a.Floats))
			for k, e := range a.Floats {
				f[k] = float64(e)
			}
			v = graph.FromFloat64s(graph.Float32, []int{len(f)}, f)
		case "value_int":
			v = graph.Scalar64(a.I)
		case "value_ints":
			v = graph.FromInt64s(graph.Int64, []int{len(a.Ints)}, a.Ints)
		default:
			return nil, c.unsupported("attribute %q", name)
		}
		if err != nil {
			return nil, c.errorf("%v", err)
		}
	}
	if v == nil {
		return nil, c.errorf("no value")
	}
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) { return one(v), nil }, nil
}

func buildTrilu(c *nodeCtx) (graph.Kernel, error) {
	upper := c.int("upper", 1) != 0
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		k := int64(0)
		if len(in) > 1 && in[1] != nil {
			k = in[1].Int64s()[0]
		}
		r := x.Rank()
		if r < 2 {
			return nil, fmt.Errorf("rank %d, want >= 2", r)
		}
		h, w := x.Shape()[r-2], x.Shape()[r-1]
		mask := make([]int64, x.Numel())
		for i := range mask {
			col := int64(i % w)
			row := int64((i / w) % h)
			if upper && col-row >= k || !upper && col-row <= k {
				mask[i] = 1
			}
		}
		zero := graph.Make(x.DType(), []int{}, []float64{0})
		return where(graph.FromInt64s(graph.Bool, x.Shape(), mask), x, expandTo(zero, x.Shape()))
	}, nil
}

// where selects a where mask is set and b elsewhere (same shapes).
func where(mask, a, b *graph.Value) ([]*graph.Value, error) {
	k, _ := buildWhere(nil)
	return k(nil, []*graph.Value{mask, a, b})
}

func buildNonZero(c *nodeCtx) (graph.Kernel, error) {
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		f := x.Float64s()
		r := x.Rank()
		var hits []int
		for k, e := range f {
			if e != 0 {
				hits = append(hits, k)
			}
		}
		st := strides(x.Shape())
		d := make([]int64, r*len(hits))
		for j, h := range hits {
			for a := 0; a < r; a++ {
				d[a*len(hits)+j] = int64(h / st[a] % x.Shape()[a])
			}
		}
		return one(graph.FromInt64s(graph.Int64, []int{r, len(hits)}, d)), nil
	}, nil
}

func buildCompress(c *nodeCtx) (graph.Kernel, error) {
	hasAxis := c.has("axis")
	axis := c.int("axis", 0)
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x, cond := in[0], in[1].Int64s()
		if !hasAxis {
			x = x.WithShape([]int{x.Numel()})
		}
		a, err := normAxis(axis, x.Rank())
		if !hasAxis {
			a, err = 0, nil
		}
		if err != nil {
			return nil, err
		}
		s := x.Shape()
		outer, inner := numel(s[:a]), numel(s[a+1:])
		var sel []int
		for k, e := range cond {
			if e != 0 && k < s[a] {
				sel = append(sel, k)
			}
		}
		shape := append([]int{}, s...)
		shape[a] = len(sel)
		var idx []int
		for o := 0; o < outer; o++ {
			for _, j := range sel {
				for i := 0; i < inner; i++ {
					idx = append(idx, (o*s[a]+j)*inner+i)
				}
			}
		}
		return one(take(x, idx, shape)), nil
	}, nil
}

func buildOneHot(c *nodeCtx) (graph.Kernel, error) {
	axis := c.int("axis", -1)
	limit := c.opts.MaxElements
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		ind, vals := in[0], in[2]
		depth := int(in[1].Float64s()[0])
		if depth < 0 || ind.Numel()*depth > limit {
			return nil, fmt.Errorf("depth %d", depth)
		}
		r := ind.Rank() + 1
		a, err := normAxis(axis, r)
		if err != nil {
			return nil, err
		}
		shape := append(append(append([]int{}, ind.Shape()[:a]...), depth), ind.Shape()[a:]...)
		outer, inner := numel(ind.Shape()[:a]), numel(ind.Shape()[a:])
		ids := ind.Float64s()
		idx := make([]int, numel(shape))
		for o := 0; o < outer; o++ {
			for d := 0; d < depth; d++ {
				for i := 0; i < inner; i++ {
					id := int(ids[o*inner+i])
					if id < 0 {
						id += depth
					}
					if id == d {
						idx[(o*depth+d)*inner+i] = 1
					}
				}
			}
		}
		return one(take(vals, idx, shape)), nil
	}, nil
}

func buildEyeLike(c *nodeCtx) (graph.Kernel, error) {
	k := int(c.int("k", 0))
	hasDT := c.has("dtype")
	dtAttr := onnxDataType(c.int("dtype", 0))
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		if x.Rank() != 2 {
			return nil, fmt.Errorf("rank %d, want 2", x.Rank())
		}
		dt := x.DType()
		if hasDT {
			var ok bool
			if dt, ok = dtypeOf(dtAttr); !ok {
				return nil, fmt.Errorf("dtype %s", dtAttr)
			}
		}
		h, w := x.Shape()[0], x.Shape()[1]
		d := make([]float64, h*w)
		for i := 0; i < h; i++ {
			if j := i + k; j >= 0 && j < w {
				d[i*w+j] = 1
			}
		}
		return one(graph.Make(dt, x.Shape(), d)), nil
	}, nil
}

func buildDepthToSpace(c *nodeCtx) (graph.Kernel, error) {
	bs := int(c.int("blocksize", 0))
	mode := c.str("mode", "DCR")
	toSpace := c.n.OpType == "DepthToSpace"
	if bs <= 0 {
		return nil, c.errorf("blocksize %d", bs)
	}
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		if x.Rank() != 4 {
			return nil, fmt.Errorf("rank %d, want 4", x.Rank())
		}
		n, ch, h, w := x.Shape()[0], x.Shape()[1], x.Shape()[2], x.Shape()[3]
		if toSpace {
			if ch%(bs*bs) != 0 {
				return nil, fmt.Errorf("channels %d not divisible by %d", ch, bs*bs)
			}
			cc := ch / (bs * bs)
			var v *graph.Value
			if mode == "DCR" {
				v = x.WithShape([]int{n, bs, bs, cc, h, w})
				v = permute(v, []int{0, 3, 4, 1, 5, 2})
			} else {
				v = x.WithShape([]int{n, cc, bs, bs, h, w})
				v = permute(v, []int{0, 1, 4, 2, 5, 3})
			}
			return one(v.WithShape([]int{n, cc, h * bs, w * bs})), nil
		}
		if h%bs != 0 || w%bs != 0 {
			return nil, fmt.Errorf("spatial %dx%d not divisible by %d", h, w, bs)
		}
		v := x.WithShape([]int{n, ch, h / bs, bs, w / bs, bs})
		v = permute(v, []int{0, 3, 5, 1, 2, 4})
		return one(v.WithShape([]int{n, ch * bs * bs, h / bs, w / bs})), nil
	}, nil
}

func buildDropout(c *nodeCtx) (graph.Kernel, error) {
	ratioAttr := float64(c.float("ratio", 0.5))
	opset := c.opset
	return func(ctx *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		// Before opset 12 the node has no training input: it never drops
		// here, also when the graph trains (documented; see the README).
		training := false
		ratio := ratioAttr
		if opset >= 12 {
			if len(in) > 1 && in[1] != nil {
				ratio = in[1].Float64s()[0]
			}
			if len(in) > 2 && in[2] != nil {
				training = in[2].Int64s()[0] != 0
			}
		}
		mask := make([]int64, x.Numel())
		for k := range mask {
			mask[k] = 1
		}
		if training && ratio > 0 {
			return nil, fmt.Errorf("dropout in training mode needs random numbers, which the graph does not draw")
		}
		return []*graph.Value{x, graph.FromInt64s(graph.Bool, x.Shape(), mask)}, nil
	}, nil
}

func buildReverseSequence(c *nodeCtx) (graph.Kernel, error) {
	batchAxis, timeAxis := int(c.int("batch_axis", 1)), int(c.int("time_axis", 0))
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		lens := in[1].Ints()
		st := strides(x.Shape())
		idx := identityIdx(x.Numel())
		for k := range idx {
			b := k / st[batchAxis] % x.Shape()[batchAxis]
			t := k / st[timeAxis] % x.Shape()[timeAxis]
			if b < len(lens) && t < lens[b] {
				idx[k] = k + (lens[b]-1-2*t)*st[timeAxis]
			}
		}
		return one(take(x, idx, x.Shape())), nil
	}, nil
}
