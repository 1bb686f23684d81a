package onnximport

import (
	"fmt"
	"math"
	"sort"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
)

// Reductions, arg-reductions, softmax and its relatives, the two losses,
// CumSum and TopK.

func init() {
	register(buildReduce, "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
		"ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")
	register(buildArg, "ArgMax", "ArgMin")
	register(buildSoftmax, "Softmax", "LogSoftmax", "Hardmax")
	register(buildNLL, "NegativeLogLikelihoodLoss")
	register(buildSCE, "SoftmaxCrossEntropyLoss")
	register(buildCumSum, "CumSum")
	register(buildTopK, "TopK")
}

type rowReducer struct {
	f    func(row []float64) float64
	grad func(row []float64, y float64, j int) float64 // nil: not differentiable
}

var reducers = map[string]rowReducer{
	"ReduceSum": {func(r []float64) float64 { return sum(r) }, func(_ []float64, _ float64, _ int) float64 { return 1 }},
	"ReduceMean": {func(r []float64) float64 { return sum(r) / float64(len(r)) },
		func(r []float64, _ float64, _ int) float64 { return 1 / float64(len(r)) }},
	"ReduceMax": {func(r []float64) float64 {
		m := math.Inf(-1)
		for _, e := range r {
			if e > m || math.IsNaN(e) {
				m = e
			}
		}
		return m
	}, func(r []float64, y float64, j int) float64 { return b2f(r[j] == y && firstIndex(r, y) == j) }},
	"ReduceMin": {func(r []float64) float64 {
		m := math.Inf(1)
		for _, e := range r {
			if e < m || math.IsNaN(e) {
				m = e
			}
		}
		return m
	}, func(r []float64, y float64, j int) float64 { return b2f(r[j] == y && firstIndex(r, y) == j) }},
	"ReduceProd": {func(r []float64) float64 {
		p := 1.0
		for _, e := range r {
			p *= e
		}
		return p
	}, func(r []float64, _ float64, j int) float64 {
		p := 1.0
		for k, e := range r {
			if k != j {
				p *= e
			}
		}
		return p
	}},
	"ReduceL1": {func(r []float64) float64 {
		s := 0.0
		for _, e := range r {
			s += math.Abs(e)
		}
		return s
	}, func(r []float64, _ float64, j int) float64 { return sign(r[j]) }},
	"ReduceL2": {func(r []float64) float64 {
		s := 0.0
		for _, e := range r {
			s += e * e
		}
		return math.Sqrt(s)
	}, func(r []float64, y float64, j int) float64 {
		if y == 0 {
			return 0
		}
		return r[j] / y
	}},
	"ReduceSumSquare": {func(r []float64) float64 {
		s := 0.0
		for _, e := range r {
			s += e * e
		}
		return s
	}, func(r []float64, _ float64, j int) float64 { return 2 * r[j] }},
	"ReduceLogSum": {func(r []float64) float64 { return math.Log(sum(r)) },
		func(r []float64, y float64, _ int) float64 { return 1 / math.Exp(y) }},
	"ReduceLogSumExp": {func(r []float64) float64 {
		m := math.Inf(-1)
		for _, e := range r {
			m = math.Max(m, e)
		}
		if math.IsInf(m, -1) {
			return m
		}
		s := 0.0
		for _, e := range r {
			s += math.Exp(e - m)
		}
		return m + math.Log(s)
	}, func(r []float64, y float64, j int) float64 { return math.Exp(r[j] - y) }},
}

func firstIndex(r []float64, y float64) int {
	for k, e := range r {
		if e == y {
			return k
		}
	}
	return -1
}

func sum(r []float64) float64 {
	s := 0.0
	for _, e := range r {
		s += e
	}
	return s
}

