package models

import (
	"strconv"

	"github.com/ckptkit/ckpt/nn"
)

// SqueezeNet is torchvision.models.SqueezeNet (squeezenet1_0, squeezenet1_1).
// Its classifier is a 1x1 convolution followed by ReLU and global average
// pooling.
type SqueezeNet struct {
	nn.Base
	NumClasses int
	Features   *nn.Sequential
	Classifier *nn.Sequential
}

// Fire is SqueezeNet's block: a 1x1 squeeze convolution, then 1x1 and 3x3
// expand convolutions whose outputs are concatenated.
type Fire struct {
	nn.Base
	Squeeze, Expand1x1, Expand3x3                               *nn.Conv2d
	SqueezeActivation, Expand1x1Activation, Expand3x3Activation *nn.ReLU
}

// squeezeArch is SqueezeNet's layout: the stem convolution, then fire
// modules and ceil-mode max pools (a zero fireSpec), as torchvision lists
// them in SqueezeNet.__init__.
type squeezeArch struct {
	stemOut, stemK int
	layers         []fireSpec
}

type fireSpec struct{ in, squeeze, e1, e3 int }

var pool3 = fireSpec{}

var squeezeArchs = map[string]squeezeArch{
	"1_0": {96, 7, []fireSpec{pool3, {96, 16, 64, 64}, {128, 16, 64, 64}, {128, 32, 128, 128}, pool3,
		{256, 32, 128, 128}, {256, 48, 192, 192}, {384, 48, 192, 192}, {384, 64, 256, 256}, pool3,
		{512, 64, 256, 256}}},
	"1_1": {64, 3, []fireSpec{pool3, {64, 16, 64, 64}, {128, 16, 64, 64}, pool3,
		{128, 32, 128, 128}, {256, 32, 128, 128}, pool3,
		{256, 48, 192, 192}, {384, 48, 192, 192}, {384, 64, 256, 256}, {512, 64, 256, 256}}},
}

func init() {
	for _, v := range []string{"1_0", "1_1"} {
		a := squeezeArchs[v]
		Register(Spec{Name: "squeezenet" + v, Classifier: "classifier.1.weight",
			Build: func(cfg Config) (nn.Module, error) { return newSqueezeNet(cfg, a), nil }})
	}
}

func newSqueezeNet(cfg Config, a squeezeArch) *SqueezeNet {
	b := cfg.Weights
	fb := b.Sub("features")
	m := &SqueezeNet{NumClasses: cfg.numClasses()}
	m.Features = nn.NewSequential(nn.NewConv2d(fb.Sub("0"), 3, a.stemOut, a.stemK, nn.Stride(2)), nn.NewReLU(true))
	out := a.stemOut
	for _, f := range a.layers {
		if f == pool3 {
			m.Features.Append(nn.NewMaxPool2d(3, nn.Stride(2), nn.CeilMode()))
			continue
		}
		m.Features.Append(newFire(fb.Sub(strconv.Itoa(m.Features.Len())), f.in, f.squeeze, f.e1, f.e3))
		out = f.e1 + f.e3
	}
	m.Classifier = nn.NewSequential(
		nn.NewDropout(cfg.dropout(0.5), false),
		nn.NewConv2d(b.Sub("classifier").Sub("1"), out, m.NumClasses, 1),
		nn.NewReLU(true),
		nn.NewAdaptiveAvgPool2d(1, 1))
	m.RegisterModule("features", &m.Features)
	m.RegisterModule("classifier", &m.Classifier)
	return m
}

func newFire(b *nn.Builder, in, squeeze, e1, e3 int) *Fire {
	m := &Fire{
		Squeeze:             nn.NewConv2d(b.Sub("squeeze"), in, squeeze, 1),
		SqueezeActivation:   nn.NewReLU(true),
		Expand1x1:           nn.NewConv2d(b.Sub("expand1x1"), squeeze, e1, 1),
		Expand1x1Activation: nn.NewReLU(true),
		Expand3x3:           nn.NewConv2d(b.Sub("expand3x3"), squeeze, e3, 3, nn.Padding(1)),
		Expand3x3Activation: nn.NewReLU(true),
	}
	m.RegisterModule("squeeze", &m.Squeeze)
	m.RegisterModule("squeeze_activation", &m.SqueezeActivation)
	m.RegisterModule("expand1x1", &m.Expand1x1)
	m.RegisterModule("expand1x1_activation", &m.Expand1x1Activation)
	m.RegisterModule("expand3x3", &m.Expand3x3)
	m.RegisterModule("expand3x3_activation", &m.Expand3x3Activation)
	return m
}

// Forward runs the block.
func (m *Fire) Forward(x *nn.Tensor) *nn.Tensor {
	x = nn.ConvBNAct(m.Squeeze, nil, m.SqueezeActivation, x, nil)
	return nn.Cat([]*nn.Tensor{nn.ConvBNAct(m.Expand1x1, nil, m.Expand1x1Activation, x, nil),
		nn.ConvBNAct(m.Expand3x3, nil, m.Expand3x3Activation, x, nil)}, 1)
}

// Forward computes the class logits of x [N, 3, H, W].
func (m *SqueezeNet) Forward(x *nn.Tensor) *nn.Tensor {
	x = m.Features.Forward(x)
	return m.Classifier.Forward(x).Flatten(1, -1)
}

// String returns the module tree as torch prints it.
func (m *SqueezeNet) String() string { return nn.Repr(m) }

// String returns the module tree as torch prints it.
func (m *Fire) String() string { return nn.Repr(m) }
