// Package dwconv holds the vector kernels under nn's depthwise convolution:
// a one-dimensional multi-tap filter over a flattened, padded plane ([Taps],
// and [TapRuns], which takes the taps as runs of consecutive offsets), and
// the strided copies that build such planes ([Copy2D], [Deinterleave2D]).
//
// nn lays each input channel out once, zero-padded and split into
// stride-phase planes, so that every tap of the kernel is a constant offset
// from the output position; the convolution of a whole channel is then one
// call to TapRuns, with no bounds tests in the inner loop. The taps of one
// kernel row are such a run: the AVX-512 run kernels load the row's source
// once per vector and shift it in registers for each further tap.
//
// On amd64 the kernels are Go assembly (AVX-512F when the CPU has it,
// otherwise AVX2+FMA, where runs are applied tap by tap), chosen at run time
// with golang.org/x/sys/cpu; on other CPUs, and everywhere when built with
// -tags purego, pure Go is used. Results agree with a float64 sum to float32
// rounding; the order of summation differs between implementations. The
// functions panic when a slice is too short for the geometry they are
// given: the callers are this module's own code, and a short slice is a
// bug.
package dwconv
