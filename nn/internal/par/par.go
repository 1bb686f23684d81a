// Package par runs the tasks of a parallel loop on the calling goroutine
// and a pool of worker goroutines that, after each loop, keep polling for
// the next one for a short while before they park.
//
// Handing work to a parked goroutine means waking an OS thread, and a vCPU
// that has gone idle takes a long time to come back: about 150 µs on the
// 2-vCPU machines this project is measured on, as long as a whole 256³
// matrix product. A network's forward pass is hundreds of short parallel
// loops with a little serial work between them, so with parked helpers the
// second core joins each loop late or not at all. ONNX Runtime's and
// OpenMP's thread pools spin between loops for the same reason.
//
// The pool serves one loop at a time: a Do called while another is running
// (nested inside a task, or from another goroutine) runs its tasks on its
// own goroutine, in order.
package par

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// spinFor is how long an idle worker polls for the next loop before it
// parks (see SetSpin).
var spinFor atomic.Int64

// The default is 500 µs, or the environment's CKPT_SPIN (a Go duration,
// "0" to park at once).
func init() {
	d := 500 * time.Microsecond
	if v, err := time.ParseDuration(os.Getenv("CKPT_SPIN")); err == nil {
		d = v
	}
	SetSpin(d)
}

// SetSpin sets how long an idle worker keeps polling for the next loop
// before it parks; d <= 0 parks at once. Polling costs CPU time on cores
// that would otherwise idle, and makes a loop that follows within d start
// on every core at once.
func SetSpin(d time.Duration) { spinFor.Store(int64(max(d, 0))) }

// A Task is the body of a parallel loop: Run(i) runs task i.
type Task interface{ Run(i int) }

type taskFunc func(int)

func (f taskFunc) Run(i int) { f(i) }

// job is one Run: tasks [0, n) claimed in turn by the goroutines serving
// it. There is one, reused: the pool serves one Run at a time.
type job struct {
	t    Task
	n    int64
	next atomic.Int64 // the next task to claim
	left atomic.Int64 // tasks not finished
	refs atomic.Int64 // workers looking at the job (see worker)

	// The caller, its own tasks done, polls left for a while, then sets
	// waiting and blocks on done, which the task that brings left to 0
	// then signals.
	waiting atomic.Bool
	done    chan struct{}
}

// run claims and runs tasks until none is left.
func (j *job) run() {
	for {
		i := j.next.Add(1) - 1
		if i >= j.n {
			return
		}
		j.t.Run(int(i))
		if j.left.Add(-1) == 0 && j.waiting.Load() {
			select {
			case j.done <- struct{}{}:
			default:
			}
		}
	}
}

// wait returns when every task has returned.
func (j *job) wait() {
	deadline := time.Now().Add(callerPoll)
	for k := 0; j.left.Load() != 0; k++ {
		if k&63 != 63 {
			continue
		}
		if time.Now().After(deadline) {
			// A signal can be stale: sent for an earlier job by a task
			// that saw waiting set just before that job's caller, finding
			// left at 0, cleared it. So a signal only means "look again".
			j.waiting.Store(true)
			for j.left.Load() != 0 {
				<-j.done
			}
			j.waiting.Store(false)
			return
		}
		runtime.Gosched()
	}
}

// callerPoll is how long Run's caller polls for the other goroutines'
// tasks to finish before it blocks: a task of a descheduled worker (the
// machine oversubscribed) can take a time slice to finish, which polling
// would spend taking CPU time from it.
const callerPoll = 50 * time.Microsecond

var (
	busy     atomic.Bool                         // a Run is being served
	theJob   = job{done: make(chan struct{}, 1)} // its job
	current  atomic.Pointer[job]                 // &theJob while served, else nil
	gen      atomic.Uint64                       // bumped for every job published
	sleeping atomic.Int32                        // workers parked, or about to be
	wake     = make(chan struct{}, 1024)

	startMu sync.Mutex   // serialises starting workers
	started atomic.Int32 // workers started so far
)

