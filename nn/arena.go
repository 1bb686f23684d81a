package nn

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Infer runs m.Forward(x) as an inference call: no graph is recorded (it
// runs inside [NoGrad] for the calling goroutine, and the call's tensors
// are marked as inference whichever goroutine computes with them, so
// nothing else's grad mode changes), and the intermediate results
// of the call are drawn from an arena that is kept for the next call instead
// of being left to the garbage collector.
//
// A forward pass allocates every activation afresh; on machines where the
// first touch of new memory is slow (virtual machines, where a page fault
// can cost more than the arithmetic done on the page) that is a large part
// of a small batch's time. Infer's arenas keep their buffers, so repeated
// calls on inputs of one shape reuse the same memory and allocate almost
// nothing. Concurrent calls each get an arena of their own.
//
// The returned tensor never shares memory with the arena: when the model's
// output is an arena buffer it is copied out. The input x is read, not
// written, unless the module itself writes its input. Modules must not keep
// tensors they compute during the call (caches, hooks that store
// activations) past its end: the layers of this package and of nn/models
// keep none. m should be in eval mode; Infer does not switch it.
func Infer(m Module, x *Tensor) *Tensor {
	y, _ := infer(m, x, nil)
	return y
}

// InferInput runs m.Forward(x) as [Infer] does, up to head, one of m's
// Linear layers, and returns head's input as that call computed it: for a
// classifier, the backbone's features at inference speed, with no graph
// recorded and every intermediate result in the call's arena. head itself
// is not run: it returns zeros to whatever follows it in m, so head should
// be the last layer that matters, as a model's classifier is. The result
// is ordinary memory, and applying head to it in training mode trains the
// classifier on a frozen backbone as m.Forward would, without the
// backbone's activations being allocated afresh on every step. It returns
// nil when the call did not reach head with a tensor of the call (head
// not in m, or given an input computed outside nn's ops).
func InferInput(m Module, x *Tensor, head *Linear) *Tensor {
	_, in := infer(m, x, head)
	return in
}

// FrozenBackbone returns m as a module whose Forward computes head's input
// through [InferInput], at inference speed, and applies head to it in the
// caller's grad mode: for a model whose layers before its classifier head
// are all frozen ([Freeze]), the same logits and classifier gradients as
// m.Forward, without the backbone's activations being allocated afresh on
// every training step. Its other methods are m's. Where InferInput does
// not reach head, Forward is m.Forward.
func FrozenBackbone(m Module, head *Linear) Module { return frozenBackbone{m, head} }

type frozenBackbone struct {
	Module
	head *Linear
}

func (f frozenBackbone) Forward(x *Tensor) *Tensor {
	if in := InferInput(f.Module, x, f.head); in != nil {
		return f.head.Forward(in)
	}
	return f.Module.Forward(x)
}

// infer is Infer, and with tap set also InferInput: the input tap was
// given, or nil.
func infer(m Module, x *Tensor, tap *Linear) (y, tapped *Tensor) {
	a, _ := arenas.Get().(*arena)
	if a == nil {
		a = &arena{noGrad: true}
	}
	if pl := m.base().plan; pl != nil {
		a.plan = pl.check(m)
	}
	a.tap = tap
	in := &Tensor{data: x.data, shape: x.shape, arena: a}
	NoGrad(func() { y = m.Forward(in) })
	if y == in {
		y = x
	} else if a.owns(y.data) {
		y = &Tensor{data: append([]float32(nil), y.data...), shape: append([]int(nil), y.shape...)}
	}
	y.arena = nil
	tapped = a.tapped
	a.tap, a.tapped = nil, nil
	a.reset()
	a.plan = nil
	arenas.Put(a)
	return y, tapped
}

// capture keeps a copy of x, the input of the arena's tap (see
// InferInput), and returns zeros of the tap's output shape in its place.
func (a *arena) capture(x *Tensor, out int) *Tensor {
	if a.tapped == nil {
		a.tapped = &Tensor{data: append([]float32(nil), x.data...), shape: append([]int(nil), x.shape...)}
	}
	shape := append(append([]int(nil), x.shape[:len(x.shape)-1]...), out)
	return newResultData(shape, true, x)
}

// A TrainArena is the memory of a training loop's steps: [TrainArena.Step]
// runs each step's ops on buffers kept from the step before, as [Infer]
// does for inference, so that repeated steps on batches of one shape
// neither fault in fresh pages nor zero new memory nor leave garbage. The
// zero value is ready to use; the memory goes with the TrainArena, so keep
// one per loop, and drop it when the loop ends. Steps of one TrainArena
// must not run concurrently; separate loops each use their own.
type TrainArena struct {
	a *arena
}

// Step runs step(xa), a training step (forward pass, loss, Backward,
// optimizer update) on xa, a tensor with x's data, shape and requires-grad
// flag whose ops draw their results from the arena.
//
// The results of the step's ops are arena memory with a short life:
// Backward gives each one back as soon as every op that read it has been
// through Backward (its own node last), and lends it to the gradients it
// computes after that, so the step's memory is that of its activations
// and not, as otherwise, activations and gradients and the garbage
// collector's headroom over both. Read what is needed from the results,
// such as the logits for an accuracy, before Backward; the loss, a single
// value, stays readable after it. All of the step's results are
// overwritten by the next step. The gradients Backward leaves in
// parameters are ordinary memory, and so is xa's, which is added to x's.
// Grad mode is unchanged: this is not [NoGrad].
func (t *TrainArena) Step(x *Tensor, step func(x *Tensor)) {
	if t.a == nil {
		t.a = newTrainArena()
	}
	a := t.a
	in := &Tensor{data: x.data, shape: x.shape, requiresGrad: x.requiresGrad, arena: a}
	defer a.reset()
	step(in)
	if in.grad != nil {
		accumulate(x, in.grad.data, !a.owns(in.grad.data))
	}
}

// Free gives the arena's memory back to the system now, rather than when
// the TrainArena is collected (off the Go heap, that memory does not prompt
// a collection): a program that trains and then goes on doing other work
// calls it when the loop ends. The TrainArena stays usable; its next Step
// starts from fresh memory. No result of an earlier step may be read after
// Free.
func (t *TrainArena) Free() {
	if t.a == nil {
		return
	}
	if m := t.a.mapped; m != nil {
		for p, b := range m.bufs {
			delete(m.bufs, p)
			unmapFloats(b)
		}
	}
	t.a = nil
}

// TrainStep runs one step as [TrainArena.Step] does, on an arena taken
// from a pool that the garbage collector may empty between calls: for a
// single step, or code that cannot keep a TrainArena. A loop should keep
// its own TrainArena, which is reused for certain.
func TrainStep(x *Tensor, step func(x *Tensor)) {
	t, _ := trainArenas.Get().(*TrainArena)
	if t == nil {
		t = new(TrainArena)
	}
	defer trainArenas.Put(t)
	t.Step(x, step)
}

// trainArenas holds idle TrainStep arenas (TrainArenas).
var trainArenas sync.Pool

// backwardsRunning counts Backward calls in progress: while there is one,
// ops on a training arena's tensors take heap memory (a backward function
// that computes with tensor ops must not hand arena memory to a gradient).
var backwardsRunning atomic.Int32

// arenas holds idle arenas. A sync.Pool lets the garbage collector take
// back arenas no call has used for two cycles.
var arenas sync.Pool

// arena is the memory of one Infer call: the buffers handed out in order,
// kept after the call so that the next call, which usually asks for the
// same sizes in the same order, finds them ready.
type arena struct {
	bufs [][]float32
	next int

	// noGrad marks an inference call's arena: ops on its tensors record
	// no graph (see gradOff).
	noGrad bool

	// plan is the prepared module's folded, packed weights (see Prepare),
	// nil when the module was not prepared.
	plan *plan

	// free holds the indices in bufs of buffers given back during the call
	// ([Release]), reused by later allocations of the same call.
	free []int

	// tap is the Linear whose input an InferInput call keeps, in tapped.
	tap    *Linear
	tapped *Tensor

	// last is the index in bufs of the buffer alloc handed out last.
	last int

	// start maps the first element of each buffer of a training arena to
	// its index, while a Backward of the step runs (see gradPool).
	start map[*float32]int

	// spares are a training arena's gradient buffers, made when Backward
	// found none free and kept for the next steps (spareN floats in all,
	// at most fwdN, the forward pass's). While sparesIn is set (from the
	// step's first Backward to reset) they are bufs[fwd:next], after the
	// forward pass's fwd buffers.
	spares    [][]float32
	spareN    int
	sparesIn  bool
	fwd, fwdN int

	// lent is, for the buffers gradBuf lent to gradients during a
	// Backward, the length it lent (see giveBack).
	lent map[int]int

	// mapped holds a training arena's buffers that live outside the Go
	// heap (see mapFloats), by first element; nil for an inference arena.
	mapped *mappedBufs
}

// mappedBufs are an arena's off-heap buffers. It is apart from the arena
// so that the cleanup that gives them back when the arena is collected
// does not keep the arena alive.
type mappedBufs struct {
	bufs map[*float32][]float32
}

// newTrainArena returns an arena for training steps, whose buffers live
// off the Go heap where the system allows it, given back when the arena
// is collected.
func newTrainArena() *arena {
	a := &arena{mapped: &mappedBufs{bufs: map[*float32][]float32{}}}
	runtime.AddCleanup(a, func(m *mappedBufs) {
		for _, b := range m.bufs {
			unmapFloats(b)
		}
	}, a.mapped)
	return a
}

// newBuf returns n zeroed floats for a new buffer of a: for a training
// arena, off the heap when it can be.
func (a *arena) newBuf(n int) []float32 {
	if a.mapped != nil {
		if b := mapFloats(n); b != nil {
			a.mapped.bufs[unsafe.SliceData(b)] = b
			return b
		}
	}
	return make([]float32, n)
}

// dropBuf gives back b, a buffer a no longer holds.
func (a *arena) dropBuf(b []float32) {
	if a.mapped == nil || cap(b) == 0 {
		return
	}
	p := unsafe.SliceData(b)
	if m, ok := a.mapped.bufs[p]; ok {
		delete(a.mapped.bufs, p)
		unmapFloats(m)
	}
}

// alloc returns n floats of arena memory, zeroed when zero is set.
func (a *arena) alloc(n int, zero bool) []float32 {
	if b := a.reuse(n); b != nil {
		if zero {
			clear(b)
		}
		return b
	}
	a.last = a.next
	if a.next < len(a.bufs) && cap(a.bufs[a.next]) >= n {
		b := a.bufs[a.next][:n]
		a.next++
		if zero {
			clear(b)
		}
		return b
	}
	b := a.newBuf(n)
	if a.next < len(a.bufs) {
		a.dropBuf(a.bufs[a.next])
		a.bufs[a.next] = b // a call of another shape: this slot grows
	} else {
		a.bufs = append(a.bufs, b)
	}
	a.next++
	return b
}

// owns reports whether s lies in one of a's buffers.
func (a *arena) owns(s []float32) bool {
	if cap(s) == 0 {
		return false
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	for _, b := range a.bufs[:a.next] {
		lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		if p >= lo && p < lo+uintptr(cap(b))*4 {
			return true
		}
	}
	return false
}

// reset makes all of a's buffers free again and drops those the last call
// did not use.
func (a *arena) reset() {
	if a.sparesIn {
		// The spares are kept in a.spares, out of the forward pass's way;
		// the other buffers past the first forward pass's (results of a
		// later forward pass in the step) go. A step with several
		// Backward calls interleaves the two.
		for _, b := range a.bufs[a.fwd:a.next] {
			if !slices.ContainsFunc(a.spares, func(s []float32) bool { return unsafe.SliceData(s) == unsafe.SliceData(b) }) {
				a.dropBuf(b)
			}
		}
		a.next, a.sparesIn = a.fwd, false
	} else {
		for _, b := range a.bufs[a.next:] {
			a.dropBuf(b)
		}
	}
	clear(a.bufs[a.next:])
	a.bufs = a.bufs[:a.next]
	a.next = 0
	a.free = a.free[:0]
	clear(a.lent)
}

// NewResult returns a tensor of the given shape for the result of an
// operation on inputs that writes every element of it itself, as nn's own
// ops do: inside an [Infer] call (when an input belongs to one) its memory
// comes from the call's arena, as the last call left it, so that a
// module's hand-written op reuses memory across calls too; otherwise it is
// zeroed heap memory. The result records no graph.
func NewResult(shape []int, inputs ...*Tensor) *Tensor {
	return newResultData(append([]int(nil), shape...), false, inputs...)
}

// newResult returns a tensor of the given shape for the output of an op on
// inputs, zero-filled. Its memory comes from the arena of the first input
// that has one (see [Infer]), otherwise from the heap; the shape slice is
// adopted.
func newResult(shape []int, inputs ...*Tensor) *Tensor {
	return newResultData(shape, true, inputs...)
}

// newResultData is newResult for ops that write every element of their
// output: with zero unset, arena memory is handed out as the last call left
// it.
func newResultData(shape []int, zero bool, inputs ...*Tensor) *Tensor {
	n := numel(shape)
	for _, in := range inputs {
		if in != nil && in.arena != nil && (in.arena.noGrad || backwardsRunning.Load() == 0) {
			a := in.arena
			t := &Tensor{data: a.alloc(n, zero), shape: shape, arena: a}
			if !a.noGrad {
				t.abuf = int32(a.last + 1)
			}
			return t
		}
	}
	return &Tensor{data: make([]float32, n), shape: shape}
}
