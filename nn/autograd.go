package nn

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// node records the op that produced a non-leaf tensor.
type node struct {
	name     string
	inputs   []edge
	backward BackwardFunc

	// arena and buf (1 + its index in arena.bufs) name the TrainArena
	// arena buffer allocated for the node's result, which Backward gives
	// back once the node is through (see releaseResult); buf is 0 for any
	// other result.
	arena *arena
	buf   int32
}

// edge is one input of a node: the node that produced it, or the leaf
// tensor itself, and its element count. A node holds no non-leaf tensor,
// so an intermediate result that no backward function needs (BatchNorm's
// output, read by the ReLU that follows, which keeps its own) is garbage
// as soon as the forward pass moves on, as in torch.
type edge struct {
	fn   *node
	leaf *Tensor // nil for a non-leaf, or an input that is absent
	n    int
}

// BackwardFunc computes the gradients of an op's inputs from the gradient of
// its output (same length as the output's data). It returns one slice per
// input, in input order, with that input's element count; it may return nil
// for an input that does not require grad (check [Tensor.RequiresGrad]).
// It must not keep or modify grad. A returned slice is either grad itself
// (or part of it), which autograd copies, or memory the function will not
// touch again, which autograd takes over without a copy: it may add other
// gradients into it and keep it as a leaf's Grad.
type BackwardFunc func(grad []float32) [][]float32

// NoGrad runs f with gradient recording turned off for the goroutine that
// calls it: ops that goroutine runs inside f build no graph and keep no
// activations, whatever their inputs require. It is the inference mode of
// this package (torch.no_grad, which is per thread as this is per
// goroutine). Other goroutines are not affected, so an evaluation under
// NoGrad can run beside a training loop; goroutines that f starts are not
// covered either (nn's own parallel loops start none that record ops).
// Calls nest.
func NoGrad(f func()) {
	id := goid()
	noGrad.Lock()
	noGrad.depth[id]++
	noGrad.Unlock()
	noGrad.active.Add(1)
	defer func() {
		noGrad.active.Add(-1)
		noGrad.Lock()
		if noGrad.depth[id]--; noGrad.depth[id] == 0 {
			delete(noGrad.depth, id)
		}
		noGrad.Unlock()
	}()
	f()
}

// noGrad is the grad mode of every goroutine: the goroutines inside NoGrad,
// by goroutine id, with their nesting depth. active counts the NoGrad calls
// in progress, so that while there are none (training, the usual case)
// asking for the mode costs one atomic load.
var noGrad = struct {
	sync.RWMutex
	depth  map[uint64]int32
	active atomic.Int32
}{depth: map[uint64]int32{}}

// GradEnabled reports whether ops run by the calling goroutine record the
// graph: false inside [NoGrad] (and inside [Infer]).
func GradEnabled() bool {
	if noGrad.active.Load() == 0 {
		return true
	}
	id := goid()
	noGrad.RLock()
	d := noGrad.depth[id]
	noGrad.RUnlock()
	return d == 0
}

// goid returns the calling goroutine's id, which runtime.Stack prints first
// ("goroutine 18 [running]:"). It costs about a microsecond and is asked
// only while some goroutine is inside NoGrad.
func goid() uint64 {
	buf, _ := stackBufs.Get().(*[32]byte) // runtime.Stack's buffer escapes: pooled, not allocated per call
	if buf == nil {
		buf = new([32]byte)
	}
	b := buf[:runtime.Stack(buf[:], false)]
	var id uint64
	for _, c := range b[len("goroutine "):] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	stackBufs.Put(buf)
	return id
}

var stackBufs sync.Pool

// gradOff reports whether ops on ts record nothing whatever the tensors
// require: the calling goroutine is in NoGrad, or one of ts belongs to an
// Infer call (whose arena is marked no-grad, so the call is inference
// whichever goroutine runs its ops).
func gradOff(ts ...*Tensor) bool {
	for _, t := range ts {
		if t != nil && t.arena != nil && t.arena.noGrad {
			return true
		}
	}
	return !GradEnabled()
}

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
	need := false
	for _, t := range ts {
		if t != nil && t.requiresGrad {
			need = true
			break
		}
	}
	return need && !gradOff(ts...)
}

