package onnximport

import (
	"fmt"
	"math"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
)

// Helpers over graph.Values shared by the operators. Float32 values keep
// autograd: data movement goes through take (a gather by an index map whose
// backward scatters), arithmetic through nn's ops or nn.Record.

func numel(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

func strides(s []int) []int {
	st := make([]int, len(s))
	acc := 1
	for k := len(s) - 1; k >= 0; k-- {
		st[k] = acc
		acc *= s[k]
	}
	return st
}

func checkElems(n int, limit int) error {
	if n < 0 || n > limit {
		return fmt.Errorf("a result of %d elements exceeds the limit of %d", n, limit)
	}
	return nil
}

// broadcast returns numpy's broadcast shape of the given shapes.
func broadcast(shapes ...[]int) ([]int, error) {
	r := 0
	for _, s := range shapes {
		r = max(r, len(s))
	}
	out := make([]int, r)
	for k := range out {
		out[k] = 1
	}
	for _, s := range shapes {
		off := r - len(s)
		for k, d := range s {
			o := out[off+k]
			switch {
			case o == d || d == 1:
			case o == 1:
				out[off+k] = d
			default:
				return nil, fmt.Errorf("shapes %v do not broadcast", shapes)
			}
		}
	}
	return out, nil
}

// bcastIndex maps every element of out (row-major) to its source element
// in a tensor of shape in broadcast to out.
func bcastIndex(in, out []int) []int {
	n := numel(out)
	idx := make([]int, n)
	if sameShape(in, out) {
		for k := range idx {
			idx[k] = k
		}
		return idx
	}
	off := len(out) - len(in)
	ist := strides(in)
	st := make([]int, len(out))
	for k := range in {
		if in[k] != 1 {
			st[off+k] = ist[k]
		}
	}
	counter := make([]int, len(out))
	pos := 0
	for k := 0; k < n; k++ {
		idx[k] = pos
		for d := len(out) - 1; d >= 0; d-- {
			counter[d]++
			pos += st[d]
			if counter[d] < out[d] {
				break
			}
			pos -= st[d] * counter[d]
			counter[d] = 0
		}
	}
	return idx
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}

// take returns the value of the given shape whose element k is v's element
// idx[k]; for float32 the backward scatters the gradient back.
func take(v *graph.Value, idx []int, shape []int) *graph.Value {
	if t := v.Tensor(); t != nil {
		src := t.Data()
		d := make([]float32, len(idx))
		for k, j := range idx {
			d[k] = src[j]
		}
		out := nn.New(d, shape...)
		n := len(src)
		out = nn.Record(out, "Gather", []*nn.Tensor{t}, func(g []float32) [][]float32 {
			gi := make([]float32, n)
			for k, j := range idx {
				gi[j] += g[k]
			}
			return [][]float32{gi}
		})
		return graph.FromTensor(out)
	}
	if v.DType().IsFloat() {
		src := v.Float64s()
		d := make([]float64, len(idx))
		for k, j := range idx {
			d[k] = src[j]
		}
		return graph.FromFloat64s(v.DType(), shape, d)
	}
	src := v.Int64s()
	d := make([]int64, len(idx))
	for k, j := range idx {
		d[k] = src[j]
	}
	return graph.FromInt64s(v.DType(), shape, d)
}

// expandTo broadcasts v to shape.
func expandTo(v *graph.Value, shape []int) *graph.Value {
	if sameShape(v.Shape(), shape) {
		return v
	}
	return take(v, bcastIndex(v.Shape(), shape), shape)
}

// permute transposes v by perm.
func permute(v *graph.Value, perm []int) *graph.Value {
	s := v.Shape()
	if t := v.Tensor(); t != nil && len(s) > 0 {
		return graph.FromTensor(t.Permute(perm...))
	}
	out := make([]int, len(perm))
	for k, p := range perm {
		out[k] = s[p]
	}
	return take(v, permIndex(s, perm), out)
}

func permIndex(s, perm []int) []int {
	out := make([]int, len(perm))
	st := strides(s)
	ost := make([]int, len(perm))
	for k, p := range perm {
		out[k] = s[p]
		ost[k] = st[p]
	}
	n := numel(out)
	idx := make([]int, n)
	counter := make([]int, len(out))
	pos := 0
	for k := 0; k < n; k++ {
		idx[k] = pos
		for d := len(out) - 1; d >= 0; d-- {
			counter[d]++
			pos += ost[d]
			if counter[d] < out[d] {
				break
			}
			pos -= ost[d] * counter[d]
			counter[d] = 0
		}
	}
	return idx
}

// fromF32 wraps float32 data as a Value of v's kind: an nn tensor.
func fromF32(d []float32, shape []int) *graph.Value { return graph.FromTensor(nn.New(d, shape...)) }

// unary applies f elementwise to a floating value; df(x, y) is the
// derivative at x (y = f(x)) for float32 autograd, nil when not
// differentiable.
func unary(v *graph.Value, f func(float64) float64, df func(x, y float64) float64) *graph.Value {
	if t := v.Tensor(); t != nil {
		src := t.Data()
		d := make([]float32, len(src))
		for k, e := range src {
			d[k] = float32(f(float64(e)))
		}
		out := nn.New(d, t.Shape()...)
		if df != nil {
			out = nn.Record(out, "Unary", []*nn.Tensor{t}, func(g []float32) [][]float32 {
				gi := make([]float32, len(g))
				for k := range g {
					gi[k] = g[k] * float32(df(float64(src[k]), float64(d[k])))
				}
				return [][]float32{gi}
			})
		}
		return graph.FromTensor(out)
	}
	src := v.Float64s()
	d := make([]float64, len(src))
	for k, e := range src {
		d[k] = f(e)
	}
	if v.DType().IsFloat() {
		return graph.FromFloat64s(v.DType(), v.Shape(), d)
	}
	return graph.Make(v.DType(), v.Shape(), d)
}

// binSpec is an elementwise binary op: f on floats, fi on integers (nil:
// through f), da/db the partial derivatives for float32 autograd (nil: not
// differentiable), out the result type (Invalid: the operands' type).
type binSpec struct {
	f      func(x, y float64) float64
	fi     func(x, y int64) int64
	da, db func(x, y, z float64) float64
	out    graph.DType
}

func binop(a, b *graph.Value, s binSpec) (*graph.Value, error) {
	shape, err := broadcast(a.Shape(), b.Shape())
	if err != nil {
		return nil, err
	}
	ia, ib := bcastIndex(a.Shape(), shape), bcastIndex(b.Shape(), shape)
	n := len(ia)
	outT := s.out
	if outT == graph.Invalid {
		outT = a.DType()
	}
	if a.DType() == graph.Float32 && outT == graph.Float32 {
		ta, tb := a.Tensor(), b.Cast(graph.Float32).Tensor()
		xa, xb := ta.Data(), tb.Data()
		d := make([]float32, n)
		for k := range d {
			d[k] = float32(s.f(float64(xa[ia[k]]), float64(xb[ib[k]])))
		}
		out := nn.New(d, shape...)
		if s.da != nil || s.db != nil {
			out = nn.Record(out, "Binary", []*nn.Tensor{ta, tb}, func(g []float32) [][]float32 {
				var ga, gb []float32
				if ta.RequiresGrad() && s.da != nil {
					ga = make([]float32, len(xa))
					for k := range g {
						ga[ia[k]] += g[k] * float32(s.da(float64(xa[ia[k]]), float64(xb[ib[k]]), float64(d[k])))
					}
				}
				if tb.RequiresGrad() && s.db != nil {
					gb = make([]float32, len(xb))
					for k := range g {
						gb[ib[k]] += g[k] * float32(s.db(float64(xa[ia[k]]), float64(xb[ib[k]]), float64(d[k])))
					}
				}
				return [][]float32{ga, gb}
			})
		}
		return graph.FromTensor(out), nil
	}
	if !a.DType().IsFloat() && s.fi != nil {
		xa, xb := a.Int64s(), b.Int64s()
		d := make([]int64, n)
		for k := range d {
			d[k] = s.fi(xa[ia[k]], xb[ib[k]])
		}
		return graph.FromInt64s(outT, shape, d), nil
	}
	xa, xb := a.Float64s(), b.Float64s()
	d := make([]float64, n)
	for k := range d {
		d[k] = s.f(xa[ia[k]], xb[ib[k]])
	}
	return graph.Make(outT, shape, d), nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// normAxis resolves a possibly negative axis of a rank-r value.
func normAxis(a int64, r int) (int, error) {
	if a < 0 {
		a += int64(r)
	}
	if a < 0 || a >= int64(r) {
		return 0, fmt.Errorf("axis %d out of range for rank %d", a, r)
	}
	return int(a), nil
}

func normAxes(as []int64, r int) ([]int, error) {
	out := make([]int, len(as))
	seen := map[int]bool{}
	for k, a := range as {
		x, err := normAxis(a, r)
		if err != nil {
			return nil, err
		}
		if seen[x] {
			return nil, fmt.Errorf("axis %d repeated", a)
		}
		seen[x] = true
		out[k] = x
	}
	return out, nil
}

// rowsLast moves the given axes to the end, returning the moved value, the
// number of rows and the row length, and the kept shape.
func rowsLast(v *graph.Value, axes []int) (*graph.Value, int, int, []int) {
	r := v.Rank()
	red := map[int]bool{}
	for _, a := range axes {
		red[a] = true
	}
	var perm, kept []int
	rowLen := 1
	for d := 0; d < r; d++ {
		if !red[d] {
			perm = append(perm, d)
			kept = append(kept, v.Shape()[d])
		}
	}
	for d := 0; d < r; d++ {
		if red[d] {
			perm = append(perm, d)
			rowLen *= v.Shape()[d]
		}
	}
	moved := v
	identity := true
	for k, p := range perm {
		identity = identity && k == p
	}
	if !identity {
		moved = take(v, permIndex(v.Shape(), perm), permShape(v.Shape(), perm))
	}
	return moved, numel(kept), rowLen, kept
}

func permShape(s, perm []int) []int {
	out := make([]int, len(perm))
	for k, p := range perm {
		out[k] = s[p]
	}
	return out
}

func f64sToF32(v []float64) []float32 {
	out := make([]float32, len(v))
	for k, e := range v {
		out[k] = float32(e)
	}
	return out
}

var inf = math.Inf(1)
