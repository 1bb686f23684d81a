package models

import (
	"fmt"

	"github.com/ckptkit/ckpt/nn"
)

// MobileNetV3 is torchvision.models.MobileNetV3 (mobilenet_v3_small,
// mobilenet_v3_large).
type MobileNetV3 struct {
	nn.Base
	Features   *nn.Sequential
	Avgpool    *nn.AdaptiveAvgPool2d
	Classifier *nn.Sequential
}

// InvertedResidualV3 is torchvision's MobileNetV3 InvertedResidual: an
// optional 1x1 expansion, a depthwise convolution, an optional
// squeeze-and-excitation and a linear 1x1 projection.
type InvertedResidualV3 struct {
	nn.Base
	Block  *nn.Sequential
	useRes bool
}

// bneckConf is torchvision's InvertedResidualConfig before width scaling:
// input, kernel, expanded and output channels, SE, hardswish, stride,
// dilation.
type bneckConf struct {
	in, kernel, expanded, out int
	se, hs                    bool
	stride, dilation          int
}

// mobilenetV3Arch is MobileNetV3's constructor arguments.
type mobilenetV3Arch struct {
	setting     []bneckConf
	lastChannel int
}

var (
	mobilenetV3Large = mobilenetV3Arch{[]bneckConf{
		{16, 3, 16, 16, false, false, 1, 1},
		{16, 3, 64, 24, false, false, 2, 1},
		{24, 3, 72, 24, false, false, 1, 1},
		{24, 5, 72, 40, true, false, 2, 1},
		{40, 5, 120, 40, true, false, 1, 1},
		{40, 5, 120, 40, true, false, 1, 1},
		{40, 3, 240, 80, false, true, 2, 1},
		{80, 3, 200, 80, false, true, 1, 1},
		{80, 3, 184, 80, false, true, 1, 1},
		{80, 3, 184, 80, false, true, 1, 1},
		{80, 3, 480, 112, true, true, 1, 1},
		{112, 3, 672, 112, true, true, 1, 1},
		{112, 5, 672, 160, true, true, 2, 1},
		{160, 5, 960, 160, true, true, 1, 1},
		{160, 5, 960, 160, true, true, 1, 1},
	}, 1280}
	mobilenetV3Small = mobilenetV3Arch{[]bneckConf{
		{16, 3, 16, 16, true, false, 2, 1},
		{16, 3, 72, 24, false, false, 2, 1},
		{24, 3, 88, 24, false, false, 1, 1},
		{24, 5, 96, 40, true, true, 2, 1},
		{40, 5, 240, 40, true, true, 1, 1},
		{40, 5, 240, 40, true, true, 1, 1},
		{40, 5, 120, 48, true, true, 1, 1},
		{48, 5, 144, 48, true, true, 1, 1},
		{48, 5, 288, 96, true, true, 2, 1},
		{96, 5, 576, 96, true, true, 1, 1},
		{96, 5, 576, 96, true, true, 1, 1},
	}, 1024}
)

func init() {
	for _, a := range []struct {
		name string
		arch mobilenetV3Arch
	}{{"mobilenet_v3_large", mobilenetV3Large}, {"mobilenet_v3_small", mobilenetV3Small}} {
		arch := a.arch
		Register(Spec{Name: a.name, Classifier: "classifier.3.weight",
			Build: func(cfg Config) (nn.Module, error) { return newMobileNetV3(cfg, arch) }})
	}
}

// mobilenetV3BN is MobileNetV3's norm layer: BatchNorm2d(eps=0.001,
// momentum=0.01).
var mobilenetV3BN = []nn.Option{nn.Eps(0.001), nn.Momentum(0.01)}

func newMobileNetV3(cfg Config, a mobilenetV3Arch) (*MobileNetV3, error) {
	if len(a.setting) == 0 {
		return nil, fmt.Errorf("models: mobilenet_v3: empty inverted residual setting")
	}
	b := cfg.Weights
	fb := b.Sub("features")
	first := a.setting[0].in
	features := nn.NewSequential(newConvNormAct(fb.Sub("0"), 3, first, 3,
		cna{stride: 2, bnOpts: mobilenetV3BN, act: actHardswish}))
	for _, c := range a.setting {
		if c.stride < 1 || c.stride > 2 {
			return nil, fmt.Errorf("models: mobilenet_v3: illegal stride %d", c.stride)
		}
		features.Append(newInvertedResidualV3(fb.Sub(fmt.Sprint(features.Len())), c))
	}
	lastIn := a.setting[len(a.setting)-1].out
	lastOut := 6 * lastIn
	features.Append(newConvNormAct(fb.Sub(fmt.Sprint(features.Len())), lastIn, lastOut, 1,
		cna{bnOpts: mobilenetV3BN, act: actHardswish}))
	cb := b.Sub("classifier")
	m := &MobileNetV3{
		Features: features,
		Avgpool:  nn.NewAdaptiveAvgPool2d(1),
		Classifier: nn.NewSequential(
			nn.NewLinear(cb.Sub("0"), lastOut, a.lastChannel, true),
			nn.NewHardswish(true),
			nn.NewDropout(cfg.dropout(0.2), true),
			nn.NewLinear(cb.Sub("3"), a.lastChannel, cfg.numClasses(), true)),
	}
	m.RegisterModule("features", &m.Features)
	m.RegisterModule("avgpool", &m.Avgpool)
	m.RegisterModule("classifier", &m.Classifier)
	return m, nil
}

func newInvertedResidualV3(b *nn.Builder, c bneckConf) *InvertedResidualV3 {
	act := actReLU
	if c.hs {
		act = actHardswish
	}
	bb := b.Sub("block")
	seq := nn.NewSequential()
	next := func() *nn.Builder { return bb.Sub(fmt.Sprint(seq.Len())) }
	if c.expanded != c.in {
		seq.Append(newConvNormAct(next(), c.in, c.expanded, 1, cna{bnOpts: mobilenetV3BN, act: act}))
	}
	stride := c.stride
	if c.dilation > 1 {
		stride = 1
	}
	seq.Append(newConvNormAct(next(), c.expanded, c.expanded, c.kernel,
		cna{stride: stride, dilation: c.dilation, groups: c.expanded, bnOpts: mobilenetV3BN, act: act}))
	if c.se {
		sq := makeDivisible(float64(c.expanded/4), 8, 0)
		seq.Append(newSqueezeExcitation(next(), c.expanded, sq, nn.NewReLU(false), nn.NewHardsigmoid(false)))
	}
	seq.Append(newConvNormAct(next(), c.expanded, c.out, 1, cna{bnOpts: mobilenetV3BN}))
	m := &InvertedResidualV3{Block: seq, useRes: c.stride == 1 && c.in == c.out}
	m.RegisterModule("block", &m.Block)
	return m
}

// Forward runs the block.
func (m *InvertedResidualV3) Forward(x *nn.Tensor) *nn.Tensor {
	if m.useRes {
		return m.Block.ForwardAdd(x, x)
	}
	return m.Block.Forward(x)
}

// TypeName returns torchvision's class name.
func (m *InvertedResidualV3) TypeName() string { return "InvertedResidual" }

// Forward computes the class logits of x [N, 3, H, W].
func (m *MobileNetV3) Forward(x *nn.Tensor) *nn.Tensor {
	x = m.Features.Forward(x)
	x = m.Avgpool.Forward(x).Flatten(1, -1)
	return m.Classifier.Forward(x)
}

func (m *MobileNetV3) String() string        { return nn.Repr(m) }
func (m *InvertedResidualV3) String() string { return nn.Repr(m) }
