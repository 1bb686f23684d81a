package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// gradCheck compares every op's backward with central finite differences of
// L = Σ f(x)·R for a fixed random R, with L accumulated in float64.
//
// Tolerances: the forward runs in float32, so each output carries a rounding
// error near 6e-8·|y|; over ≤ a few hundred outputs weighted by R that is
// ≲ 1e-6 in L, which divided by 2·eps (eps = 1e-2) is ≲ 1e-4 in the numerical
// derivative. The central difference's truncation error is eps²/6·|f”'| ≈
// 2e-5·|f”'|. So |analytic − numeric| ≤ 2e-3 + 2e-2·|numeric| leaves a wide
// margin over both, while a wrong backward (a missing term, a transposed
// index) is off by O(1). Inputs of piecewise-linear ops keep more than 2·eps
// away from their kinks, and max-pool inputs are distinct by more than 2·eps,
// so the difference never straddles a kink.
func gradCheck(t *testing.T, f func(in []*Tensor) *Tensor, inputs ...*Tensor) {
	t.Helper()
	const eps = 1e-2
	for _, in := range inputs {
		in.SetRequiresGrad(true)
		in.ZeroGrad()
	}
	y := f(inputs)
	r := rand.New(rand.NewPCG(7, 7))
	R := Zeros(y.shape...)
	for i := range R.data {
		R.data[i] = float32(r.NormFloat64())
	}
	loss := func() float64 {
		var out *Tensor
		NoGrad(func() { out = f(inputs) })
		s := 0.0
		for i, v := range out.data {
			s += float64(v) * float64(R.data[i])
		}
		return s
	}
	y.BackwardWith(R)
	for k, in := range inputs {
		if in.Grad() == nil {
			t.Fatalf("input %d: no gradient", k)
		}
		for i := range in.data {
			orig := in.data[i]
			in.data[i] = orig + eps
			lp := loss()
			in.data[i] = orig - eps
			lm := loss()
			in.data[i] = orig
			num := (lp - lm) / (2 * eps)
			got := float64(in.Grad().data[i])
			if math.Abs(got-num) > 2e-3+2e-2*math.Abs(num) {
				t.Errorf("input %d element %d: got gradient %.6g, want %.6g (finite difference)", k, i, got, num)
				return
			}
		}
	}
}

// randT returns values in [-2, 2) kept at least 0.05 away from the given kinks.
func randT(seed uint64, kinks []float32, shape ...int) *Tensor {
	r := rand.New(rand.NewPCG(seed, 1))
	t := Zeros(shape...)
	for i := range t.data {
	again:
		v := float32(4*r.Float64() - 2)
		for _, k := range kinks {
			if math.Abs(float64(v-k)) < 0.05 {
				goto again
			}
		}
		t.data[i] = v
	}
	return t
}

// distinct returns a shuffle of spaced values, for max pooling.
func distinct(seed uint64, shape ...int) *Tensor {
	t := Zeros(shape...)
	r := rand.New(rand.NewPCG(seed, 2))
	for i, j := range r.Perm(len(t.data)) {
		t.data[i] = float32(j)*0.05 - 1
	}
	return t
}

func posT(seed uint64, shape ...int) *Tensor {
	t := randT(seed, nil, shape...)
	for i, v := range t.data {
		t.data[i] = float32(math.Abs(float64(v))) + 0.5
	}
	return t
}

