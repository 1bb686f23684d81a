package par

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// counts runs Do(n) and returns how many times each task ran.
func counts(n int) []int32 {
	c := make([]int32, n)
	Do(n, func(i int) { atomic.AddInt32(&c[i], 1) })
	return c
}

func TestEveryTaskOnce(t *testing.T) {
	for _, spin := range []time.Duration{0, 500 * time.Microsecond} {
		SetSpin(spin)
		for _, n := range []int{0, 1, 2, 3, 7, 64, 1000} {
			for round := range 50 {
				for i, c := range counts(n) {
					if c != 1 {
						t.Fatalf("spin %v, n=%d, round %d: task %d ran %d times", spin, n, round, i, c)
					}
				}
			}
		}
	}
	SetSpin(500 * time.Microsecond)
}

// TestWorkersJoin checks that a worker, not only the caller, runs tasks
// when GOMAXPROCS allows one: a task that waits for another to start can
// only finish if two run at once.
func TestWorkersJoin(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs GOMAXPROCS >= 2")
	}
	for _, spin := range []time.Duration{0, 500 * time.Microsecond} {
		SetSpin(spin)
		var started atomic.Int32
		ok := atomic.Bool{}
		Do(2, func(i int) {
			started.Add(1)
			deadline := time.Now().Add(5 * time.Second)
			for started.Load() < 2 && time.Now().Before(deadline) {
				runtime.Gosched()
			}
			if started.Load() == 2 {
				ok.Store(true)
			}
		})
		if !ok.Load() {
			t.Errorf("spin %v: the two tasks never ran at the same time", spin)
		}
	}
	SetSpin(500 * time.Microsecond)
}

func TestNestedAndConcurrent(t *testing.T) {
	var total atomic.Int64
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				Do(4, func(i int) {
					Do(3, func(j int) { total.Add(int64(1 + g)) }) // nested: inline
				})
			}
		}()
	}
	wg.Wait()
	if want := int64(100 * 4 * 3 * (1 + 2 + 3 + 4)); total.Load() != want {
		t.Fatalf("total %d, want %d", total.Load(), want)
	}
}

func TestPanicOnCallerReleasesPool(t *testing.T) {
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		Do(2, func(i int) {
			if i == 0 {
				panic("task 0")
			}
		})
	}()
	if busy.Load() {
		t.Fatal("pool still marked busy after a panic on the caller")
	}
	for i, c := range counts(8) {
		if c != 1 {
			t.Fatalf("after the panic: task %d ran %d times", i, c)
		}
	}
}

// TestStaleSignal checks that Run does not return on a completion signal
// left over from an earlier job while a task is still running: the caller
// finishes task 0 late enough to have to wait for task 1, on a worker.
func TestStaleSignal(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs GOMAXPROCS >= 2")
	}
	for range 20 {
		select {
		case theJob.done <- struct{}{}: // what a late signaller leaves behind
		default:
		}
		var finished atomic.Int32
		Do(2, func(i int) {
			if i == 0 {
				time.Sleep(time.Millisecond) // the worker claims task 1 meanwhile
			} else {
				time.Sleep(5 * time.Millisecond)
			}
			finished.Add(1)
		})
		if n := finished.Load(); n != 2 {
			t.Fatalf("Run returned with %d of 2 tasks finished", n)
		}
	}
}
