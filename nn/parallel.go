package nn

import (
	"time"

	"github.com/ckptkit/ckpt/nn/internal/par"
)

// ParallelFor runs f over [0, n) split into one contiguous range per CPU
// (GOMAXPROCS) when work, the number of inner-loop iterations of the whole
// range, is large enough to pay for the goroutines (1<<15), else in one
// call; the first range runs on the calling goroutine. It is the helper
// nn's own elementwise passes use, for layers built outside the package
// (nn/models' residual adds and in-place activations).
func ParallelFor(n, work int, f func(lo, hi int)) { parallelFor(n, work, f) }

// SetSpin sets how long the goroutines that run nn's and nn/gemm's parallel
// loops keep polling for the next loop once one ends, before they park
// (default 500 µs, or the environment variable CKPT_SPIN, a Go duration
// such as "200us" or "0"; d <= 0 parks them at once). A parked goroutine's thread
// takes long to wake on a virtual machine whose vCPU has gone idle (about
// 150 µs measured on a 2-vCPU VM, the time of a 256³ matrix product), so a
// forward pass, hundreds of short loops, keeps every core busy only if they
// poll; ONNX Runtime's and OpenMP's thread pools poll for the same reason
// (ONNX Runtime's session option allow_spinning). Polling backs off by
// itself when the OS deschedules a poller (the machine oversubscribed).
// Turn it off to give the idle time to other programs.
func SetSpin(d time.Duration) { par.SetSpin(d) }
