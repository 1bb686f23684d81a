package nn

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/tensor"
)

// block and net mirror the Block and Net classes of testdata/gen/nn_layers.py.
type block struct {
	Base
	Conv1      *Conv2d
	BN1        *BatchNorm2d
	Relu       *ReLU
	Conv2      *Conv2d
	BN2        *BatchNorm2d
	Downsample *Sequential
}

func (b *block) TypeName() string { return "Block" }

func newBlock() *block {
	b := &block{
		Conv1:      NewConv2d(nil, 64, 128, 3, Stride(2), Padding(1), NoBias()),
		BN1:        NewBatchNorm2d(nil, 128),
		Relu:       NewReLU(true),
		Conv2:      NewConv2d(nil, 128, 128, 3, Stride(1), Padding(1), NoBias()),
		BN2:        NewBatchNorm2d(nil, 128),
		Downsample: NewSequential(NewConv2d(nil, 64, 128, 1, Stride(2), NoBias()), NewBatchNorm2d(nil, 128)),
	}
	b.RegisterModule("conv1", &b.Conv1)
	b.RegisterModule("bn1", &b.BN1)
	b.RegisterModule("relu", &b.Relu)
	b.RegisterModule("conv2", &b.Conv2)
	b.RegisterModule("bn2", &b.BN2)
	b.RegisterModule("downsample", &b.Downsample)
	return b
}

func (b *block) Forward(x *Tensor) *Tensor {
	y := b.BN2.Forward(b.Conv2.Forward(b.Relu.Forward(b.BN1.Forward(b.Conv1.Forward(x)))))
	return y.Add(b.Downsample.Forward(x)).ReLU()
}

type testNet struct {
	Base
	Stem       *Sequential
	Blocks     *ModuleList
	DW         *Conv2d
	Act        *Hardswish
	Norm       *LayerNorm
	GN         *GroupNorm
	Pool       *AdaptiveAvgPool2d
	Flat       *Flatten
	Classifier *Sequential
	Empty      *Sequential
}

func (n *testNet) TypeName() string { return "Net" }

func newTestNet() *testNet {
	n := &testNet{
		Stem: NewSequential(NewConv2d(nil, 3, 64, 7, Stride(2), Padding(3), NoBias()),
			NewBatchNorm2d(nil, 64, Eps(1e-3), Momentum(0.01)), NewReLU(true),
			NewMaxPool2d(3, Stride(2), Padding(1))),
		Blocks:     NewModuleList(newBlock()),
		DW:         NewConv2d(nil, 128, 128, 3, Padding(2), Dilation(2), Groups(128)),
		Act:        NewHardswish(false),
		Norm:       NewLayerNorm(nil, []int{128}),
		GN:         NewGroupNorm(nil, 32, 128),
		Pool:       NewAdaptiveAvgPool2d(1, 1),
		Flat:       NewFlatten(1, -1),
		Classifier: NewSequential(NewDropout(0.2, true), NewLinear(nil, 128, 10, true)),
		Empty:      NewSequential(),
	}
	for _, r := range []struct {
		name string
		p    any
	}{{"stem", &n.Stem}, {"blocks", &n.Blocks}, {"dw", &n.DW}, {"act", &n.Act}, {"norm", &n.Norm},
		{"gn", &n.GN}, {"pool", &n.Pool}, {"flatten", &n.Flat}, {"classifier", &n.Classifier}, {"empty", &n.Empty}} {
		n.RegisterModule(r.name, r.p)
	}
	return n
}

func (n *testNet) Forward(x *Tensor) *Tensor {
	x = n.Stem.Forward(x)
	for _, b := range n.Blocks.Children() {
		x = b.Forward(x)
	}
	x = n.GN.Forward(n.Act.Forward(n.DW.Forward(x)))
	return n.Classifier.Forward(n.Flat.Forward(n.Pool.Forward(x)))
}

