package nn

import (
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/ckptkit/ckpt/tensor"
)

func stored(t *testing.T, dt tensor.DType, shape []int64, raw []byte) *tensor.Tensor {
	t.Helper()
	st, err := tensor.FromBytes(dt, shape, raw)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestFromStoredDTypes(t *testing.T) {
	le := binary.LittleEndian
	f64 := make([]byte, 16)
	le.PutUint64(f64, math.Float64bits(0.1))
	le.PutUint64(f64[8:], math.Float64bits(-3))
	bf := []byte{0x80, 0x3f, 0x40, 0xc0} // bfloat16 1.0, -3.0
	f16 := []byte{0x00, 0x3c, 0x01, 0x00}
	cases := []struct {
		name string
		st   *tensor.Tensor
		want []float32
	}{
		{"float64", stored(t, tensor.Float64, []int64{2}, f64), []float32{0.1, -3}},
		{"bfloat16", stored(t, tensor.BFloat16, []int64{2, 1}, bf), []float32{1, -3}},
		{"float16_subnormal", stored(t, tensor.Float16, []int64{2}, f16), []float32{1, float32(math.Ldexp(1, -24))}},
		{"float32", ToStored(New([]float32{1.5, 2, -0.25}, 3)), []float32{1.5, 2, -0.25}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := FromStored(c.st)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Data(), c.want) {
				t.Errorf("got %v, want %v", got.Data(), c.want)
			}
			if len(got.Shape()) != len(c.st.Shape) {
				t.Errorf("got shape %v, want %v", got.Shape(), c.st.Shape)
			}
		})
	}
}

func TestLoadStateDictHalf(t *testing.T) {
	l := NewLinear(nil, 2, 1, true)
	w := []byte{0x00, 0x3c, 0x00, 0xc0} // float16 1, -2
	b := []byte{0x00, 0x38}             // float16 0.5
	src := TensorMap{
		"weight": stored(t, tensor.Float16, []int64{1, 2}, w),
		"bias":   stored(t, tensor.Float16, []int64{1}, b),
	}
	if _, err := l.LoadStateDict(src, true); err != nil {
		t.Fatal(err)
	}
	if got, want := append(l.Weight.Data(), l.Bias.Data()...), []float32{1, -2, 0.5}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// An integer tensor cannot fill a float parameter.
	src["bias"] = stored(t, tensor.Int32, []int64{1}, []byte{1, 0, 0, 0})
	r, err := l.LoadStateDict(src, false)
	if err == nil || len(r.Mismatched) != 1 || r.Mismatched[0].GotDType != tensor.Int32 {
		t.Errorf("int32 bias: got %v, %+v; want a dtype mismatch", err, r)
	}
}

