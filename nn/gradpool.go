package nn

import (
	"slices"
	"sync"
	"unsafe"
)

// gradPool recycles the memory of gradients within and across backward
// passes. A gradient that flows into a non-leaf tensor lives only until
// that tensor's backward function has read it; Backward then hands the
// buffer back here, and the next backward function that asks for that many
// floats gets it instead of fresh memory, which the operating system would
// otherwise fault in page by page. Buffers are kept by exact length: a
// network asks for the same few sizes (its activation shapes) again and
// again. At most gradPoolMax floats are kept, and only while a Backward
// runs: the last one to finish empties the pool, since memory kept between
// steps would count as live to the garbage collector and raise the heap's
// target (and the peak) by twice as much.
//
// A Backward through a [TrainArena] step's graph also lends gradients the step's
// own arena memory: as each node's backward function returns, the buffer
// holding that node's result is dead (every op that read it has been
// through Backward already), so it goes to the arena's free list, and the
// gradients asked for later take those buffers before any fresh memory.
// The activations of the forward pass thus become the gradients of the
// backward one, as in torch, where freed activations go back to the
// caching allocator; the step's memory is the arena's, reused from step to
// step with no zeroing and no garbage.
var gradPool = struct {
	sync.Mutex
	free    map[int][][]float32
	kept    int
	running int // Backward calls in progress

	// arenas are the TrainArena arenas of the Backward calls in progress.
	// Gradients come from one only while its Backward is the only one
	// running; buffers given back go to whichever owns them.
	arenas []*arena
}{free: map[int][][]float32{}}

// gradPoolEnter and gradPoolExit bracket a Backward call; a is the
// TrainArena arena of the graph, or nil.
func gradPoolEnter(a *arena) {
	gradPool.Lock()
	gradPool.running++
	if a != nil {
		if !a.sparesIn {
			// The step's first Backward: the spare gradient buffers of
			// earlier steps join the free list, after the forward pass's.
			a.sparesIn, a.fwd, a.fwdN = true, a.next, 0
			for _, b := range a.bufs[:a.next] {
				a.fwdN += cap(b)
			}
			a.bufs = append(a.bufs[:a.next], a.spares...)
			for i := a.next; i < len(a.bufs); i++ {
				a.freeIndex(i)
			}
			a.next = len(a.bufs)
		}
		if a.start == nil {
			a.start = make(map[*float32]int, a.next)
			for i, b := range a.bufs[:a.next] {
				if cap(b) > 0 {
					a.start[unsafe.SliceData(b[:1])] = i
				}
			}
		}
		gradPool.arenas = append(gradPool.arenas, a)
	}
	gradPool.Unlock()
}

func gradPoolExit(a *arena) {
	gradPool.Lock()
	if a != nil {
		if i := slices.Index(gradPool.arenas, a); i >= 0 {
			gradPool.arenas = slices.Delete(gradPool.arenas, i, i+1)
		}
		if !slices.Contains(gradPool.arenas, a) {
			a.start = nil
		}
	}
	if gradPool.running--; gradPool.running == 0 {
		clear(gradPool.free)
		gradPool.kept = 0
	}
	gradPool.Unlock()
}

// giveBack returns b to the free list of the running TrainArena arena
// whose buffer it starts, reporting whether there was one. The caller
// holds gradPool's lock.
func giveBack(b []float32) bool {
	if cap(b) == 0 {
		return false
	}
	p := unsafe.SliceData(b[:1])
	for _, a := range gradPool.arenas {
		if i, ok := a.start[p]; ok {
			// Only the whole of what gradBuf lent: a part of it (a
			// prefix has the same start) may be all that is dead.
			if n, lent := a.lent[i]; lent && n == len(b) && a.freeIndex(i) {
				delete(a.lent, i)
			}
			return true
		}
	}
	return false
}

// lend records that gradBuf gave n floats of a's buffer i to a gradient.
// The caller holds gradPool's lock.
func (a *arena) lend(i, n int) {
	if a.lent == nil {
		a.lent = map[int]int{}
	}
	a.lent[i] = n
}

// releaseResult gives the arena buffer of fn's result back for later
// gradients: fn's backward function has returned, and every op that read
// the result has been through Backward before it. Small results (the
// loss) stay readable after Backward.
func releaseResult(fn *node) {
	if fn.buf == 0 || fn.arena == nil || cap(fn.arena.bufs[fn.buf-1]) < minReleased {
		return
	}
	gradPool.Lock()
	if slices.Contains(gradPool.arenas, fn.arena) {
		fn.arena.freeIndex(int(fn.buf - 1))
	}
	gradPool.Unlock()
}

// minReleased is the smallest result, in floats, that Backward gives back
// to a TrainArena arena: smaller ones are cheap to leave alone.
const minReleased = 1024

// arenaOwned reports whether g lies in the memory of a running TrainArena
// arena, which must not become a leaf's gradient: the next step's forward
// pass writes over it.
func arenaOwned(g []float32) bool {
	gradPool.Lock()
	defer gradPool.Unlock()
	for _, a := range gradPool.arenas {
		if a.owns(g) {
			return true
		}
	}
	return false
}

// gradPoolMax bounds the floats gradPool keeps (128 MiB): the gradients
// alive at once in a backward pass are a few activations' worth.
const gradPoolMax = 1 << 25

// gradBuf returns n floats for a gradient, zeroed when zero is set; from
// gradPool when it has a buffer of that length.
func gradBuf(n int, zero bool) []float32 {
	gradPool.Lock()
	if n >= minReleased && len(gradPool.arenas) == 1 && gradPool.running == 1 {
		a := gradPool.arenas[0]
		if b := a.reuse(n); b != nil {
			a.lend(a.last, n)
			gradPool.Unlock()
			if zero {
				clear(b)
			}
			return b
		}
		if a.spareN+n <= a.fwdN {
			// None is free yet: a new spare, kept for the next steps.
			b := a.newBuf(n)
			a.spares = append(a.spares, b)
			a.spareN += n
			a.bufs = append(a.bufs, b)
			a.next = len(a.bufs)
			a.start[unsafe.SliceData(b)] = a.next - 1
			a.lend(a.next-1, n)
			gradPool.Unlock()
			return b
		}
	}
	if l := gradPool.free[n]; len(l) > 0 {
		b := l[len(l)-1]
		l[len(l)-1] = nil
		gradPool.free[n] = l[:len(l)-1]
		gradPool.kept -= n
		gradPool.Unlock()
		if zero {
			clear(b)
		}
		return b
	}
	gradPool.Unlock()
	return make([]float32, n)
}

// putGradBuf gives b, which no one will read or write again, to gradPool.
func putGradBuf(b []float32) {
	n := len(b)
	gradPool.Lock()
	if len(gradPool.arenas) > 0 && giveBack(b) {
		gradPool.Unlock()
		return
	}
	if n < 1024 || cap(b) != n { // small ones are cheap; views are not whole buffers
		gradPool.Unlock()
		return
	}
	if gradPool.running > 0 && gradPool.kept+n <= gradPoolMax {
		gradPool.free[n] = append(gradPool.free[n], b)
		gradPool.kept += n
	}
	gradPool.Unlock()
}