// reduceAxes reduces v over axes (all when axes is empty) by rd.
func reduceAxes(v *graph.Value, axes []int, keep bool, op string) *graph.Value {
	rd := reducers[op]
	if len(axes) == 0 {
		for d := 0; d < v.Rank(); d++ {
			axes = append(axes, d)
		}
	}
	outShape := []int{}
	red := map[int]bool{}
	for _, a := range axes {
		red[a] = true
	}
	for d, s := range v.Shape() {
		if !red[d] {
			outShape = append(outShape, s)
		} else if keep {
			outShape = append(outShape, 1)
		}
	}
	if t := v.Tensor(); t != nil && (op == "ReduceSum" || op == "ReduceMean") && v.Numel() > 0 && len(axes) > 0 {
		var r *nn.Tensor
		if op == "ReduceSum" {
			r = t.Sum(keep, axes...)
		} else {
			r = t.Mean(keep, axes...)
		}
		return graph.FromTensor(r.Reshape(outShape...))
	}
	moved, rows, rowLen, _ := rowsLast(v, axes)
	x := moved.Float64s()
	res := make([]float64, rows)
	for r := 0; r < rows; r++ {
		res[r] = rd.f(x[r*rowLen : (r+1)*rowLen])
	}
	if mt := moved.Tensor(); mt != nil {
		out := nn.New(f64sToF32(res), outShape...)
		if rd.grad != nil {
			out = nn.Record(out, op, []*nn.Tensor{mt}, func(g []float32) [][]float32 {
				gi := make([]float32, len(x))
				for r := 0; r < rows; r++ {
					row := x[r*rowLen : (r+1)*rowLen]
					for j := range row {
						gi[r*rowLen+j] = g[r] * float32(rd.grad(row, res[r], j))
					}
				}
				return [][]float32{gi}
			})
		}
		return graph.FromTensor(out)
	}
	return graph.Make(v.DType(), outShape, res)
}

func buildReduce(c *nodeCtx) (graph.Kernel, error) {
	op := c.n.OpType
	keep := c.int("keepdims", 1) != 0
	noop := c.int("noop_with_empty_axes", 0) != 0
	attrAxes := c.ints("axes", nil)
	fromInput := op == "ReduceSum" && c.opset >= 13 || c.opset >= 18
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		axes := attrAxes
		if fromInput {
			axes = nil
			if len(in) > 1 && in[1] != nil {
				axes = in[1].Int64s()
			}
			if len(axes) == 0 && noop {
				return one(x), nil
			}
		}
		as, err := normAxes(axes, x.Rank())
		if err != nil {
			return nil, err
		}
		return one(reduceAxes(x, as, keep, op)), nil
	}, nil
}

func buildArg(c *nodeCtx) (graph.Kernel, error) {
	isMax := c.n.OpType == "ArgMax"
	axis := c.int("axis", 0)
	keep := c.int("keepdims", 1) != 0
	last := c.int("select_last_index", 0) != 0
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		a, err := normAxis(axis, x.Rank())
		if err != nil {
			return nil, err
		}
		moved, rows, rowLen, kept := rowsLast(x, []int{a})
		v := moved.Float64s()
		res := make([]int64, rows)
		for r := 0; r < rows; r++ {
			best := 0
			for j := 1; j < rowLen; j++ {
				e, b := v[r*rowLen+j], v[r*rowLen+best]
				if isMax && (e > b || last && e == b) || !isMax && (e < b || last && e == b) {
					best = j
				}
			}
			res[r] = int64(best)
		}
		shape := kept
		if keep {
			shape = append([]int{}, x.Shape()...)
			shape[a] = 1
		}
		return one(graph.FromInt64s(graph.Int64, shape, res)), nil
	}, nil
}

// softmaxAxis is (log-)softmax of v along axis.
func softmaxAxis(v *graph.Value, axis int, log bool) *graph.Value {
	if t := v.Tensor(); t != nil {
		if log {
			return graph.FromTensor(t.LogSoftmax(axis))
		}
		return graph.FromTensor(t.Softmax(axis))
	}
	s := v.Shape()
	outer, size, inner := numel(s[:axis]), s[axis], numel(s[axis+1:])
	x := v.Float64s()
	out := make([]float64, len(x))
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			m := math.Inf(-1)
			for k := 0; k < size; k++ {
				m = math.Max(m, x[(o*size+k)*inner+i])
			}
			z := 0.0
			for k := 0; k < size; k++ {
				z += math.Exp(x[(o*size+k)*inner+i] - m)
			}
			for k := 0; k < size; k++ {
				p := (o*size+k)*inner + i
				if log {
					out[p] = x[p] - m - math.Log(z)
				} else {
					out[p] = math.Exp(x[p]-m) / z
				}
			}
		}
	}
	return graph.Make(v.DType(), s, out)
}

