package models

import (
	"fmt"
	"regexp"

	"github.com/ckptkit/ckpt/nn"
)

// DenseNet is torchvision.models.DenseNet (densenet121/161/169/201).
type DenseNet struct {
	nn.Base
	// Features holds conv0, norm0, relu0, pool0, the dense blocks and
	// transitions, and norm5, as torch's Sequential(OrderedDict) does.
	Features   nn.Module
	Classifier *nn.Linear
	features   *namedSequential
}

// DenseLayer is torchvision's _DenseLayer: BN-ReLU-1x1 conv, BN-ReLU-3x3 conv
// over the concatenation of every earlier feature map of its block.
type DenseLayer struct {
	nn.Base
	Norm1 *nn.BatchNorm2d
	Relu1 *nn.ReLU
	Conv1 *nn.Conv2d
	Norm2 *nn.BatchNorm2d
	Relu2 *nn.ReLU
	Conv2 *nn.Conv2d
	// DropRate is the dropout after the layer in training mode.
	DropRate float64
}

// DenseBlock is torchvision's _DenseBlock (a ModuleDict of DenseLayers).
type DenseBlock struct {
	nn.Base
	Layers []*DenseLayer
}

// densenetArch is the DenseNet constructor's arguments.
type densenetArch struct {
	growth      int
	blocks      [4]int
	initFeature int
	bnSize      int
}

func init() {
	for _, a := range []struct {
		name string
		arch densenetArch
	}{
		{"densenet121", densenetArch{32, [4]int{6, 12, 24, 16}, 64, 4}},
		{"densenet161", densenetArch{48, [4]int{6, 12, 36, 24}, 96, 4}},
		{"densenet169", densenetArch{32, [4]int{6, 12, 32, 32}, 64, 4}},
		{"densenet201", densenetArch{32, [4]int{6, 12, 48, 32}, 64, 4}},
	} {
		arch := a.arch
		Register(Spec{Name: a.name, Classifier: "classifier.weight",
			Build:   func(cfg Config) (nn.Module, error) { return newDenseNet(cfg, arch), nil },
			Convert: densenetKeys})
	}
}

// densenetLegacyKey matches the key names of the weights torchvision
// publishes for densenet, which predate the layer names it uses now
// ("denselayer1.norm.1.weight" for "denselayer1.norm1.weight").
var densenetLegacyKey = regexp.MustCompile(`^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$`)

// densenetKeys renames legacy densenet keys as torchvision's loader does.
func densenetKeys(src nn.Source) nn.Source {
	return renameSource(src, func(k string) string {
		if m := densenetLegacyKey.FindStringSubmatch(k); m != nil {
			return m[1] + m[2]
		}
		return k
	})
}

func newDenseNet(cfg Config, a densenetArch) *DenseNet {
	b := cfg.Weights
	fb := b.Sub("features")
	f := newNamedSequential("Sequential")
	f.add("conv0", nn.NewConv2d(fb.Sub("conv0"), 3, a.initFeature, 7, nn.Stride(2), nn.Padding(3), nn.NoBias()))
	f.add("norm0", nn.NewBatchNorm2d(fb.Sub("norm0"), a.initFeature))
	f.add("relu0", nn.NewReLU(true))
	f.add("pool0", nn.NewMaxPool2d(3, nn.Stride(2), nn.Padding(1)))
	n := a.initFeature
	for i, layers := range a.blocks {
		name := fmt.Sprintf("denseblock%d", i+1)
		f.add(name, newDenseBlock(fb.Sub(name), layers, n, a.bnSize, a.growth))
		n += layers * a.growth
		if i != len(a.blocks)-1 {
			name := fmt.Sprintf("transition%d", i+1)
			tb := fb.Sub(name)
			t := newNamedSequential("_Transition")
			t.add("norm", nn.NewBatchNorm2d(tb.Sub("norm"), n))
			t.add("relu", nn.NewReLU(true))
			t.add("conv", nn.NewConv2d(tb.Sub("conv"), n, n/2, 1, nn.NoBias()))
			t.add("pool", nn.NewAvgPool2d(2, nn.Stride(2)))
			f.add(name, t)
			n /= 2
		}
	}
	f.add("norm5", nn.NewBatchNorm2d(fb.Sub("norm5"), n))
	m := &DenseNet{Features: f, features: f}
	m.Classifier = nn.NewLinear(b.Sub("classifier"), n, cfg.numClasses(), true)
	m.RegisterModule("features", &m.Features)
	m.RegisterModule("classifier", &m.Classifier)
	return m
}