func record(out *Tensor, name string, inputs []*Tensor, backward BackwardFunc) *Tensor {
	if !needGrad(inputs...) {
		return out
	}
	out.requiresGrad = true
	es := make([]edge, len(inputs))
	for i, in := range inputs {
		switch {
		case in == nil:
		case in.fn != nil:
			es[i] = edge{fn: in.fn, n: len(in.data)}
		default:
			es[i] = edge{leaf: in, n: len(in.data)}
		}
	}
	out.fn = &node{name: name, inputs: es, backward: backward}
	if out.abuf > 0 {
		out.fn.arena, out.fn.buf = out.arena, out.abuf
	}
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
		accumulate(t, g.data, false)
		return
	}
	if t.fn.backward == nil {
		panic("nn: trying to backward through the graph a second time (the graph is released by Backward)")
	}
	// Topological order by iterative depth-first search over the nodes.
	var order []*node
	visited := map[*node]bool{}
	type frame struct {
		fn *node
		i  int
	}
	stack := []frame{{t.fn, 0}}
	visited[t.fn] = true
	for len(stack) > 0 {
		f := &stack[len(stack)-1]
		if f.i < len(f.fn.inputs) {
			in := f.fn.inputs[f.i].fn
			f.i++
			if in != nil && !visited[in] {
				visited[in] = true
				stack = append(stack, frame{in, 0})
			}
			continue
		}
		order = append(order, f.fn)
		stack = stack[:len(stack)-1]
	}
	var ta *arena // the TrainArena arena of the graph, if any
	for _, fn := range order {
		if fn.arena != nil {
			ta = fn.arena
			break
		}
	}
	gradPoolEnter(ta)
	defer gradPoolExit(ta)
	backwardsRunning.Add(1)
	defer backwardsRunning.Add(-1)
	grads := map[*node][]float32{t.fn: append([]float32(nil), g.data...)}
	for i := len(order) - 1; i >= 0; i-- {
		fn := order[i]
		gu := grads[fn]
		delete(grads, fn)
		if gu == nil {
			continue
		}
		if fn.backward == nil {
			panic(fmt.Sprintf("nn: backward through %s, whose graph was already released by an earlier Backward", fn.name))
		}
		ins := fn.backward(gu)
		guLo := uintptr(unsafe.Pointer(unsafe.SliceData(gu)))
		guHi := guLo + uintptr(cap(gu))*4
		guGiven := false
		if len(ins) != len(fn.inputs) {
			panic(fmt.Sprintf("nn: backward of %s returned %d gradients for %d inputs", fn.name, len(ins), len(fn.inputs)))
		}
		for j, in := range fn.inputs {
			gi := ins[j]
			if gi == nil || (in.fn == nil && (in.leaf == nil || !in.leaf.requiresGrad)) {
				continue
			}
			if len(gi) != in.n {
				panic(fmt.Sprintf("nn: backward of %s returned %d gradient values for an input of %d", fn.name, len(gi), in.n))
			}
			// A view of gu (Clone, View, Add pass theirs on) is copied, as is
			// a slice returned for two inputs; anything else is fresh memory
			// that becomes autograd's.
			p := uintptr(unsafe.Pointer(unsafe.SliceData(gi)))
			own := len(gi) > 0 && (p < guLo || p >= guHi)
			for _, prev := range ins[:j] {
				if len(prev) > 0 && unsafe.SliceData(prev) == unsafe.SliceData(gi) {
					own = false
				}
			}
			if !own && !guGiven && len(gi) == len(gu) && p == guLo {
				// gu passed on whole (Add, a view): gu is autograd's and
				// dead after this node, so its first taker gets it uncopied.
				own, guGiven = true, true
			}
			if in.fn == nil {
				accumulate(in.leaf, gi, own)
				continue
			}
			if acc, ok := grads[in.fn]; ok {
				addTo(acc, gi)
				if own {
					putGradBuf(gi)
				}
			} else if own {
				grads[in.fn] = gi
			} else {
				grads[in.fn] = append(gradBuf(len(gi), false)[:0], gi...)
			}
		}
		// gu was autograd's (the seed's copy, or taken over or copied
		// above) and its last reader has returned; unless passed on whole
		// above, nothing refers to it any more. Its node's activations go too,
		// so the garbage collector can take them during the pass.
		if !guGiven {
			putGradBuf(gu)
		}
		releaseResult(fn)
		fn.inputs, fn.backward = nil, nil
	}
	// Release the rest of the graph (nodes no gradient reached) so
	// activations can be collected; the nodes stay as markers, so a second
	// Backward through them fails loudly.
	for _, fn := range order {
		fn.inputs, fn.backward = nil, nil
	}
}

// accumulate adds g to leaf's gradient; a first gradient that is g itself
// when own is set (autograd's own memory), a copy of g otherwise.
func accumulate(leaf *Tensor, g []float32, own bool) {
	if leaf.grad == nil {
		if own && arenaOwned(g) {
			// A TrainArena's memory: the next step writes over it.
			c := append([]float32(nil), g...)
			putGradBuf(g)
			g = c
		} else if !own {
			g = append([]float32(nil), g...)
		}
		leaf.grad = &Tensor{data: g[:len(g):len(g)], shape: append([]int(nil), leaf.shape...)}
		return
	}
	addTo(leaf.grad.data, g)
	if own {
		putGradBuf(g)
	}
}

func addTo(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] += v
	}
}
