package nn

import "sync"

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
var gradPool = struct {
	sync.Mutex
	free    map[int][][]float32
	kept    int
	running int // Backward calls in progress
}{free: map[int][][]float32{}}

// gradPoolEnter and gradPoolExit bracket a Backward call.
func gradPoolEnter() {
	gradPool.Lock()
	gradPool.running++
	gradPool.Unlock()
}

func gradPoolExit() {
	gradPool.Lock()
	if gradPool.running--; gradPool.running == 0 {
		clear(gradPool.free)
		gradPool.kept = 0
	}
	gradPool.Unlock()
}

// gradPoolMax bounds the floats gradPool keeps (128 MiB): the gradients
// alive at once in a backward pass are a few activations' worth.
const gradPoolMax = 1 << 25

// gradBuf returns n floats for a gradient, zeroed when zero is set; from
// gradPool when it has a buffer of that length.
func gradBuf(n int, zero bool) []float32 {
	gradPool.Lock()
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
	if n < 1024 || cap(b) != n { // small ones are cheap; views are not whole buffers
		return
	}
	gradPool.Lock()
	if gradPool.running > 0 && gradPool.kept+n <= gradPoolMax {
		gradPool.free[n] = append(gradPool.free[n], b)
		gradPool.kept += n
	}
	gradPool.Unlock()
}
