package nn

import (
	"fmt"
	"sync/atomic"
)

// node records the op that produced a non-leaf tensor.
type node struct {
	name     string
	inputs   []*Tensor
	backward BackwardFunc
}

// BackwardFunc computes the gradients of an op's inputs from the gradient of
// its output (same length as the output's data). It returns one slice per
// input, in input order, with that input's element count; it may return nil
// for an input that does not require grad (check [Tensor.RequiresGrad]).
// It must not keep or modify grad.
type BackwardFunc func(grad []float32) [][]float32

var noGradDepth atomic.Int32

// NoGrad runs f with gradient recording turned off: ops inside f build no
// graph and keep no activations, whatever their inputs require. It is the
// inference mode of this package (torch.no_grad). The setting is process-wide,
// not per goroutine: do not train in one goroutine while another runs NoGrad.
// Calls nest.
func NoGrad(f func()) {
	noGradDepth.Add(1)
	defer noGradDepth.Add(-1)
	f()
}

// GradEnabled reports whether ops currently record the graph (false inside
// [NoGrad]).
func GradEnabled() bool { return noGradDepth.Load() == 0 }

// Record attaches a backward function to out, the result of a custom op on
// inputs, when grad mode is on and any input requires grad; otherwise it
// returns out untouched. It is how packages outside nn (losses, custom
// layers) add differentiable ops. out must be a fresh leaf tensor.
func Record(out *Tensor, name string, inputs []*Tensor, backward BackwardFunc) *Tensor {
	return record(out, name, inputs, backward)
}

// needGrad reports whether an op on ts would be recorded. Ops test it before
// building their backward closure, so inference allocates nothing for autograd.
func needGrad(ts ...*Tensor) bool {
	if noGradDepth.Load() != 0 {
		return false
	}
	for _, t := range ts {
		if t != nil && t.requiresGrad {
			return true
		}
	}
	return false
}

func record(out *Tensor, name string, inputs []*Tensor, backward BackwardFunc) *Tensor {
	if noGradDepth.Load() != 0 {
		return out
	}
	need := false
	for _, in := range inputs {
		if in != nil && in.requiresGrad {
			need = true
			break
		}
	}
	if !need {
		return out
	}
	out.requiresGrad = true
	out.fn = &node{name: name, inputs: inputs, backward: backward}
	return out
}

// Backward computes the gradient of the scalar t with respect to every leaf
// that requires grad and adds it to that leaf's Grad (gradients accumulate
// across calls until [Tensor.ZeroGrad]). The graph is released afterwards, so
// Backward can run once per forward pass.
func (t *Tensor) Backward() {
	if len(t.data) != 1 {
		shapeErr("Backward", "gradient can be implicitly created only for a scalar", t.shape)
	}
	t.BackwardWith(Ones(t.shape...))
}

// BackwardWith is Backward for a non-scalar t, seeded with the gradient g of
// some scalar with respect to t (torch's t.backward(g)).
func (t *Tensor) BackwardWith(g *Tensor) {
	if !sameShape(g.shape, t.shape) {
		shapeErr("Backward", "seed gradient shape differs", t.shape, g.shape)
	}
	if !t.requiresGrad {
		panic("nn: Backward on a tensor that does not require grad and has no grad_fn")
	}
	if t.fn == nil {
		accumulate(t, g.data)
		return
	}
	if t.fn.backward == nil {
		panic("nn: trying to backward through the graph a second time (the graph is released by Backward)")
	}
	// Topological order by iterative depth-first search over non-leaf tensors.
	var order []*Tensor
	visited := map[*Tensor]bool{}
	type frame struct {
		t *Tensor
		i int
	}
	stack := []frame{{t, 0}}
	visited[t] = true
	for len(stack) > 0 {
		f := &stack[len(stack)-1]
		if f.i < len(f.t.fn.inputs) {
			in := f.t.fn.inputs[f.i]
			f.i++
			if in != nil && in.fn != nil && !visited[in] {
				visited[in] = true
				stack = append(stack, frame{in, 0})
			}
			continue
		}
		order = append(order, f.t)
		stack = stack[:len(stack)-1]
	}
	grads := map[*Tensor][]float32{t: append([]float32(nil), g.data...)}
	for i := len(order) - 1; i >= 0; i-- {
		u := order[i]
		gu := grads[u]
		delete(grads, u)
		fn := u.fn
		if gu == nil {
			continue
		}
		if fn.backward == nil {
			panic(fmt.Sprintf("nn: backward through %s, whose graph was already released by an earlier Backward", fn.name))
		}
		ins := fn.backward(gu)
		if len(ins) != len(fn.inputs) {
			panic(fmt.Sprintf("nn: backward of %s returned %d gradients for %d inputs", fn.name, len(ins), len(fn.inputs)))
		}
		for j, in := range fn.inputs {
			gi := ins[j]
			if in == nil || gi == nil || !in.requiresGrad {
				continue
			}
			if len(gi) != len(in.data) {
				panic(fmt.Sprintf("nn: backward of %s returned %d gradient values for an input of %d", fn.name, len(gi), len(in.data)))
			}
			if in.fn == nil {
				accumulate(in, gi)
				continue
			}
			if acc, ok := grads[in]; ok {
				addTo(acc, gi)
			} else {
				// Own a copy: backward functions may return views of their grad.
				grads[in] = append([]float32(nil), gi...)
			}
		}
	}
	// Release the graph so activations can be collected; the nodes stay as
	// markers, so a second Backward through them fails loudly.
	for _, u := range order {
		u.fn.inputs, u.fn.backward = nil, nil
	}
}

func accumulate(leaf *Tensor, g []float32) {
	if leaf.grad == nil {
		leaf.grad = &Tensor{data: append([]float32(nil), g...), shape: append([]int(nil), leaf.shape...)}
		return
	}
	addTo(leaf.grad.data, g)
}

func addTo(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] += v
	}
}
