package nn

import (
	"slices"
	"testing"
)

type freezeNet struct {
	Base
	Features *Sequential
	Head     *Linear
}

func newFreezeNet() *freezeNet {
	n := &freezeNet{
		Features: NewSequential(
			NewConv2d(nil, 3, 4, 3, Padding(1)),
			NewBatchNorm2d(nil, 4),
			NewReLU(false),
			NewSequential(NewConv2d(nil, 4, 4, 1), NewBatchNorm2d(nil, 4)),
			NewAdaptiveAvgPool2d(1, 1),
			NewFlatten(1, -1),
		),
		Head: NewLinear(nil, 4, 2, true),
	}
	n.RegisterModule("features", &n.Features)
	n.RegisterModule("head", &n.Head)
	return n
}

func (n *freezeNet) Forward(x *Tensor) *Tensor { return n.Head.Forward(n.Features.Forward(x)) }

func TestFreezeKeepsBatchNormInEval(t *testing.T) {
	ManualSeed(7)
	n := newFreezeNet()
	Freeze(n.Features)
	n.Train() // must not put the frozen BatchNorms back in training mode
	bufs := n.Features.NamedBuffers()
	before := make([][]float32, len(bufs))
	for i, b := range bufs {
		before[i] = slices.Clone(b.Tensor.Data())
	}
	loss := NewCrossEntropyLoss().Forward(n.Forward(RandN(4, 3, 6, 6)), []int{0, 1, 1, 0})
	loss.Backward()
	for i, b := range bufs {
		if !slices.Equal(b.Tensor.Data(), before[i]) {
			t.Errorf("frozen buffer %s changed in a training step", b.Name)
		}
	}
	for _, nm := range NamedModules(n.Features) {
		if nm.Module.Training() {
			t.Errorf("frozen module %q: got training mode after Train, want eval", nm.Name)
		}
	}
	if !n.Training() || !n.Head.Training() {
		t.Errorf("unfrozen modules: got eval mode after Train, want training")
	}
	for _, p := range n.Features.NamedParameters() {
		if p.Tensor.RequiresGrad() || p.Tensor.Grad() != nil {
			t.Errorf("frozen parameter %s: requires grad %v, grad %v; want false, nil", p.Name, p.Tensor.RequiresGrad(), p.Tensor.Grad() != nil)
		}
	}
	for _, p := range n.Head.NamedParameters() {
		if p.Tensor.Grad() == nil {
			t.Errorf("head parameter %s: got no gradient", p.Name)
		}
	}
	if got := len(n.TrainableParameters()); got != 2 {
		t.Errorf("trainable parameters: got %d, want 2", got)
	}

	Unfreeze(n.Features)
	n.Train()
	if !n.Features.Child("1").Training() || Frozen(n.Features) {
		t.Errorf("after Unfreeze and Train: got BatchNorm training %v, frozen %v; want true, false",
			n.Features.Child("1").Training(), Frozen(n.Features))
	}
	if got := len(n.TrainableParameters()); got != 10 {
		t.Errorf("trainable parameters after Unfreeze: got %d, want 10", got)
	}
}

func TestFreezeMatching(t *testing.T) {
	tests := []struct {
		patterns []string
		want     []string
	}{
		{[]string{"features"}, []string{"features"}},
		{[]string{"features.[01]"}, []string{"features.0", "features.1"}},
		{[]string{"features.3.*"}, []string{"features.3.0", "features.3.1"}},
		{[]string{"*"}, []string{"features", "head"}},
		{[]string{"nothing"}, nil},
	}
	for _, tt := range tests {
		n := newFreezeNet()
		got, err := FreezeMatching(n, tt.patterns...)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("FreezeMatching(%q): got %q, want %q", tt.patterns, got, tt.want)
		}
		for _, nm := range NamedModules(n) {
			frozen := false
			for _, w := range tt.want {
				if nm.Name == w || len(nm.Name) > len(w) && nm.Name[:len(w)+1] == w+"." {
					frozen = true
				}
			}
			if Frozen(nm.Module) != frozen {
				t.Errorf("FreezeMatching(%q): module %q frozen %v, want %v", tt.patterns, nm.Name, Frozen(nm.Module), frozen)
			}
		}
	}
	if _, err := FreezeMatching(newFreezeNet(), "["); err == nil {
		t.Errorf("FreezeMatching(\"[\"): got no error for a malformed pattern")
	}
}
