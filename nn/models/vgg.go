package models

import (
	"strconv"

	"github.com/ckptkit/ckpt/nn"
)

// VGG is torchvision.models.VGG (vgg11/13/16/19 and their _bn variants).
type VGG struct {
	nn.Base
	Features   *nn.Sequential
	AvgPool    *nn.AdaptiveAvgPool2d
	Classifier *nn.Sequential
}

// vggConfigs are torchvision's cfgs: channel counts, 0 for a max pool.
var vggConfigs = map[string][]int{
	"A": {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0},
	"B": {64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0},
	"D": {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0},
	"E": {64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0},
}

// vggArch is the VGG constructor's arguments; hidden is the classifier's
// width (4096 in torchvision; smaller in the parity fixtures).
type vggArch struct {
	cfg    []int
	bn     bool
	hidden int
}

func init() {
	for _, v := range []struct{ name, cfg string }{{"vgg11", "A"}, {"vgg13", "B"}, {"vgg16", "D"}, {"vgg19", "E"}} {
		for _, bn := range []bool{false, true} {
			name := v.name
			if bn {
				name += "_bn"
			}
			a := vggArch{vggConfigs[v.cfg], bn, 4096}
			Register(Spec{Name: name, Classifier: "classifier.6.weight",
				Build: func(cfg Config) (nn.Module, error) { return newVGG(cfg, a), nil }})
		}
	}
}

func newVGG(cfg Config, a vggArch) *VGG {
	b := cfg.Weights
	m := &VGG{Features: nn.NewSequential()}
	fb := b.Sub("features")
	in := 3
	for _, v := range a.cfg {
		i := strconv.Itoa(m.Features.Len())
		if v == 0 {
			m.Features.Append(nn.NewMaxPool2d(2, nn.Stride(2)))
			continue
		}
		m.Features.Append(nn.NewConv2d(fb.Sub(i), in, v, 3, nn.Padding(1)))
		if a.bn {
			m.Features.Append(nn.NewBatchNorm2d(fb.Sub(strconv.Itoa(m.Features.Len())), v))
		}
		m.Features.Append(nn.NewReLU(true))
		in = v
	}
	m.AvgPool = nn.NewAdaptiveAvgPool2d(7, 7)
	p := cfg.dropout(0.5)
	cb := b.Sub("classifier")
	m.Classifier = nn.NewSequential(
		nn.NewLinear(cb.Sub("0"), in*7*7, a.hidden, true),
		nn.NewReLU(true),
		nn.NewDropout(p, false),
		nn.NewLinear(cb.Sub("3"), a.hidden, a.hidden, true),
		nn.NewReLU(true),
		nn.NewDropout(p, false),
		nn.NewLinear(cb.Sub("6"), a.hidden, cfg.numClasses(), true),
	)
	m.RegisterModule("features", &m.Features)
	m.RegisterModule("avgpool", &m.AvgPool)
	m.RegisterModule("classifier", &m.Classifier)
	return m
}

// Forward computes the class logits of x [N, 3, H, W].
func (m *VGG) Forward(x *nn.Tensor) *nn.Tensor {
	x = m.Features.Forward(x)
	x = m.AvgPool.Forward(x).Flatten(1, -1)
	return m.Classifier.Forward(x)
}

// String returns the module tree as torch prints it.
func (m *VGG) String() string { return nn.Repr(m) }

// AlexNet is torchvision.models.AlexNet.
type AlexNet struct {
	nn.Base
	Features   *nn.Sequential
	AvgPool    *nn.AdaptiveAvgPool2d
	Classifier *nn.Sequential
}

// alexArch holds AlexNet's widths: five convolutions and the classifier
// (64, 192, 384, 256, 256 and 4096 in torchvision).
type alexArch struct {
	convs  [5]int
	hidden int
}

func init() {
	Register(Spec{Name: "alexnet", Classifier: "classifier.6.weight",
		Build: func(cfg Config) (nn.Module, error) {
			return newAlexNet(cfg, alexArch{[5]int{64, 192, 384, 256, 256}, 4096}), nil
		}})
}

func newAlexNet(cfg Config, a alexArch) *AlexNet {
	b := cfg.Weights
	fb := b.Sub("features")
	c := a.convs
	m := &AlexNet{}
	m.Features = nn.NewSequential(
		nn.NewConv2d(fb.Sub("0"), 3, c[0], 11, nn.Stride(4), nn.Padding(2)),
		nn.NewReLU(true),
		nn.NewMaxPool2d(3, nn.Stride(2)),
		nn.NewConv2d(fb.Sub("3"), c[0], c[1], 5, nn.Padding(2)),
		nn.NewReLU(true),
		nn.NewMaxPool2d(3, nn.Stride(2)),
		nn.NewConv2d(fb.Sub("6"), c[1], c[2], 3, nn.Padding(1)),
		nn.NewReLU(true),
		nn.NewConv2d(fb.Sub("8"), c[2], c[3], 3, nn.Padding(1)),
		nn.NewReLU(true),
		nn.NewConv2d(fb.Sub("10"), c[3], c[4], 3, nn.Padding(1)),
		nn.NewReLU(true),
		nn.NewMaxPool2d(3, nn.Stride(2)),
	)
	m.AvgPool = nn.NewAdaptiveAvgPool2d(6, 6)
	p := cfg.dropout(0.5)
	cb := b.Sub("classifier")
	m.Classifier = nn.NewSequential(
		nn.NewDropout(p, false),
		nn.NewLinear(cb.Sub("1"), c[4]*6*6, a.hidden, true),
		nn.NewReLU(true),
		nn.NewDropout(p, false),
		nn.NewLinear(cb.Sub("4"), a.hidden, a.hidden, true),
		nn.NewReLU(true),
		nn.NewLinear(cb.Sub("6"), a.hidden, cfg.numClasses(), true),
	)
	m.RegisterModule("features", &m.Features)
	m.RegisterModule("avgpool", &m.AvgPool)
	m.RegisterModule("classifier", &m.Classifier)
	return m
}

// Forward computes the class logits of x [N, 3, H, W].
func (m *AlexNet) Forward(x *nn.Tensor) *nn.Tensor {
	x = m.Features.Forward(x)
	x = m.AvgPool.Forward(x).Flatten(1, -1)
	return m.Classifier.Forward(x)
}

// String returns the module tree as torch prints it.
func (m *AlexNet) String() string { return nn.Repr(m) }