func newDenseBlock(b *nn.Builder, layers, in, bnSize, growth int) *DenseBlock {
	m := &DenseBlock{}
	for i := range layers {
		name := fmt.Sprintf("denselayer%d", i+1)
		lb := b.Sub(name)
		c := in + i*growth
		l := &DenseLayer{
			Norm1: nn.NewBatchNorm2d(lb.Sub("norm1"), c),
			Relu1: nn.NewReLU(true),
			Conv1: nn.NewConv2d(lb.Sub("conv1"), c, bnSize*growth, 1, nn.NoBias()),
			Norm2: nn.NewBatchNorm2d(lb.Sub("norm2"), bnSize*growth),
			Relu2: nn.NewReLU(true),
			Conv2: nn.NewConv2d(lb.Sub("conv2"), bnSize*growth, growth, 3, nn.Padding(1), nn.NoBias()),
		}
		l.RegisterModule("norm1", &l.Norm1)
		l.RegisterModule("relu1", &l.Relu1)
		l.RegisterModule("conv1", &l.Conv1)
		l.RegisterModule("norm2", &l.Norm2)
		l.RegisterModule("relu2", &l.Relu2)
		l.RegisterModule("conv2", &l.Conv2)
		m.Layers = append(m.Layers, l)
		m.AddModule(name, l)
	}
	return m
}

// Forward runs the layer on one feature map (see DenseBlock.Forward for the
// concatenated form).
func (l *DenseLayer) Forward(x *nn.Tensor) *nn.Tensor {
	return l.forward([]*nn.Tensor{x})
}

func (l *DenseLayer) forward(prev []*nn.Tensor) *nn.Tensor {
	var x *nn.Tensor
	if len(prev) == 1 {
		x = bnAct(l.Norm1, prev[0], false)
	} else {
		x = bnAct(l.Norm1, nn.Cat(prev, 1), true)
	}
	x = nn.ConvBNAct(l.Conv1, l.Norm2, l.Relu2, x, nil)
	x = l.Conv2.Forward(x)
	if l.DropRate > 0 {
		x = x.Dropout(l.DropRate, l.Training())
	}
	return x
}

// Forward concatenates x with the output of every layer, each layer seeing
// the concatenation of all the maps before it.
func (m *DenseBlock) Forward(x *nn.Tensor) *nn.Tensor {
	features := []*nn.Tensor{x}
	for _, l := range m.Layers {
		features = append(features, l.forward(features))
	}
	return nn.Cat(features, 1)
}

// Forward computes the class logits of x [N, 3, H, W].
func (m *DenseNet) Forward(x *nn.Tensor) *nn.Tensor {
	f := m.features
	if m.Features != nn.Module(f) {
		x = reluInPlace(m.Features.Forward(x))
	} else {
		for i, layer := range f.layers {
			// conv0+norm0+relu0 fuse; norm5 fuses with the final ReLU.
			switch {
			case i == 0:
				x = nn.ConvBNAct(f.layers[0].(*nn.Conv2d), f.layers[1].(*nn.BatchNorm2d), f.layers[2], x, nil)
			case i == 1 || i == 2:
			case i == len(f.layers)-1:
				x = bnAct(layer.(*nn.BatchNorm2d), x, true) // norm5 and forward's ReLU
			case isTransition(layer):
				t := layer.(*namedSequential)
				x = bnAct(t.layers[0].(*nn.BatchNorm2d), x, true)
				x = t.layers[3].Forward(t.layers[2].Forward(x))
			default:
				x = layer.Forward(x)
			}
		}
	}
	x = nn.AdaptiveAvgPool2dFn(x, 1, 1).Flatten(1, -1)
	return m.Classifier.Forward(x)
}

func isTransition(m nn.Module) bool {
	t, ok := m.(*namedSequential)
	return ok && t.typeName == "_Transition"
}

// bnAct applies BatchNorm and ReLU to x. owned says x is an intermediate the
// caller may have overwritten; otherwise a copy is made first when working in
// place.
func bnAct(bn *nn.BatchNorm2d, x *nn.Tensor, owned bool) *nn.Tensor {
	if bn.Training() || bn.RunningMean == nil || !inference(x, bn.Weight, bn.Bias) {
		return bn.Forward(x).ReLU()
	}
	if !owned {
		x = x.Clone()
	}
	affineActInPlace(x, bn, actReLU)
	return x
}

// String returns the module tree as torch prints it.
func (m *DenseNet) String() string { return nn.Repr(m) }

// String returns the module tree as torch prints it.
func (m *DenseBlock) String() string { return nn.Repr(m) }

// String returns the module tree as torch prints it.
func (m *DenseLayer) String() string { return nn.Repr(m) }

// TypeName returns torch's class name.
func (m *DenseBlock) TypeName() string { return "_DenseBlock" }

// TypeName returns torch's class name.
func (m *DenseLayer) TypeName() string { return "_DenseLayer" }