// Do calls f(i) for every i in [0, n), as Run does.
func Do(n int, f func(i int)) { Run(n, taskFunc(f)) }

// Run calls t.Run(i) for every i in [0, n), each exactly once, on the
// calling goroutine and up to GOMAXPROCS-1 workers, and returns when all
// calls have returned. The caller runs task 0 first and then claims the
// others along with the workers, so a task is never left waiting for a
// worker that is slow to start; a task must not wait for another to start.
// A panic in a task on a worker goroutine crashes the program, as in any
// goroutine. Run does not allocate.
func Run(n int, t Task) {
	if n <= 0 {
		return
	}
	p := runtime.GOMAXPROCS(0)
	if n == 1 || p == 1 || !busy.CompareAndSwap(false, true) {
		for i := range n {
			t.Run(i)
		}
		return
	}
	ensureWorkers(min(p, n) - 1)
	j := &theJob
	WaitZero(&j.refs) // no worker still looks at the last job
	j.t, j.n = t, int64(n)
	j.next.Store(1) // task 0 is the caller's
	j.left.Store(int64(n))
	current.Store(j)
	gen.Add(1)
	if s := sleeping.Load(); s > 0 {
		for range s {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}
	defer func() { // also when a task panics on this goroutine
		current.Store(nil)
		busy.Store(false)
	}()
	t.Run(0)
	j.left.Add(-1)
	j.run()
	j.wait()
	j.t = nil // every task has returned: let go of its memory
}

// WaitZero returns when *c is 0, for work that other tasks of the same
// Run are finishing: it polls for callerPoll, yielding the processor now
// and then, and then sleeps between polls.
func WaitZero(c *atomic.Int64) {
	deadline := time.Now().Add(callerPoll)
	for k := 0; c.Load() != 0; k++ {
		if k&63 != 63 {
			continue
		}
		if time.Now().After(deadline) {
			time.Sleep(callerPoll)
		} else {
			runtime.Gosched()
		}
	}
}

// ensureWorkers starts workers until there are at least n.
func ensureWorkers(n int) {
	if int(started.Load()) >= n {
		return
	}
	startMu.Lock()
	defer startMu.Unlock()
	for int(started.Load()) < n {
		started.Add(1)
		go worker()
	}
}

func worker() {
	seen := gen.Load()
	for {
		g := gen.Load()
		if g == seen {
			idle(seen)
			continue
		}
		seen = g
		j := current.Load()
		if j == nil {
			continue
		}
		// refs keeps Run from rewriting the job while this worker reads
		// it; a job published again since the Load is the current one,
		// and as good.
		j.refs.Add(1)
		if current.Load() == j {
			j.run()
		}
		j.refs.Add(-1)
	}
}

// Polling only pays while this process has the cores to itself. When the
// machine is oversubscribed, a polling worker takes CPU time from the
// goroutine it waits for (or from other programs), and the OS deschedules
// it now and then. A gap of preemptGap between two polls is taken as that
// sign: the worker parks at once, and no worker polls for calmFor.
const (
	preemptGap = 50 * time.Microsecond
	calmFor    = 100 * time.Millisecond
)

// contendedUntil is the UnixNano time before which idle workers park
// without polling.
var contendedUntil atomic.Int64

// idle polls until a job newer than seen is published or spinFor has
// passed, then parks until woken.
func idle(seen uint64) {
	now := time.Now()
	if now.UnixNano() >= contendedUntil.Load() {
		deadline := now.Add(time.Duration(spinFor.Load()))
		last := now
		for k := 0; ; k++ {
			if gen.Load() != seen {
				return
			}
			if k&63 != 63 {
				continue
			}
			now := time.Now()
			if now.Sub(last) > preemptGap {
				contendedUntil.Store(now.Add(calmFor).UnixNano())
				break
			}
			if now.After(deadline) {
				break
			}
			runtime.Gosched() // let any other goroutine have this P
			last = time.Now()
		}
	}
	sleeping.Add(1)
	defer sleeping.Add(-1)
	if gen.Load() != seen { // published after the last poll
		return
	}
	<-wake
}
