package models

import (
	"fmt"

	"github.com/ckptkit/ckpt/nn"
)

// MNASNet is torchvision.models.MNASNet (mnasnet0_5, 0_75, 1_0, 1_3), in the
// layout of its current version 2, whose stem width scales with alpha.
type MNASNet struct {
	nn.Base
	Layers     *nn.Sequential
	Classifier *nn.Sequential
}

// MNASNetBlock is torchvision's mnasnet _InvertedResidual: a 1x1 expansion,
// a depthwise convolution (both with ReLU) and a linear 1x1 projection.
type MNASNetBlock struct {
	nn.Base
	Layers        *nn.Sequential
	applyResidual bool
}

// tfMomentum is the BatchNorm momentum of MNASNet's paper, in TensorFlow's
// sense.
var tfMomentum = 0.9997

// mnasnetMomentum is _BN_MOMENTUM, torch's form of TensorFlow's 0.9997,
// computed in float64 at run time as Python does (a constant expression
// would be exact, 0.0003, and print differently).
var mnasnetMomentum = 1 - tfMomentum

// mnasnetArch is MNASNet's layer widths: the eight depths, the stacks'
// repeats and expansion factors, and the head width (1280).
type mnasnetArch struct {
	depths  [8]int
	repeats [6]int
	expand  [6]int
	head    int
}

// roundToMultiple is mnasnet's _round_to_multiple_of with round_up_bias 0.9.
func roundToMultiple(val float64, divisor int) int {
	nv := max(divisor, int(val+float64(divisor)/2)/divisor*divisor)
	if float64(nv) >= 0.9*val {
		return nv
	}
	return nv + divisor
}

func mnasnetAlpha(alpha float64) mnasnetArch {
	a := mnasnetArch{repeats: [6]int{3, 3, 3, 2, 4, 1}, expand: [6]int{3, 3, 6, 6, 6, 6}, head: 1280}
	for i, d := range [8]int{32, 16, 24, 40, 80, 96, 192, 320} {
		a.depths[i] = roundToMultiple(float64(d)*alpha, 8)
	}
	return a
}

func init() {
	for _, a := range []struct {
		name  string
		alpha float64
	}{{"mnasnet0_5", 0.5}, {"mnasnet0_75", 0.75}, {"mnasnet1_0", 1.0}, {"mnasnet1_3", 1.3}} {
		arch := mnasnetAlpha(a.alpha)
		Register(Spec{Name: a.name, Classifier: "classifier.1.weight",
			Build: func(cfg Config) (nn.Module, error) { return newMNASNet(cfg, arch), nil }})
	}
}

func newMNASNet(cfg Config, a mnasnetArch) *MNASNet {
	b := cfg.Weights
	lb := b.Sub("layers")
	bn := func(i, c int) nn.Module {
		return nn.NewBatchNorm2d(lb.Sub(fmt.Sprint(i)), c, nn.Momentum(mnasnetMomentum))
	}
	d := a.depths
	layers := nn.NewSequential(
		nn.NewConv2d(lb.Sub("0"), 3, d[0], 3, nn.Padding(1), nn.Stride(2), nn.NoBias()),
		bn(1, d[0]),
		nn.NewReLU(true),
		nn.NewConv2d(lb.Sub("3"), d[0], d[0], 3, nn.Padding(1), nn.Stride(1), nn.Groups(d[0]), nn.NoBias()),
		bn(4, d[0]),
		nn.NewReLU(true),
		nn.NewConv2d(lb.Sub("6"), d[0], d[1], 1, nn.NoBias()),
		bn(7, d[1]))
	kernels := [6]int{3, 5, 5, 3, 5, 3}
	strides := [6]int{2, 2, 2, 1, 2, 1}
	for i := range 6 {
		sb := lb.Sub(fmt.Sprint(layers.Len()))
		stack := nn.NewSequential()
		for r := range a.repeats[i] {
			in, s := d[i+1], strides[i]
			if r > 0 {
				in, s = d[i+2], 1
			}
			stack.Append(newMNASNetBlock(sb.Sub(fmt.Sprint(r)), in, d[i+2], kernels[i], s, a.expand[i]))
		}
		layers.Append(stack)
	}
	n := layers.Len()
	layers.Append(nn.NewConv2d(lb.Sub(fmt.Sprint(n)), d[7], a.head, 1, nn.NoBias()))
	layers.Append(bn(n+1, a.head))
	layers.Append(nn.NewReLU(true))
	m := &MNASNet{Layers: layers}
	m.Classifier = nn.NewSequential(
		nn.NewDropout(cfg.dropout(0.2), true),
		nn.NewLinear(b.Sub("classifier").Sub("1"), a.head, cfg.numClasses(), true))
	m.RegisterModule("layers", &m.Layers)
	m.RegisterModule("classifier", &m.Classifier)
	return m
}

func newMNASNetBlock(b *nn.Builder, in, out, k, stride, expand int) *MNASNetBlock {
	mid := in * expand
	lb := b.Sub("layers")
	bn := func(i, c int) nn.Module {
		return nn.NewBatchNorm2d(lb.Sub(fmt.Sprint(i)), c, nn.Momentum(mnasnetMomentum))
	}
	m := &MNASNetBlock{applyResidual: in == out && stride == 1}
	m.Layers = nn.NewSequential(
		nn.NewConv2d(lb.Sub("0"), in, mid, 1, nn.NoBias()),
		bn(1, mid),
		nn.NewReLU(true),
		nn.NewConv2d(lb.Sub("3"), mid, mid, k, nn.Padding(k/2), nn.Stride(stride), nn.Groups(mid), nn.NoBias()),
		bn(4, mid),
		nn.NewReLU(true),
		nn.NewConv2d(lb.Sub("6"), mid, out, 1, nn.NoBias()),
		bn(7, out))
	m.RegisterModule("layers", &m.Layers)
	return m
}

// Forward runs the block.
func (m *MNASNetBlock) Forward(x *nn.Tensor) *nn.Tensor {
	if m.applyResidual {
		return m.Layers.ForwardAdd(x, x)
	}
	return m.Layers.Forward(x)
}

// TypeName returns torchvision's class name.
func (m *MNASNetBlock) TypeName() string { return "_InvertedResidual" }

// Forward computes the class logits of x [N, 3, H, W].
func (m *MNASNet) Forward(x *nn.Tensor) *nn.Tensor {
	x = m.Layers.Forward(x)
	x = nn.AdaptiveAvgPool2dFn(x, 1, 1).Flatten(1, -1)
	return m.Classifier.Forward(x)
}

func (m *MNASNet) String() string      { return nn.Repr(m) }
func (m *MNASNetBlock) String() string { return nn.Repr(m) }