func TestReprMatchesTorch(t *testing.T) {
	d := loadFixture(t, "../testdata/nn/layers.json")
	net := newTestNet()
	got, want := strings.Split(Repr(net), "\n"), strings.Split(d.Reprs.Net.Repr, "\n")
	for i := 0; i < max(len(got), len(want)); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("line %d: got %q, want %q", i+1, g, w)
		}
	}
	singles := map[string]Module{
		"channel_shuffle":    NewChannelShuffle(2),
		"stochastic_depth":   NewStochasticDepth(0.2, "row"),
		"maxpool_tuple":      NewMaxPool2d(0, KernelSize(3, 3), Stride(2, 1), CeilMode()),
		"adaptive_7":         NewAdaptiveAvgPool2d(7),
		"bn_cumavg":          NewBatchNorm2d(nil, 5, CumulativeAverage(), Eps(1e-3)),
		"bn_nostats":         NewBatchNorm2d(nil, 5, NoAffine(), NoRunningStats()),
		"leaky_inplace":      NewLeakyReLU(0.2, true),
		"relu_inplace":       NewReLU(true),
		"relu6_inplace":      NewReLU6(true),
		"silu_inplace":       NewSiLU(true),
		"hardswish_inplace":  NewHardswish(true),
		"dropout_inplace":    NewDropout(0.2, true),
		"conv_full":          NewConv2d(nil, 3, 3, 3, Stride(1), Padding(2, 2), Dilation(2), Groups(3)),
		"avgpool_s1":         NewAvgPool2d(3, Stride(1), Padding(1), CeilMode(), ExcludePad()),
		"layernorm_noaffine": NewLayerNorm(nil, []int{3, 4}, Eps(1e-6), NoAffine()),
		"groupnorm_noaffine": NewGroupNorm(nil, 4, 8, Eps(1e-6), NoAffine()),
		"modulelist":         NewModuleList(NewReLU(false), NewIdentity()),
		"softmax_neg":        NewSoftmax(-1),
	}
	for name, want := range d.Reprs.Singles {
		m, ok := singles[name]
		if !ok {
			t.Errorf("%s: no Go module for torch repr %q", name, want)
			continue
		}
		var got string
		if s, ok := m.(fmt.Stringer); ok {
			got = s.String()
		}
		if got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
}

func TestNamesMatchTorch(t *testing.T) {
	d := loadFixture(t, "../testdata/nn/layers.json")
	net := newTestNet()
	var params, buffers, modules []string
	for _, p := range net.NamedParameters() {
		params = append(params, p.Name)
	}
	for _, b := range net.NamedBuffers() {
		buffers = append(buffers, b.Name)
	}
	for _, m := range NamedModules(net) {
		modules = append(modules, m.Name)
	}
	sd := net.StateDict()
	for _, c := range []struct {
		what      string
		got, want []string
	}{
		{"state_dict keys", sd.Names(), d.Reprs.Net.StateKeys},
		{"named_parameters", params, d.Reprs.Net.ParamNames},
		{"named_modules", modules, d.Reprs.Net.ModuleNames},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s:\ngot  %q\nwant %q", c.what, c.got, c.want)
		}
	}
	// torch lists num_batches_tracked among buffers; here it is an int64
	// scalar that only the state dict carries.
	var wantBuf []string
	for _, b := range d.Reprs.Net.BufferNames {
		if !strings.HasSuffix(b, "num_batches_tracked") {
			wantBuf = append(wantBuf, b)
		}
	}
	if !reflect.DeepEqual(buffers, wantBuf) {
		t.Errorf("named_buffers:\ngot  %q\nwant %q", buffers, wantBuf)
	}
	for _, n := range sd {
		want := tensor.Float32
		if strings.HasSuffix(n.Name, "num_batches_tracked") {
			want = tensor.Int64
		}
		if n.Tensor.DType != want {
			t.Errorf("%s: got dtype %s, want %s", n.Name, n.Tensor.DType, want)
		}
	}
}

func TestStateDictRoundTrip(t *testing.T) {
	ManualSeed(1)
	a := newTestNet()
	ManualSeed(2)
	b := newTestNet()
	a.Stem.At(1).(*BatchNorm2d).NumBatchesTracked = 1 << 40
	if AllClose(a.DW.Weight, b.DW.Weight, 0, 0) {
		t.Fatal("different seeds gave equal weights")
	}
	r, err := b.LoadStateDict(a.StateDict(), true)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(a.StateDict()); r.Loaded != want {
		t.Errorf("loaded %d, want %d", r.Loaded, want)
	}
	pa, pb := a.NamedParameters(), b.NamedParameters()
	for i := range pa {
		if !AllClose(pa[i].Tensor, pb[i].Tensor, 0, 0) {
			t.Errorf("%s differs after load", pa[i].Name)
		}
	}
	if got := b.Stem.At(1).(*BatchNorm2d).NumBatchesTracked; got != 1<<40 {
		t.Errorf("num_batches_tracked: got %d, want %d", got, int64(1)<<40)
	}
}