func TestGradCheck(t *testing.T) {
	u := func(fn func(x *Tensor) *Tensor) func([]*Tensor) *Tensor {
		return func(in []*Tensor) *Tensor { return fn(in[0]) }
	}
	b := func(fn func(x, y *Tensor) *Tensor) func([]*Tensor) *Tensor {
		return func(in []*Tensor) *Tensor { return fn(in[0], in[1]) }
	}
	conv := func(p ConvParams, bias bool) func([]*Tensor) *Tensor {
		return func(in []*Tensor) *Tensor {
			var bb *Tensor
			if bias {
				bb = in[2]
			}
			return Conv2dFn(in[0], in[1], bb, p)
		}
	}
	pp := func(k, s, p, d int, ceil bool) PoolParams {
		return PoolParams{KernelSize: [2]int{k, k}, Stride: [2]int{s, s}, Padding: [2]int{p, p}, Dilation: [2]int{d, d}, CeilMode: ceil}
	}
	cases := []struct {
		name   string
		f      func([]*Tensor) *Tensor
		inputs []*Tensor
	}{
		{"add_bcast", b((*Tensor).Add), []*Tensor{randT(1, nil, 2, 3, 4), randT(2, nil, 3, 1)}},
		{"sub_bcast", b((*Tensor).Sub), []*Tensor{randT(1, nil, 3, 1), randT(2, nil, 2, 3, 4)}},
		{"mul_bcast_both", b((*Tensor).Mul), []*Tensor{randT(1, nil, 2, 1, 4), randT(2, nil, 3, 1)}},
		{"mul_same", b((*Tensor).Mul), []*Tensor{randT(1, nil, 2, 5), randT(2, nil, 2, 5)}},
		{"div_same", b((*Tensor).Div), []*Tensor{randT(1, nil, 2, 5), posT(2, 2, 5)}},
		{"div_bcast", b((*Tensor).Div), []*Tensor{randT(1, nil, 2, 3, 4), posT(2, 4)}},
		{"add_scalar", u(func(x *Tensor) *Tensor { return x.AddScalar(3) }), []*Tensor{randT(1, nil, 4)}},
		{"mul_scalar", u(func(x *Tensor) *Tensor { return x.MulScalar(-2) }), []*Tensor{randT(1, nil, 4)}},
		{"exp", u((*Tensor).Exp), []*Tensor{randT(1, nil, 6)}},
		{"log", u((*Tensor).Log), []*Tensor{posT(1, 6)}},
		{"sqrt", u((*Tensor).Sqrt), []*Tensor{posT(1, 6)}},
		{"square", u((*Tensor).Square), []*Tensor{randT(1, nil, 6)}},
		{"clamp", u(func(x *Tensor) *Tensor { return x.Clamp(-1, 1) }), []*Tensor{randT(1, []float32{-1, 1}, 8)}},
		{"clone", u((*Tensor).Clone), []*Tensor{randT(1, nil, 3)}},
		{"matmul_2d", b((*Tensor).MatMul), []*Tensor{randT(1, nil, 3, 4), randT(2, nil, 4, 5)}},
		{"matmul_batched", b((*Tensor).MatMul), []*Tensor{randT(1, nil, 2, 3, 4), randT(2, nil, 2, 4, 2)}},
		{"matmul_nd_2d", b((*Tensor).MatMul), []*Tensor{randT(1, nil, 2, 3, 4), randT(2, nil, 4, 5)}},
		{"reshape", u(func(x *Tensor) *Tensor { return x.Reshape(4, -1).Square() }), []*Tensor{randT(1, nil, 2, 3, 2)}},
		{"permute", u(func(x *Tensor) *Tensor { return x.Permute(2, 0, 3, 1) }), []*Tensor{randT(1, nil, 2, 3, 4, 2)}},
		{"transpose", u(func(x *Tensor) *Tensor { return x.Transpose(0, 2) }), []*Tensor{randT(1, nil, 2, 3, 4)}},
		{"sum_all", u(func(x *Tensor) *Tensor { return x.Sum(false) }), []*Tensor{randT(1, nil, 2, 3)}},
		{"sum_dims", u(func(x *Tensor) *Tensor { return x.Sum(true, 1, -1) }), []*Tensor{randT(1, nil, 2, 3, 4)}},
		{"mean_dims", u(func(x *Tensor) *Tensor { return x.Mean(false, 0, 2) }), []*Tensor{randT(1, nil, 2, 3, 4)}},
		{"cat", func(in []*Tensor) *Tensor { return Cat(in, 1) }, []*Tensor{randT(1, nil, 2, 2, 3), randT(2, nil, 2, 1, 3), randT(3, nil, 2, 3, 3)}},
		{"narrow", u(func(x *Tensor) *Tensor { return x.Narrow(2, 1, 2) }), []*Tensor{randT(1, nil, 2, 3, 4)}},
		{"chunk", u(func(x *Tensor) *Tensor { c := x.Chunk(2, 1); return c[0].Mul(c[1]) }), []*Tensor{randT(1, nil, 2, 4, 3)}},
		{"channel_shuffle", u(func(x *Tensor) *Tensor { return x.ChannelShuffle(3) }), []*Tensor{randT(1, nil, 2, 6, 2, 2)}},
		{"stochastic_depth", u(func(x *Tensor) *Tensor { ManualSeed(3); return x.StochasticDepth(0.5, "row", true) }), []*Tensor{randT(1, nil, 4, 3)}},
		{"dropout", u(func(x *Tensor) *Tensor { ManualSeed(4); return x.Dropout(0.3, true) }), []*Tensor{randT(1, nil, 10)}},
		{"relu", u((*Tensor).ReLU), []*Tensor{randT(1, []float32{0}, 10)}},
		{"relu6", u((*Tensor).ReLU6), []*Tensor{randT(1, []float32{0}, 10).MulScalar(4).Detach()}},
		{"leaky_relu", u(func(x *Tensor) *Tensor { return x.LeakyReLU(0.1) }), []*Tensor{randT(1, []float32{0}, 10)}},
		{"sigmoid", u((*Tensor).Sigmoid), []*Tensor{randT(1, nil, 10)}},
		{"tanh", u((*Tensor).Tanh), []*Tensor{randT(1, nil, 10)}},
		{"silu", u((*Tensor).SiLU), []*Tensor{randT(1, nil, 10)}},
		{"gelu", u(func(x *Tensor) *Tensor { return x.GELU("none") }), []*Tensor{randT(1, nil, 10)}},
		{"gelu_tanh", u(func(x *Tensor) *Tensor { return x.GELU("tanh") }), []*Tensor{randT(1, nil, 10)}},
		{"hardswish", u((*Tensor).Hardswish), []*Tensor{randT(1, []float32{-0.75, 0.75}, 12).MulScalar(4).Detach()}},
		{"hardsigmoid", u((*Tensor).Hardsigmoid), []*Tensor{randT(1, []float32{-0.75, 0.75}, 12).MulScalar(4).Detach()}},
		{"softmax", u(func(x *Tensor) *Tensor { return x.Softmax(1) }), []*Tensor{randT(1, nil, 2, 4, 3)}},
		{"log_softmax", u(func(x *Tensor) *Tensor { return x.LogSoftmax(-1) }), []*Tensor{randT(1, nil, 2, 5)}},
		{"linear", func(in []*Tensor) *Tensor { return LinearFn(in[0], in[1], in[2]) }, []*Tensor{randT(1, nil, 2, 3, 4), randT(2, nil, 5, 4), randT(3, nil, 5)}},
		{"conv3x3", conv(ConvParams{Padding: [2]int{1, 1}}, true), []*Tensor{randT(1, nil, 2, 3, 5, 5), randT(2, nil, 4, 3, 3, 3), randT(3, nil, 4)}},
		{"conv_stride_dilation", conv(ConvParams{Stride: [2]int{2, 1}, Padding: [2]int{2, 1}, Dilation: [2]int{2, 1}}, false), []*Tensor{randT(1, nil, 1, 2, 7, 6), randT(2, nil, 3, 2, 3, 3)}},
		{"conv_groups", conv(ConvParams{Padding: [2]int{1, 1}, Groups: 2}, true), []*Tensor{randT(1, nil, 2, 4, 4, 4), randT(2, nil, 6, 2, 3, 3), randT(3, nil, 6)}},
		{"conv_depthwise", conv(ConvParams{Stride: [2]int{2, 2}, Padding: [2]int{1, 1}, Groups: 3}, true), []*Tensor{randT(1, nil, 2, 3, 6, 5), randT(2, nil, 3, 1, 3, 3), randT(3, nil, 3)}},
		{"conv_1x1", conv(ConvParams{}, true), []*Tensor{randT(1, nil, 2, 4, 3, 3), randT(2, nil, 5, 4, 1, 1), randT(3, nil, 5)}},
		{"conv_1x1_stride2", conv(ConvParams{Stride: [2]int{2, 2}}, false), []*Tensor{randT(1, nil, 1, 3, 5, 5), randT(2, nil, 2, 3, 1, 1)}},
		{"maxpool", u(func(x *Tensor) *Tensor { return MaxPool2dFn(x, pp(3, 2, 1, 1, false)) }), []*Tensor{distinct(1, 2, 2, 7, 7)}},
		{"maxpool_ceil_dil", u(func(x *Tensor) *Tensor { return MaxPool2dFn(x, pp(2, 2, 1, 2, true)) }), []*Tensor{distinct(1, 1, 2, 6, 7)}},
		{"avgpool_incl", u(func(x *Tensor) *Tensor { return AvgPool2dFn(x, pp(3, 2, 1, 1, true), true) }), []*Tensor{randT(1, nil, 1, 2, 6, 6)}},
		{"avgpool_excl", u(func(x *Tensor) *Tensor { return AvgPool2dFn(x, pp(3, 2, 1, 1, true), false) }), []*Tensor{randT(1, nil, 1, 2, 6, 6)}},
		{"adaptive_avg", u(func(x *Tensor) *Tensor { return AdaptiveAvgPool2dFn(x, 3, 2) }), []*Tensor{randT(1, nil, 2, 2, 7, 5)}},
		{"adaptive_max", u(func(x *Tensor) *Tensor { return AdaptiveMaxPool2dFn(x, 2, 2) }), []*Tensor{distinct(1, 2, 2, 5, 5)}},
		{"batchnorm_train", func(in []*Tensor) *Tensor {
			return BatchNormFn(in[0], nil, nil, in[1], in[2], true, 0.1, 1e-5)
		}, []*Tensor{randT(1, nil, 3, 2, 3, 2), posT(2, 2), randT(3, nil, 2)}},
		{"batchnorm_eval", func(in []*Tensor) *Tensor {
			return BatchNormFn(in[0], New([]float32{0.1, -0.2}, 2), New([]float32{0.5, 2}, 2), in[1], in[2], false, 0.1, 1e-5)
		}, []*Tensor{randT(1, nil, 2, 2, 3, 2), posT(2, 2), randT(3, nil, 2)}},
		{"layernorm", func(in []*Tensor) *Tensor { return LayerNormFn(in[0], []int{3, 4}, in[1], in[2], 1e-5) },
			[]*Tensor{randT(1, nil, 2, 3, 4), randT(2, nil, 3, 4), randT(3, nil, 3, 4)}},
		{"groupnorm", func(in []*Tensor) *Tensor { return GroupNormFn(in[0], 2, in[1], in[2], 1e-5) },
			[]*Tensor{randT(1, nil, 2, 4, 2, 3), randT(2, nil, 4), randT(3, nil, 4)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { gradCheck(t, c.f, c.inputs...) })
	}
}

func TestGradAccumulatesAndDetach(t *testing.T) {
	x := New([]float32{1, 2, 3}, 3).SetRequiresGrad(true)
	for range 2 {
		x.Mul(x).Sum(false).Backward()
	}
	want := []float32{4, 8, 12} // two passes of d(x²)/dx = 2x
	for i, v := range x.Grad().Data() {
		if v != want[i] {
			t.Fatalf("accumulated grad: got %v, want %v", x.Grad().Data(), want)
		}
	}
	x.ZeroGrad()
	d := x.Detach()
	x.Mul(d).Sum(false).Backward()
	if d.RequiresGrad() || x.Grad().Data()[2] != 3 {
		t.Errorf("grad through detached factor: got %v, want [1 2 3]", x.Grad().Data())
	}
	var y *Tensor
	NoGrad(func() { y = x.Mul(x) })
	if y.RequiresGrad() || !y.IsLeaf() {
		t.Errorf("NoGrad recorded a node: requires_grad %v, leaf %v", y.RequiresGrad(), y.IsLeaf())
	}
	// A tensor used twice gets both contributions.
	z := x.Detach().SetRequiresGrad(true)
	s := z.Exp()
	s.Add(s).Sum(false).Backward()
	for i, v := range z.Grad().Data() {
		if want := 2 * s.Data()[i]; math.Abs(float64(v-want)) > 1e-6 {
			t.Errorf("diamond grad %d: got %v, want %v", i, v, want)
		}
	}
}