func buildSoftmax(c *nodeCtx) (graph.Kernel, error) {
	op := c.n.OpType
	def := int64(-1)
	if c.opset < 13 {
		def = 1
	}
	axis := c.int("axis", def)
	coerce := c.opset < 13
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		a, err := normAxis(axis, max(x.Rank(), 1))
		if err != nil {
			return nil, err
		}
		v := x
		if coerce {
			v = x.WithShape([]int{numel(x.Shape()[:a]), numel(x.Shape()[a:])})
			a = 1
		}
		var r *graph.Value
		if op == "Hardmax" {
			moved, rows, rowLen, _ := rowsLast(v, []int{a})
			f := moved.Float64s()
			res := make([]float64, len(f))
			for k := 0; k < rows; k++ {
				best := 0
				for j := 1; j < rowLen; j++ {
					if f[k*rowLen+j] > f[k*rowLen+best] {
						best = j
					}
				}
				if rowLen > 0 {
					res[k*rowLen+best] = 1
				}
			}
			// Move the axis back.
			perm := make([]int, v.Rank())
			j := 0
			for d := 0; d < v.Rank(); d++ {
				if d != a {
					perm[d] = j
					j++
				}
			}
			perm[a] = v.Rank() - 1
			r = permute(graph.Make(x.DType(), permShape(v.Shape(), append(without(v.Rank(), a), a)), res), perm)
		} else {
			r = softmaxAxis(v, a, op == "LogSoftmax")
		}
		return one(r.WithShape(x.Shape())), nil
	}, nil
}

func without(r, a int) []int {
	var out []int
	for d := 0; d < r; d++ {
		if d != a {
			out = append(out, d)
		}
	}
	return out
}

// nllLoss is NegativeLogLikelihoodLoss of log-probabilities x [N, C, ...]
// for integer targets [N, ...].
func nllLoss(x, target, weight *graph.Value, ignore int64, hasIgnore bool, reduction string) (*graph.Value, error) {
	s := x.Shape()
	if len(s) < 2 || target.Rank() != len(s)-1 {
		return nil, fmt.Errorf("input %v and target %v do not fit", s, target.Shape())
	}
	n, ch, inner := s[0], s[1], numel(s[2:])
	tg := target.Int64s()
	var w []float64
	if weight != nil {
		w = weight.Float64s()
	}
	idx := make([]int, len(tg))
	coef := make([]float64, len(tg))
	for k, t := range tg {
		b, i := k/max(inner, 1), k%max(inner, 1)
		if hasIgnore && t == ignore {
			continue
		}
		if t < 0 || t >= int64(ch) {
			return nil, fmt.Errorf("target %d out of range for %d classes", t, ch)
		}
		idx[k] = (b*ch+int(t))*inner + i
		coef[k] = 1
		if w != nil {
			coef[k] = w[t]
		}
	}
	_ = n
	picked := take(x, idx, target.Shape())
	neg := graph.Make(x.DType(), target.Shape(), negate(coef))
	loss, err := binop(picked, neg, binSpec{f: func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a * b
	}, da: func(_, b, _ float64) float64 { return b }})
	if err != nil {
		return nil, err
	}
	switch reduction {
	case "none":
		return loss, nil
	case "sum":
		return reduceAxes(loss, nil, false, "ReduceSum"), nil
	case "mean":
		total := reduceAxes(loss, nil, false, "ReduceSum")
		den := sum(coef)
		return unary(total, func(v float64) float64 { return v / den }, func(_, _ float64) float64 { return 1 / den }), nil
	}
	return nil, fmt.Errorf("reduction %q", reduction)
}

func negate(v []float64) []float64 {
	out := make([]float64, len(v))
	for k, e := range v {
		out[k] = -e
	}
	return out
}