func TestBuilder(t *testing.T) {
	full := NewSmallNet().StateDict()
	t.Run("exact", func(t *testing.T) {
		b := NewBuilder(full)
		m := newSmallNetFrom(b)
		if err := b.Err(); err != nil {
			t.Fatal(err)
		}
		if r := b.Report(); r.Loaded != len(full) {
			t.Errorf("loaded %d, want %d", r.Loaded, len(full))
		}
		got := m.StateDict()
		for i := range got {
			a, _ := FromStored(got[i].Tensor)
			w, _ := FromStored(full[i].Tensor)
			if got[i].Name != full[i].Name || !AllClose(a, w, 0, 0) {
				t.Errorf("entry %d: got %s, want %s with equal values", i, got[i].Name, full[i].Name)
			}
		}
	})
	t.Run("problems", func(t *testing.T) {
		var src StateDict
		for _, n := range full {
			switch n.Name {
			case "conv.weight":
				n.Tensor = ToStored(Zeros(4, 3, 1, 1))
			case "bn.running_var":
				n.Name = "bn.runing_var"
			}
			src = append(src, n)
		}
		b := NewBuilder(src)
		m := newSmallNetFrom(b)
		r := b.Report()
		if want := []string{"bn.running_var"}; !reflect.DeepEqual(r.Missing, want) {
			t.Errorf("missing: got %q, want %q", r.Missing, want)
		}
		if want := []string{"bn.runing_var"}; !reflect.DeepEqual(r.Unexpected, want) {
			t.Errorf("unexpected: got %q, want %q", r.Unexpected, want)
		}
		if r.Suggestions["bn.running_var"] != "bn.runing_var" {
			t.Errorf("suggestion: got %q, want %q", r.Suggestions["bn.running_var"], "bn.runing_var")
		}
		if len(r.Mismatched) != 1 || r.Mismatched[0].Key != "conv.weight" {
			t.Errorf("mismatched: got %+v, want conv.weight", r.Mismatched)
		}
		var le *LoadError
		if !errors.As(b.Err(), &le) {
			t.Errorf("Err: got %v, want *LoadError", b.Err())
		}
		// Construction still completes with fresh tensors of the right shape.
		if got := m.Conv.Weight.Shape(); !reflect.DeepEqual(got, []int{4, 3, 3, 3}) {
			t.Errorf("conv weight shape: got %v, want [4 3 3 3]", got)
		}
	})
	t.Run("nil", func(t *testing.T) {
		var b *Builder
		m := newSmallNetFrom(b.Sub("x"))
		if b.Err() != nil || !b.Report().OK() || m.BN.RunningVar.Data()[0] != 1 {
			t.Errorf("nil builder: err %v, running_var %v; want fresh torch defaults", b.Err(), m.BN.RunningVar.Data()[0])
		}
	})
}

type smallNet struct {
	Base
	Conv *Conv2d
	BN   *BatchNorm2d
}

func (s *smallNet) Forward(x *Tensor) *Tensor { return s.BN.Forward(s.Conv.Forward(x)) }

func NewSmallNet() *smallNet { return newSmallNetFrom(nil) }

func newSmallNetFrom(b *Builder) *smallNet {
	s := &smallNet{Conv: NewConv2d(b.Sub("conv"), 3, 4, 3), BN: NewBatchNorm2d(b.Sub("bn"), 4)}
	s.RegisterModule("conv", &s.Conv)
	s.RegisterModule("bn", &s.BN)
	return s
}

func TestBackwardTwicePanics(t *testing.T) {
	x := New([]float32{1, 2}, 2).SetRequiresGrad(true)
	y := x.Exp().Sum(false)
	y.Backward()
	defer func() {
		if recover() == nil {
			t.Error("second Backward: got no panic, want one")
		}
	}()
	y.Backward()
}

func TestShapeErrors(t *testing.T) {
	cases := []struct {
		name string
		f    func()
	}{
		{"add", func() { Zeros(2, 3).Add(Zeros(4)) }},
		{"matmul", func() { Zeros(2, 3).MatMul(Zeros(2, 3)) }},
		{"reshape", func() { Zeros(2, 3).Reshape(4, -1) }},
		{"conv_channels", func() { Conv2dFn(Zeros(1, 3, 4, 4), Zeros(2, 2, 3, 3), nil, ConvParams{}) }},
		{"cat", func() { Cat([]*Tensor{Zeros(2, 3), Zeros(3, 2)}, 0) }},
		{"new", func() { New([]float32{1, 2, 3}, 2, 2) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if _, ok := recover().(*ShapeError); !ok {
					t.Errorf("got no *ShapeError panic, want one")
				}
			}()
			c.f()
		})
	}
}

