// Package vec holds the elementwise float32 kernels under nn's activations
// and eval-mode BatchNorm: an activation applied to a slice ([Apply],
// [ApplyTo]), the same after a per-slice affine map ([AffineApply], eval
// BatchNorm's scale and shift fused with the activation that follows it),
// scaling ([Scale]) and the exponential ([Exp]).
//
// The activations use torch's formulas, so NaN and infinities come out as
// torch's do: silu(x) = x/(1+e^-x) (silu(-Inf) = NaN, silu(+Inf) = +Inf),
// sigmoid(x) = 1/(1+e^-x) (sigmoid(-Inf) = 0), hardswish(x) =
// x*min(max(x+3, 0), 6)/6, and the clamps keep NaN and the sign of zero
// (relu(NaN) = NaN, relu(-0) = -0). The exponential is within 2 ulps of the
// correctly rounded e^x on float32's normal range, rounds to subnormals and
// 0 below it and to +Inf above about 88.72, and keeps NaN. GELU's erf is an
// approximation (Abramowitz and Stegun 7.1.26) as torch's CPU kernel's is:
// gelu(x) is within 4e-7·|x| of exact, with an error that is absolute, not
// relative, where gelu(x) is small (x below about -3).
//
// On amd64 the kernels are Go assembly (AVX-512F when the CPU has it,
// otherwise AVX2+FMA), chosen at run time with golang.org/x/sys/cpu; on other
// CPUs, and everywhere when built with -tags purego, pure Go is used. The
// assembly fuses multiply-adds, so its results may differ from pure Go's in
// the last bits for SiLU, Sigmoid, Exp and the affine maps (GELU: within
// its error bound); the clamping activations (ReLU, ReLU6, Hardswish,
// Hardsigmoid) agree bit for bit.
//
// The functions do not split work across goroutines: callers do, by handing
// each goroutine its own part of a slice.
package vec