func buildNLL(c *nodeCtx) (graph.Kernel, error) {
	red := c.str("reduction", "mean")
	ignore, hasIgnore := c.int("ignore_index", 0), c.has("ignore_index")
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		var w *graph.Value
		if len(in) > 2 {
			w = in[2]
		}
		r, err := nllLoss(in[0], in[1], w, ignore, hasIgnore, red)
		if err != nil {
			return nil, err
		}
		return one(r), nil
	}, nil
}

func buildSCE(c *nodeCtx) (graph.Kernel, error) {
	red := c.str("reduction", "mean")
	ignore, hasIgnore := c.int("ignore_index", 0), c.has("ignore_index")
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		if x.Rank() < 2 {
			return nil, fmt.Errorf("scores of rank %d", x.Rank())
		}
		lp := softmaxAxis(x, 1, true)
		var w *graph.Value
		if len(in) > 2 {
			w = in[2]
		}
		r, err := nllLoss(lp, in[1], w, ignore, hasIgnore, red)
		if err != nil {
			return nil, err
		}
		return []*graph.Value{r, lp}, nil
	}, nil
}

func buildCumSum(c *nodeCtx) (graph.Kernel, error) {
	excl, rev := c.int("exclusive", 0) != 0, c.int("reverse", 0) != 0
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		a, err := normAxis(in[1].Int64s()[0], x.Rank())
		if err != nil {
			return nil, err
		}
		s := x.Shape()
		outer, size, inner := numel(s[:a]), s[a], numel(s[a+1:])
		scan := func(src []float64, reverse bool) []float64 {
			out := make([]float64, len(src))
			for o := 0; o < outer; o++ {
				for i := 0; i < inner; i++ {
					acc := 0.0
					for j := 0; j < size; j++ {
						k := j
						if reverse {
							k = size - 1 - j
						}
						p := (o*size+k)*inner + i
						if excl {
							out[p] = acc
							acc += src[p]
						} else {
							acc += src[p]
							out[p] = acc
						}
					}
				}
			}
			return out
		}
		if !x.DType().IsFloat() {
			return one(graph.Make(x.DType(), s, scan(x.Float64s(), rev))), nil
		}
		res := graph.Make(x.DType(), s, scan(x.Float64s(), rev))
		if t := x.Tensor(); t != nil {
			out := nn.Record(res.Tensor(), "CumSum", []*nn.Tensor{t}, func(g []float32) [][]float32 {
				gg := make([]float64, len(g))
				for k, e := range g {
					gg[k] = float64(e)
				}
				return [][]float32{f64sToF32(scan(gg, !rev))}
			})
			return one(graph.FromTensor(out)), nil
		}
		return one(res), nil
	}, nil
}

func buildTopK(c *nodeCtx) (graph.Kernel, error) {
	axis := c.int("axis", -1)
	largest, sorted := c.int("largest", 1) != 0, c.int("sorted", 1) != 0
	_ = sorted
	attrK := c.int("k", 0)
	opset := c.opset
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		k := attrK
		if opset >= 10 {
			k = in[1].Int64s()[0]
		}
		a, err := normAxis(axis, x.Rank())
		if err != nil {
			return nil, err
		}
		s := x.Shape()
		if k < 0 || k > int64(s[a]) {
			return nil, fmt.Errorf("k %d for dimension %d", k, s[a])
		}
		outer, size, inner := numel(s[:a]), s[a], numel(s[a+1:])
		f := x.Float64s()
		shape := append([]int{}, s...)
		shape[a] = int(k)
		idx := make([]int, numel(shape))
		ind := make([]int64, numel(shape))
		order := make([]int, size)
		for o := 0; o < outer; o++ {
			for i := 0; i < inner; i++ {
				for j := range order {
					order[j] = j
				}
				at := func(j int) float64 { return f[(o*size+j)*inner+i] }
				sort.SliceStable(order, func(p, q int) bool {
					if largest {
						return at(order[p]) > at(order[q])
					}
					return at(order[p]) < at(order[q])
				})
				for j := 0; j < int(k); j++ {
					p := (o*int(k)+j)*inner + i
					idx[p] = (o*size+order[j])*inner + i
					ind[p] = int64(order[j])
				}
			}
		}
		return []*graph.Value{take(x, idx, shape), graph.FromInt64s(graph.Int64, shape, ind)}, nil
	}, nil
}