// TestGroupedConvParallel checks the parallel path for many groups (taken when
// the work is large) against convolving each group on its own.
func TestGroupedConvParallel(t *testing.T) {
	ManualSeed(5)
	const groups = 8
	x := RandN(2, 32, 12, 12)
	w := RandN(48, 4, 3, 3)
	b := RandN(48)
	p := ConvParams{Stride: [2]int{1, 1}, Padding: [2]int{1, 1}, Groups: groups}
	got := Conv2dFn(x, w, b, p)
	var parts []*Tensor
	for g := range groups {
		xs, ws, bs := x.Narrow(1, g*4, 4), w.Narrow(0, g*6, 6), b.Narrow(0, g*6, 6)
		parts = append(parts, Conv2dFn(xs, ws, bs, ConvParams{Padding: [2]int{1, 1}}))
	}
	want := Cat(parts, 1)
	if err := closeTo(got, want, 1e-6, 1e-6); err != nil {
		t.Error(err)
	}
}

func TestGuard(t *testing.T) {
	conv := NewConv2d(nil, 3, 4, 3)
	err := Guard(func() { conv.Forward(Zeros(1, 5, 8, 8)) })
	var se *ShapeError
	if !errors.As(err, &se) || se.Op != "Conv2d" {
		t.Errorf("got %v, want a *ShapeError from Conv2d", err)
	}
	if err := Guard(func() { conv.Forward(Zeros(1, 3, 8, 8)) }); err != nil {
		t.Errorf("valid input: got %v, want nil", err)
	}
}

// TestMaxPoolPaths checks the inference path (no indices) against the
// recording one on the same inputs, NaN included.
func TestMaxPoolPaths(t *testing.T) {
	x := RandN(2, 3, 9, 8)
	x.Data()[17] = float32(math.NaN())
	for _, p := range []PoolParams{
		{KernelSize: [2]int{3, 3}, Stride: [2]int{2, 2}, Padding: [2]int{1, 1}},
		{KernelSize: [2]int{2, 3}, Stride: [2]int{2, 1}, CeilMode: true},
		{KernelSize: [2]int{3, 3}, Stride: [2]int{2, 2}, Padding: [2]int{1, 1}, Dilation: [2]int{2, 2}, CeilMode: true},
	} {
		var fast *Tensor
		NoGrad(func() { fast = MaxPool2dFn(x, p) })
		slow := MaxPool2dFn(x.Detach().SetRequiresGrad(true), p)
		for i, v := range slow.Data() {
			f := fast.Data()[i]
			if f != v && !(f != f && v != v) {
				t.Fatalf("%+v element %d: got %v, want %v", p, i, f, v)
			}
		}
	}
}

func TestFoldBatchNorm(t *testing.T) {
	ManualSeed(9)
	for _, c := range []struct {
		name string
		conv *Conv2d
	}{
		{"plain", NewConv2d(nil, 3, 4, 3, Padding(1), NoBias())},
		{"bias_groups", NewConv2d(nil, 4, 6, 3, Stride(2), Groups(2))},
		{"depthwise", NewConv2d(nil, 4, 4, 3, Padding(1), Groups(4))},
	} {
		t.Run(c.name, func(t *testing.T) {
			bn := NewBatchNorm2d(nil, c.conv.OutChannels, Eps(1e-3))
			copy(bn.RunningMean.Data(), RandN(c.conv.OutChannels).Data())
			copy(bn.RunningVar.Data(), RandU(0.5, 2, c.conv.OutChannels).Data())
			copy(bn.Weight.Data(), RandN(c.conv.OutChannels).Data())
			copy(bn.Bias.Data(), RandN(c.conv.OutChannels).Data())
			bn.Eval()
			f, err := FoldBatchNorm(c.conv, bn)
			if err != nil {
				t.Fatal(err)
			}
			x := RandN(2, c.conv.InChannels, 7, 7)
			var want, got *Tensor
			NoGrad(func() {
				want = bn.Forward(c.conv.Forward(x))
				got = f.Forward(x)
			})
			// Folding reorders one multiplication per product: float32
			// rounding, well inside 1e-5 of the largest output.
			if err := closeTo(got, want, 1e-5, 1e-5); err != nil {
				t.Error(err)
			}
		})
	}
	if _, err := FoldBatchNorm(NewConv2d(nil, 3, 4, 1), NewBatchNorm2d(nil, 5)); err == nil {
		t.Error("mismatched channels: got nil error")
	}
}

