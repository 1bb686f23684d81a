package nn

import (
	"slices"
	"unsafe"
)

// InferCall runs f as an inference call of m, as [Infer] runs m.Forward(x)
// for a module of one input: f gets ins as tensors of the call (ops on them
// record no graph, draw their results from an arena kept for the next
// call, and use m's folded, packed weights when m was [Prepare]d), and
// every tensor f returns that lives in the arena is copied out of it. It is
// for modules with several inputs or outputs, such as an imported graph.
//
// When one of ins already belongs to an inference call (m runs inside
// another module's Infer), f runs in that call: InferCall returns f(ins).
// Results that are one of ins are returned as the caller's tensor. Nil
// entries of ins are passed as nil.
func InferCall(m Module, ins []*Tensor, f func(ins []*Tensor) []*Tensor) []*Tensor {
	for _, x := range ins {
		if x != nil && x.arena != nil && x.arena.noGrad {
			return f(ins)
		}
	}
	a, _ := arenas.Get().(*arena)
	if a == nil {
		a = &arena{noGrad: true}
	}
	if pl := m.base().plan; pl != nil {
		a.plan = pl.check(m)
	}
	wrapped := make([]*Tensor, len(ins))
	for k, x := range ins {
		if x != nil {
			wrapped[k] = &Tensor{data: x.data, shape: x.shape, arena: a}
		}
	}
	var outs []*Tensor
	NoGrad(func() { outs = f(wrapped) })
	res := make([]*Tensor, len(outs))
	for k, y := range outs {
		switch {
		case y == nil:
		case indexOf(wrapped, y) >= 0:
			res[k] = ins[indexOf(wrapped, y)]
		case a.owns(y.data):
			res[k] = &Tensor{data: append([]float32(nil), y.data...), shape: append([]int(nil), y.shape...)}
		default:
			y.arena = nil
			res[k] = y
		}
	}
	a.reset()
	a.plan = nil
	arenas.Put(a)
	return res
}

func indexOf(ts []*Tensor, t *Tensor) int {
	for k, e := range ts {
		if e == t {
			return k
		}
	}
	return -1
}

// Release gives t's memory back to the inference call ([Infer],
// [InferCall]) whose result it is, for later results of the same call: an
// executor that knows when a value is read for the last time (an imported
// graph's) keeps the call's working set small instead of touching fresh
// memory for every value. The caller guarantees that neither t nor any
// tensor sharing its memory is read afterwards. Release does nothing for a
// tensor that is not a whole result of a running inference call (a
// parameter, heap memory, part of a result, a training arena's tensor:
// see [ReleaseUnsaved]).
func Release(t *Tensor) {
	if t == nil || t.arena == nil || !t.arena.noGrad || cap(t.data) == 0 {
		return
	}
	a, p := t.arena, unsafe.SliceData(t.data)
	for i, b := range a.bufs[:a.next] {
		if unsafe.SliceData(b) == p && cap(b) == cap(t.data) {
			a.freeIndex(i)
			return
		}
	}
}

// freeIndex puts buffer i on a's free list, reporting whether it was not
// there already (a buffer given back twice must not be handed out twice).
func (a *arena) freeIndex(i int) bool {
	if slices.Contains(a.free, i) {
		return false
	}
	a.free = append(a.free, i)
	return true
}

// reuse returns n floats from a buffer given back by Release (the smallest
// that holds them; in a training arena, one at most twice as large), or nil. The calls on inputs of one shape make the same
// requests in the same order, so after the first the buffers fit and
// nothing is allocated.
func (a *arena) reuse(n int) []float32 {
	best := -1
	for k, i := range a.free {
		if c := cap(a.bufs[i]); c >= n && (a.noGrad || c <= 2*n) && (best < 0 || c < cap(a.bufs[a.free[best]])) {
			best = k
		}
	}
	if best < 0 {
		return nil
	}
	i := a.free[best]
	a.free = slices.Delete(a.free, best, best+1)
	a.last = i
	return a.bufs[i][:n]
}

// ReleaseUnsaved is [Release] for a result that is not read again in the
// forward pass and that no backward function reads either: neither the op
// that made t nor any op that read it kept t for its gradient (a permute,
// an addition, a product by a tensor that needs no gradient keep nothing of
// their operands; a convolution or a Linear keeps its input, not its
// result). In an inference call it is Release; in the forward pass of a
// [TrainArena] step it gives t's memory to later results, so that the
// arena holds the step's live activations, where otherwise it keeps every
// result until Backward reaches it. Elsewhere it does nothing.
func ReleaseUnsaved(t *Tensor) {
	if t != nil && t.arena != nil && !t.arena.noGrad {
		releaseTrain(t)
		return
	}
	Release(t)
}

// releaseTrain is ReleaseUnsaved in a TrainArena step's forward pass: t's buffer
// goes to the arena's free list for later results, and t's node no longer
// names it, so that Backward does not give it back a second time.
func releaseTrain(t *Tensor) {
	if t.abuf == 0 || backwardsRunning.Load() != 0 {
		return
	}
	a, i := t.arena, int(t.abuf-1)
	if i >= a.next || unsafe.SliceData(a.bufs[i]) != unsafe.SliceData(t.data) || !a.freeIndex(i) {
		return
	}
	t.abuf = 0
	if t.fn != nil && t.fn.buf == int32(i+1) {
		t.fn.buf = 0
	}
}