func TestLoadReport(t *testing.T) {
	src := newTestNet().StateDict()
	// Rename one key (a typo), drop one, add one, change a shape.
	var sd StateDict
	for _, n := range src {
		switch n.Name {
		case "dw.weight":
			n.Name = "dw.weigth"
		case "norm.bias":
			continue
		case "classifier.1.weight":
			n.Tensor = ToStored(Zeros(5, 128))
		}
		sd = append(sd, n)
	}
	sd = append(sd, Named{Name: "extra.thing", Tensor: ToStored(Zeros(1))})
	sd = append(sd, Named{Name: "gn.weight", Tensor: ToStored(Zeros(128))}) // duplicate is fine: first wins
	dst := newTestNet()
	before := append([]float32(nil), dst.Stem.At(0).(*Conv2d).Weight.Data()...)
	for _, strict := range []bool{true, false} {
		r, err := dst.LoadStateDict(sd, strict)
		var le *LoadError
		if !errors.As(err, &le) {
			t.Fatalf("strict=%v: got error %v, want *LoadError", strict, err)
		}
		if want := []string{"dw.weight", "norm.bias"}; !reflect.DeepEqual(r.Missing, want) {
			t.Errorf("missing: got %q, want %q", r.Missing, want)
		}
		if want := []string{"dw.weigth", "extra.thing"}; !reflect.DeepEqual(r.Unexpected, want) {
			t.Errorf("unexpected: got %q, want %q", r.Unexpected, want)
		}
		if len(r.Mismatched) != 1 || r.Mismatched[0].Key != "classifier.1.weight" {
			t.Errorf("mismatched: got %+v, want classifier.1.weight", r.Mismatched)
		}
		if got := r.Suggestions["dw.weight"]; got != "dw.weigth" {
			t.Errorf("suggestion for dw.weight: got %q, want %q", got, "dw.weigth")
		}
		if _, ok := r.Suggestions["norm.bias"]; ok {
			t.Errorf("norm.bias: got suggestion %q, want none", r.Suggestions["norm.bias"])
		}
		msg := err.Error()
		for _, s := range []string{"size mismatch for classifier.1.weight", "torch.Size([5, 128])", `did you mean "dw.weigth"`} {
			if !strings.Contains(msg, s) {
				t.Errorf("error message lacks %q:\n%s", s, msg)
			}
		}
	}
	if !reflect.DeepEqual(before, dst.Stem.At(0).(*Conv2d).Weight.Data()) {
		t.Error("a failed load modified the module")
	}
	// Non-strict load with only missing/unexpected keys succeeds.
	var partial StateDict
	for _, n := range src {
		if n.Name != "norm.bias" {
			partial = append(partial, n)
		}
	}
	r, err := dst.LoadStateDict(partial, false)
	if err != nil || len(r.Missing) != 1 {
		t.Fatalf("non-strict: got %v, %+v; want success with one missing key", err, r)
	}
}

func TestFreezeAndReplaceHead(t *testing.T) {
	n := newTestNet()
	n.RequiresGrad(false)
	n.Classifier.Set(1, NewLinear(nil, 128, 3, true))
	if got := len(n.TrainableParameters()); got != 2 {
		t.Fatalf("trainable parameters: got %d, want 2", got)
	}
	n.Train()
	x := RandN(2, 3, 32, 32)
	loss := n.Forward(x).Square().Mean(false)
	loss.Backward()
	for _, p := range n.NamedParameters() {
		trainable := strings.HasPrefix(p.Name, "classifier.1.")
		if (p.Tensor.Grad() != nil) != trainable {
			t.Errorf("%s: has grad %v, want %v", p.Name, p.Tensor.Grad() != nil, trainable)
		}
	}
	// Assigning a field re-registers through the pointer.
	n.DW = NewConv2d(nil, 128, 128, 1)
	if got := n.Child("dw").(*Conv2d).KernelSize; got != [2]int{1, 1} {
		t.Errorf("after field assignment child dw has kernel %v, want [1 1]", got)
	}
}

func TestTrainEvalPropagates(t *testing.T) {
	n := newTestNet()
	n.Eval()
	for _, m := range Modules(n) {
		if m.base().Training() {
			t.Errorf("%T still training after Eval", m)
		}
	}
	n.Train()
	count := 0
	Apply(n, func(m Module) {
		count++
		if !m.base().Training() {
			t.Errorf("%T not training after Train", m)
		}
	})
	if want := len(NamedModules(n)); count != want {
		t.Errorf("Apply visited %d modules, want %d", count, want)
	}
}
