package gemm

import (
	"runtime"
	"sync"
	"sync/atomic"
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

// maxFree bounds the workspaces and call records kept for reuse.
const maxFree = 32

var (
	freeWS    = make(chan *workspace, maxFree)
	freeCalls = make(chan *call, maxFree)
	jobs      = make(chan *job, 256)

	workersMu sync.Mutex
	workers   int // worker goroutines started so far
)

// call is the per-call record handed to workers; recycled via freeCalls.
type call struct {
	p    params
	jobs []job
	wg   sync.WaitGroup
}

// job is one rectangle of C for one worker.
type job struct {
	kn             *kernel
	p              *params
	i0, i1, j0, j1 int
	wg             *sync.WaitGroup
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

// startWorkers makes sure at least n worker goroutines are running. Each
// owns one workspace for its lifetime.
func startWorkers(n int) {
	workersMu.Lock()
	defer workersMu.Unlock()
	for ; workers < n; workers++ {
		go func() {
			w := new(workspace)
			for j := range jobs {
				w.block(j.kn, j.p, j.i0, j.i1, j.j0, j.j1)
				j.wg.Done()
			}
		}()
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
// makes each goroutine pack all of op(A), splitting m all of op(B).
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
	startWorkers(t - 1)

	var c *call
	select {
	case c = <-freeCalls:
	default:
		c = new(call)
	}
	c.p = *p
	if cap(c.jobs) < t {
		c.jobs = make([]job, t)
	}
	c.jobs = c.jobs[:t]
	for i := range t {
		lo := units * i / t * unit
		hi := min(units*(i+1)/t*unit, size)
		j := &c.jobs[i]
		*j = job{kn: kn, p: &c.p, i0: 0, i1: p.m, j0: 0, j1: p.n, wg: &c.wg}
		if splitN {
			j.j0, j.j1 = lo, hi
		} else {
			j.i0, j.i1 = lo, hi
		}
	}
	c.wg.Add(t - 1)
	for i := 1; i < t; i++ {
		jobs <- &c.jobs[i]
	}
	w := getWS()
	j := &c.jobs[0]
	w.block(kn, &c.p, j.i0, j.i1, j.j0, j.j1)
	putWS(w)
	c.wg.Wait()
	c.p = params{}
	select {
	case freeCalls <- c:
	default:
	}
}
