package nn

// ParallelFor runs f over [0, n) split into one contiguous range per CPU
// (GOMAXPROCS) when work, the number of inner-loop iterations of the whole
// range, is large enough to pay for the goroutines (1<<15), else in one
// call; the first range runs on the calling goroutine. It is the helper
// nn's own elementwise passes use, for layers built outside the package
// (nn/models' residual adds and in-place activations).
func ParallelFor(n, work int, f func(lo, hi int)) { parallelFor(n, work, f) }
