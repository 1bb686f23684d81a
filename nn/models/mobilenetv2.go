package models

import (
	"fmt"
	"math"

	"github.com/ckptkit/ckpt/nn"
)

// MobileNetV2 is torchvision.models.MobileNetV2 (mobilenet_v2).
type MobileNetV2 struct {
	nn.Base
	Features   *nn.Sequential
	Classifier *nn.Sequential
}

// InvertedResidual is torchvision's MobileNetV2 block: an optional 1x1
// expansion, a 3x3 depthwise convolution (both with ReLU6) and a linear 1x1
// projection, with a residual connection when the shape is kept.
type InvertedResidual struct {
	nn.Base
	Conv   *nn.Sequential
	useRes bool
}

// makeDivisible is torchvision's _make_divisible: v rounded to the nearest
// multiple of divisor, at least minValue, and not below 90% of v.
func makeDivisible(v float64, divisor, minValue int) int {
	if minValue == 0 {
		minValue = divisor
	}
	nv := max(minValue, int(v+float64(divisor)/2)/divisor*divisor)
	if float64(nv) < 0.9*v {
		nv += divisor
	}
	return nv
}

// mobilenetV2Arch is MobileNetV2's constructor arguments: width_mult and the
// inverted residual setting (t, c, n, s per stage).
type mobilenetV2Arch struct {
	widthMult float64
	setting   [][4]int
	// lastChannel overrides the last layer's width (the parity fixture's
	// 32 for torchvision's fixed 1280); zero keeps torchvision's.
	lastChannel int
}

var mobilenetV2Setting = [][4]int{
	{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1},
}

func init() {
	Register(Spec{Name: "mobilenet_v2", Classifier: "classifier.1.weight",
		Build: func(cfg Config) (nn.Module, error) {
			return newMobileNetV2(cfg, mobilenetV2Arch{1, mobilenetV2Setting, 0})
		}})
}

func newMobileNetV2(cfg Config, a mobilenetV2Arch) (*MobileNetV2, error) {
	b := cfg.Weights
	fb := b.Sub("features")
	in := makeDivisible(32*a.widthMult, 8, 0)
	last := makeDivisible(1280*math.Max(1, a.widthMult), 8, 0)
	if a.lastChannel > 0 {
		last = a.lastChannel
	}
	relu6 := cna{act: actReLU6}
	features := nn.NewSequential(newConvNormAct(fb.Sub("0"), 3, in, 3, cna{stride: 2, act: actReLU6}))
	for _, s := range a.setting {
		t, c, n, stride := s[0], s[1], s[2], s[3]
		out := makeDivisible(float64(c)*a.widthMult, 8, 0)
		for i := range n {
			if i > 0 {
				stride = 1
			}
			if stride != 1 && stride != 2 {
				return nil, fmt.Errorf("models: mobilenet_v2: stride should be 1 or 2, got %d", stride)
			}
			features.Append(newInvertedResidual(fb.Sub(fmt.Sprint(features.Len())), in, out, stride, t))
			in = out
		}
	}
	features.Append(newConvNormAct(fb.Sub(fmt.Sprint(features.Len())), in, last, 1, relu6))
	m := &MobileNetV2{Features: features}
	m.Classifier = nn.NewSequential(
		nn.NewDropout(cfg.dropout(0.2), false),
		nn.NewLinear(b.Sub("classifier").Sub("1"), last, cfg.numClasses(), true))
	m.RegisterModule("features", &m.Features)
	m.RegisterModule("classifier", &m.Classifier)
	return m, nil
}

func newInvertedResidual(b *nn.Builder, in, out, stride, expand int) *InvertedResidual {
	hidden := int(math.Round(float64(in * expand)))
	cb := b.Sub("conv")
	seq := nn.NewSequential()
	if expand != 1 {
		seq.Append(newConvNormAct(cb.Sub("0"), in, hidden, 1, cna{act: actReLU6}))
	}
	seq.Append(newConvNormAct(cb.Sub(fmt.Sprint(seq.Len())), hidden, hidden, 3, cna{stride: stride, groups: hidden, act: actReLU6}))
	seq.Append(nn.NewConv2d(cb.Sub(fmt.Sprint(seq.Len())), hidden, out, 1, nn.NoBias()))
	seq.Append(nn.NewBatchNorm2d(cb.Sub(fmt.Sprint(seq.Len())), out))
	m := &InvertedResidual{Conv: seq, useRes: stride == 1 && in == out}
	m.RegisterModule("conv", &m.Conv)
	return m
}

// Forward runs the block.
func (m *InvertedResidual) Forward(x *nn.Tensor) *nn.Tensor {
	if m.useRes {
		return m.Conv.ForwardAdd(x, x)
	}
	return m.Conv.Forward(x)
}

// Forward computes the class logits of x [N, 3, H, W].
func (m *MobileNetV2) Forward(x *nn.Tensor) *nn.Tensor {
	x = m.Features.Forward(x)
	x = nn.AdaptiveAvgPool2dFn(x, 1, 1).Flatten(1, -1)
	return m.Classifier.Forward(x)
}

func (m *MobileNetV2) String() string      { return nn.Repr(m) }
func (m *InvertedResidual) String() string { return nn.Repr(m) }
