package nn

import (
	"fmt"
	"math"
	"strings"
)

// Tensor is a dense float32 compute tensor, stored contiguously in row-major
// order, that can take part in automatic differentiation.
//
// A leaf tensor is one made by a constructor (or [Tensor.Detach]); it
// accumulates a gradient in [Tensor.Grad] when it requires grad. A tensor made
// by an op while grad mode is on and one of its inputs requires grad is a
// non-leaf: it remembers the op that made it, and [Tensor.Backward] walks those
// records back to the leaves. Non-leaf tensors do not keep their gradients.
//
// Shape errors (mismatched operands, an impossible reshape) are programmer
// errors and panic with a *[ShapeError]; they never come from a file.
type Tensor struct {
	data         []float32
	shape        []int
	requiresGrad bool
	grad         *Tensor
	fn           *node
	arena        *arena // where ops on t draw their results from, if t is part of an Infer call
	// abuf is 1 + the index in arena.bufs of the buffer allocated for t's
	// data, for a result of a TrainStep op (0 otherwise, views included):
	// autograd gives that buffer back once t's node has been through
	// Backward (see node.buf).
	abuf int32
}

// ShapeError is the panic value of an op given operands of incompatible shapes.
type ShapeError struct {
	Op    string
	Shape [][]int
	Msg   string
}

// Error formats the error.
func (e *ShapeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "nn: %s: ", e.Op)
	b.WriteString(e.Msg)
	for i, s := range e.Shape {
		if i == 0 {
			b.WriteString(" (shapes ")
		} else {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, s)
		if i == len(e.Shape)-1 {
			b.WriteString(")")
		}
	}
	return b.String()
}

func shapeErr(op, msg string, shapes ...[]int) {
	panic(&ShapeError{Op: op, Shape: shapes, Msg: msg})
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		if d < 0 {
			shapeErr("shape", "negative dimension", cloneInts(shape))
		}
		n *= d
	}
	return n
}

// New returns a leaf tensor of the given shape over data, which it adopts
// (no copy). len(data) must equal the product of shape; no shape means a
// scalar of one element.
func New(data []float32, shape ...int) *Tensor {
	if numel(shape) != len(data) {
		shapeErr("New", fmt.Sprintf("%d values do not fill the shape", len(data)), cloneInts(shape))
	}
	return &Tensor{data: data, shape: append([]int(nil), shape...)}
}

// Zeros returns a leaf tensor of zeros.
func Zeros(shape ...int) *Tensor {
	return &Tensor{data: make([]float32, numel(shape)), shape: append([]int(nil), shape...)}
}

// Full returns a leaf tensor with every element v.
func Full(v float32, shape ...int) *Tensor {
	t := Zeros(shape...)
	for i := range t.data {
		t.data[i] = v
	}
	return t
}

// Ones returns a leaf tensor of ones.
func Ones(shape ...int) *Tensor { return Full(1, shape...) }

// Scalar returns a 0-dimensional leaf tensor holding v.
func Scalar(v float32) *Tensor { return &Tensor{data: []float32{v}, shape: []int{}} }

// ZerosLike returns a leaf tensor of zeros with t's shape. Inside [Infer]
// its memory comes from the call's arena, as an op's result would.
func ZerosLike(t *Tensor) *Tensor { return newResult(cloneInts(t.shape), t) }

// Shape returns the dimensions of t. The caller must not modify it.
func (t *Tensor) Shape() []int { return t.shape }

// Dim returns the number of dimensions of t.
func (t *Tensor) Dim() int { return len(t.shape) }

// Size returns the length of dimension d; negative d counts from the end.
func (t *Tensor) Size(d int) int { return t.shape[normDim(d, len(t.shape), "Size")] }

// Numel returns the number of elements of t.
func (t *Tensor) Numel() int { return len(t.data) }

// Data returns t's elements in row-major order. The slice aliases the tensor:
// writing to it changes t (and any view of t) without autograd noticing, which
// is how optimizers update parameters.
func (t *Tensor) Data() []float32 { return t.data }

// Item returns the single element of a one-element tensor.
func (t *Tensor) Item() float32 {
	if len(t.data) != 1 {
		shapeErr("Item", "tensor has more than one element", t.shape)
	}
	return t.data[0]
}

// At returns the element at the given multi-index.
func (t *Tensor) At(idx ...int) float32 {
	if len(idx) != len(t.shape) {
		shapeErr("At", fmt.Sprintf("%d indices", len(idx)), t.shape)
	}
	off := 0
	for d, i := range idx {
		if i < 0 || i >= t.shape[d] {
			shapeErr("At", fmt.Sprintf("index %d out of range in dimension %d", i, d), t.shape)
		}
		off = off*t.shape[d] + i
	}
	return t.data[off]
}

