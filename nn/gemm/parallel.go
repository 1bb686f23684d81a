package gemm

import (
	"runtime"
	"sync/atomic"

	"github.com/ckptkit/ckpt/nn/internal/par"
)

// threadSetting is the value given to SetThreads; 0 means GOMAXPROCS.
var threadSetting atomic.Int64

// SetThreads sets the number of goroutines a large Sgemm is split over.
// n <= 0 restores the default, runtime.GOMAXPROCS(0) at the time of each call.
func SetThreads(n int) {
	if n < 0 {
		n = 0
	}
	threadSetting.Store(int64(n))
}

// Threads reports the number of goroutines a large Sgemm is split over.
func Threads() int {
	if n := threadSetting.Load(); n > 0 {
		return int(n)
	}
	return runtime.GOMAXPROCS(0)
}

// parallelMinWork is the smallest m*n*k split over several goroutines:
// below it the hand-off to a worker costs more than it saves.
const parallelMinWork = 160 * 160 * 160

// chunksPerThread is how many strips each goroutine gets on average. More
// strips balance better when a core is shared with other work, but every
// strip packs the whole of the operand that is not split.
var chunksPerThread = 1

// maxFree bounds the workspaces and call records kept for reuse.
const maxFree = 32

var (
	freeWS    = make(chan *workspace, maxFree)
	freeCalls = make(chan *call, maxFree)
)

// call is one parallel Sgemm: C split into chunks, strips along m or n,
// that the goroutines par.Run runs it on claim in turn until none is left,
// so a goroutine that starts late (or a core busy with other work) simply
// does fewer chunks. Calls are recycled through freeCalls.
type call struct {
	p      params
	kn     *kernel
	splitN bool
	unit   int // chunk boundaries are multiples of unit (mr or nr)
	units  int // ceil(size of the split dimension / unit)
	chunks int
	next   atomic.Int64

	// With shared set, op(B) is packed once, whole, into bAll by all
	// goroutines together (packUnits panels claimed through packNext, in
	// groups of packGroup), before any strip of rows is computed from it.
	shared    bool
	bAll      []float32
	packUnits int
	packNext  atomic.Int64
	packLeft  atomic.Int64 // panels not yet packed
}

// packGroup is how many B panels a goroutine claims at a time.
const packGroup = 4

// maxSharedB bounds, in floats, the op(B) packed whole for a parallel call
// (8 MiB, enough for 1024×2048); larger products pack B per goroutine.
const maxSharedB = 2 << 20

// Run is one goroutine's share of the call (par.Task): chunks until none
// is left, with a workspace of its own.
func (c *call) Run(int) {
	w := getWS()
	c.work(w)
	putWS(w)
}

// work claims and computes chunks with w's buffers until none is left.
func (c *call) work(w *workspace) {
	size := c.p.m
	if c.splitN {
		size = c.p.n
	}
	if c.shared {
		for {
			u := int(c.packNext.Add(packGroup)) - packGroup
			if u >= c.packUnits {
				break
			}
			u1 := min(u+packGroup, c.packUnits)
			packBAllPanels(c.kn, &c.p, u, u1, c.bAll)
			c.packLeft.Add(int64(u - u1))
		}
		// Wait for the panels others claimed: at most one group each.
		par.WaitZero(&c.packLeft)
	}
	for {
		i := int(c.next.Add(1) - 1)
		if i >= c.chunks {
			return
		}
		lo := c.units * i / c.chunks * c.unit
		hi := min(c.units*(i+1)/c.chunks*c.unit, size)
		switch {
		case c.splitN:
			w.block(c.kn, &c.p, 0, c.p.m, lo, hi)
		case c.shared:
			w.blockPacked(c.kn, &c.p, lo, hi, c.bAll)
		default:
			w.block(c.kn, &c.p, lo, hi, 0, c.p.n)
		}
	}
}

func getWS() *workspace {
	select {
	case w := <-freeWS:
		return w
	default:
		return new(workspace)
	}
}

func putWS(w *workspace) {
	select {
	case freeWS <- w:
	default:
	}
}

// run computes p with kernel kn over at most threads goroutines, the caller
// included.
func run(kn *kernel, p *params, threads int) {
	if p.m == 0 || p.n == 0 {
		return
	}
	if p.k == 0 || p.alpha == 0 {
		scaleC(p)
		if p.epi != nil {
			p.epi(0, p.m, 0, p.n)
		}
		return
	}
	work := p.m * p.n * p.k
	if threads > 1 && work >= parallelMinWork {
		runParallel(kn, p, threads)
		return
	}
	w := getWS()
	w.block(kn, p, 0, p.m, 0, p.n)
	putWS(w)
}

// runParallel splits C into strips along n or m, whichever gives every
// goroutine whole micro-tiles and the least redundant packing: splitting n
// makes each goroutine pack all of op(A). Splitting m would make each pack
// all of op(B), so when op(B) is small enough the goroutines first pack it
// once together, then share it.
func runParallel(kn *kernel, p *params, threads int) {
	splitN := p.n >= 2*p.m || p.m < threads*kn.mr
	if p.n < threads*kn.nr {
		splitN = false
	}
	size, unit := p.m, kn.mr
	if splitN {
		size, unit = p.n, kn.nr
	}
	units := (size + unit - 1) / unit
	t := min(threads, units)
	if t < 2 {
		w := getWS()
		w.block(kn, p, 0, p.m, 0, p.n)
		putWS(w)
		return
	}
	var c *call
	select {
	case c = <-freeCalls:
	default:
		c = new(call)
	}
	c.p, c.kn, c.splitN, c.unit, c.units = *p, kn, splitN, unit, units
	c.chunks = min(units, t*chunksPerThread)
	c.next.Store(0)
	np := (p.n + kn.nr - 1) / kn.nr
	c.shared = !splitN && p.k*np*kn.nr <= maxSharedB
	if c.shared {
		if need := p.k * np * kn.nr; cap(c.bAll) < need {
			c.bAll = make([]float32, need)
		}
		c.bAll = c.bAll[:cap(c.bAll)]
		c.packUnits = (p.k + kn.kc - 1) / kn.kc * np
		c.packNext.Store(0)
		c.packLeft.Store(int64(c.packUnits))
	}
	par.Run(t, c)
	c.p, c.kn = params{}, nil
	select {
	case freeCalls <- c:
	default:
	}
}