// TestParallelEvalPaths checks the parallel inference paths (taken on large
// inputs) of BatchNorm2d and in-place ReLU against the recording paths.
func TestParallelEvalPaths(t *testing.T) {
	ManualSeed(10)
	x := RandN(2, 16, 64, 64)
	bn := NewBatchNorm2d(nil, 16)
	copy(bn.RunningMean.Data(), RandN(16).Data())
	copy(bn.RunningVar.Data(), RandU(0.5, 2, 16).Data())
	copy(bn.Weight.Data(), RandN(16).Data())
	bn.Eval()
	var fast *Tensor
	NoGrad(func() { fast = bn.Forward(x) })
	slow := bn.Forward(x.Detach().SetRequiresGrad(true))
	if err := closeTo(fast, slow, 1e-6, 1e-6); err != nil {
		t.Errorf("batchnorm: %v", err)
	}
	want := slow.ReLU()
	y := slow.Detach()
	NoGrad(func() { y = NewReLU(true).Forward(y) })
	if !AllClose(y, want, 0, 0) {
		t.Error("in-place ReLU differs from ReLU")
	}
	for _, op := range []struct {
		name string
		f    func(a, b *Tensor) *Tensor
		ref  func(a, b float32) float32
	}{
		{"add", (*Tensor).Add, func(a, b float32) float32 { return a + b }},
		{"mul", (*Tensor).Mul, func(a, b float32) float32 { return a * b }},
	} {
		z := op.f(x, slow)
		for i, v := range z.Data() {
			if w := op.ref(x.Data()[i], slow.Data()[i]); v != w {
				t.Fatalf("%s element %d: got %v, want %v", op.name, i, v, w)
			}
		}
	}
}

// TestConcurrentEvalForward runs one eval-mode network from several
// goroutines on distinct inputs (run with -race): the shared column buffer
// must not be used twice at once, and results must equal a serial run.
func TestConcurrentEvalForward(t *testing.T) {
	net := NewSequential(NewConv2d(nil, 3, 8, 3, Padding(1)), NewBatchNorm2d(nil, 8), NewReLU(true),
		NewConv2d(nil, 8, 8, 3, Groups(4), Padding(1)), NewMaxPool2d(2))
	net.Eval()
	const workers = 4
	xs := make([]*Tensor, workers)
	want := make([]*Tensor, workers)
	for i := range xs {
		xs[i] = RandN(1, 3, 16, 16)
		NoGrad(func() { want[i] = net.Forward(xs[i]) })
	}
	got := make([]*Tensor, workers)
	done := make(chan int)
	NoGrad(func() {
		for i := range workers {
			go func() {
				for range 5 {
					got[i] = net.Forward(xs[i])
				}
				done <- i
			}()
		}
		for range workers {
			<-done
		}
	})
	for i := range workers {
		if !AllClose(got[i], want[i], 0, 0) {
			t.Errorf("goroutine %d: result differs from the serial run", i)
		}
	}
}

type valueNet struct {
	Base
	Seq  Sequential
	Head *Linear
}

func (n *valueNet) Forward(x *Tensor) *Tensor { return n.Head.Forward(n.Seq.Forward(x)) }

func TestRegisterModuleByValue(t *testing.T) {
	n := &valueNet{Head: NewLinear(nil, 2, 1, true)}
	n.Seq.Append(NewReLU(false))
	n.RegisterModule("seq", &n.Seq)
	n.RegisterModule("head", &n.Head)
	var names []string
	for _, m := range NamedModules(n) {
		names = append(names, m.Name)
	}
	if want := []string{"", "seq", "seq.0", "head"}; !reflect.DeepEqual(names, want) {
		t.Errorf("got %q, want %q", names, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a non-module: got no panic")
		}
	}()
	x := 3
	n.RegisterModule("bad", &x)
}