// RequiresGrad reports whether gradients flow to t: a leaf that was marked
// with [Tensor.SetRequiresGrad], or the result of an op on such tensors.
func (t *Tensor) RequiresGrad() bool { return t.requiresGrad }

// SetRequiresGrad marks a leaf tensor as needing a gradient (or not) and
// returns it. Unmarking drops its gradient, so frozen tensors hold no gradient
// memory. It panics on a non-leaf tensor, as torch does.
func (t *Tensor) SetRequiresGrad(v bool) *Tensor {
	if t.fn != nil {
		panic("nn: SetRequiresGrad on a non-leaf tensor; use Detach first")
	}
	t.requiresGrad = v
	if !v {
		t.grad = nil
	}
	return t
}

// IsLeaf reports whether t was not produced by a recorded op.
func (t *Tensor) IsLeaf() bool { return t.fn == nil }

// Grad returns the gradient accumulated in a leaf tensor by Backward, or nil.
func (t *Tensor) Grad() *Tensor { return t.grad }

// SetGrad replaces t's gradient (nil clears it). It panics if g's shape
// differs from t's.
func (t *Tensor) SetGrad(g *Tensor) {
	if g != nil && !sameShape(g.shape, t.shape) {
		shapeErr("SetGrad", "gradient shape differs", t.shape, g.shape)
	}
	t.grad = g
}

// ZeroGrad drops t's gradient, as torch's zero_grad(set_to_none=True).
func (t *Tensor) ZeroGrad() { t.grad = nil }

// Detach returns a leaf tensor sharing t's data that does not require grad.
func (t *Tensor) Detach() *Tensor { return &Tensor{data: t.data, shape: t.shape, arena: t.arena} }

// Clone returns a copy of t's data as a new tensor; the copy is recorded like
// any op, so gradients flow back to t.
func (t *Tensor) Clone() *Tensor {
	out := &Tensor{data: append([]float32(nil), t.data...), shape: append([]int(nil), t.shape...)}
	if !needGrad(t) {
		return out
	}
	return record(out, "Clone", []*Tensor{t}, func(g []float32) [][]float32 { return [][]float32{g} })
}

// CopyFrom copies src's elements into t's data (shapes must have the same
// number of elements). It is not recorded by autograd.
func (t *Tensor) CopyFrom(src *Tensor) {
	if len(src.data) != len(t.data) {
		shapeErr("CopyFrom", "element counts differ", t.shape, src.shape)
	}
	copy(t.data, src.data)
	MarkModified()
}

// String formats t's shape and, for small tensors, its values.
func (t *Tensor) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Tensor%v", t.shape)
	if len(t.data) <= 16 {
		fmt.Fprintf(&b, " %v", t.data)
	}
	if t.fn != nil {
		fmt.Fprintf(&b, " grad_fn=%s", t.fn.name)
	} else if t.requiresGrad {
		b.WriteString(" requires_grad")
	}
	return b.String()
}

// cloneInts copies s, so that a caller's variadic slice need not escape.
func cloneInts(s []int) []int { return append([]int(nil), s...) }

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func normDim(d, n int, op string) int {
	if d < 0 {
		d += n
	}
	if d < 0 || d >= n {
		panic(&ShapeError{Op: op, Msg: fmt.Sprintf("dimension %d out of range for %d dimensions", d, n)})
	}
	return d
}

// AllClose reports whether every element of a and b satisfies
// |a-b| <= atol + rtol*|b|, with equal shapes.
func AllClose(a, b *Tensor, rtol, atol float64) bool {
	if !sameShape(a.shape, b.shape) {
		return false
	}
	for i := range a.data {
		x, y := float64(a.data[i]), float64(b.data[i])
		if math.IsNaN(x) || math.IsNaN(y) || math.Abs(x-y) > atol+rtol*math.Abs(y) {
			return false
		}
	}
	return true
}

// Guard runs f and returns the *ShapeError it panics with, if any, as an
// error (other panics propagate). Callers that feed user-supplied tensors to
// a model, such as a CLI running a forward pass on an input file, use it to
// turn a shape mismatch into an ordinary error.
func Guard(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			se, ok := r.(*ShapeError)
			if !ok {
				panic(r)
			}
			err = se
		}
	}()
	f()
	return nil
}
