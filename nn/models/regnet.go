package models

import (
	"fmt"
	"math"

	"github.com/ckptkit/ckpt/nn"
)

// RegNet is torchvision.models.RegNet (regnet_x_* and regnet_y_*): a stem,
// four AnyStages of residual bottleneck blocks, average pooling and a linear
// classifier.
type RegNet struct {
	nn.Base
	Stem        *ConvNormActivation
	TrunkOutput nn.Module
	Avgpool     *nn.AdaptiveAvgPool2d
	FC          *nn.Linear
}

// ResBottleneckBlock is torchvision's regnet ResBottleneckBlock:
// relu(proj(x) + f(x)), with proj the identity when the shape is kept.
type ResBottleneckBlock struct {
	nn.Base
	Proj       *ConvNormActivation
	F          *BottleneckTransform
	Activation *nn.ReLU
}

// BottleneckTransform is torchvision's regnet BottleneckTransform: 1x1,
// grouped 3x3, optional squeeze-and-excitation (regnet_y), linear 1x1.
type BottleneckTransform struct {
	nn.Base
	A, B, C *ConvNormActivation
	SE      *SqueezeExcitation
}

// regnetArch is the per-stage parameters torchvision's
// BlockParams.from_init_params computes for a RegNet, and the SE ratio
// (0 for regnet_x).
type regnetArch struct {
	depths, widths, groupWidths []int
	bottleneck                  float64
	seRatio                     float64
	stemWidth                   int
}

func init() {
	// BlockParams.from_init_params(depth, w_0, w_a, w_m, group_width,
	// se_ratio) of each builder, as torchvision 0.14 evaluates it.
	for _, a := range []struct {
		name                        string
		depths, widths, groupWidths []int
		se                          float64
	}{
		{"regnet_y_400mf", []int{1, 3, 6, 6}, []int{48, 104, 208, 440}, []int{8, 8, 8, 8}, 0.25},
		{"regnet_y_800mf", []int{1, 3, 8, 2}, []int{64, 144, 320, 784}, []int{16, 16, 16, 16}, 0.25},
		{"regnet_y_1_6gf", []int{2, 6, 17, 2}, []int{48, 120, 336, 888}, []int{24, 24, 24, 24}, 0.25},
		{"regnet_y_3_2gf", []int{2, 5, 13, 1}, []int{72, 216, 576, 1512}, []int{24, 24, 24, 24}, 0.25},
		{"regnet_y_8gf", []int{2, 4, 10, 1}, []int{224, 448, 896, 2016}, []int{56, 56, 56, 56}, 0.25},
		{"regnet_y_16gf", []int{2, 4, 11, 1}, []int{224, 448, 1232, 3024}, []int{112, 112, 112, 112}, 0.25},
		{"regnet_y_32gf", []int{2, 5, 12, 1}, []int{232, 696, 1392, 3712}, []int{232, 232, 232, 232}, 0.25},
		{"regnet_y_128gf", []int{2, 7, 17, 1}, []int{528, 1056, 2904, 7392}, []int{264, 264, 264, 264}, 0.25},
		{"regnet_x_400mf", []int{1, 2, 7, 12}, []int{32, 64, 160, 400}, []int{16, 16, 16, 16}, 0},
		{"regnet_x_800mf", []int{1, 3, 7, 5}, []int{64, 128, 288, 672}, []int{16, 16, 16, 16}, 0},
		{"regnet_x_1_6gf", []int{2, 4, 10, 2}, []int{72, 168, 408, 912}, []int{24, 24, 24, 24}, 0},
		{"regnet_x_3_2gf", []int{2, 6, 15, 2}, []int{96, 192, 432, 1008}, []int{48, 48, 48, 48}, 0},
		{"regnet_x_8gf", []int{2, 5, 15, 1}, []int{80, 240, 720, 1920}, []int{80, 120, 120, 120}, 0},
		{"regnet_x_16gf", []int{2, 6, 13, 1}, []int{256, 512, 896, 2048}, []int{128, 128, 128, 128}, 0},
		{"regnet_x_32gf", []int{2, 7, 13, 1}, []int{336, 672, 1344, 2520}, []int{168, 168, 168, 168}, 0},
	} {
		arch := regnetArch{a.depths, a.widths, a.groupWidths, 1, a.se, 32}
		Register(Spec{Name: a.name, Classifier: "fc.weight",
			Build: func(cfg Config) (nn.Module, error) { return newRegNet(cfg, arch) }})
	}
}

func newRegNet(cfg Config, a regnetArch) (*RegNet, error) {
	if len(a.widths) != len(a.depths) || len(a.groupWidths) != len(a.depths) {
		return nil, fmt.Errorf("models: regnet: stage parameters of different lengths")
	}
	b := cfg.Weights
	m := &RegNet{Stem: newConvNormAct(b.Sub("stem"), 3, a.stemWidth, 3,
		cna{stride: 2, act: actReLU, typeName: "SimpleStemIN"})}
	tb := b.Sub("trunk_output")
	trunk := newNamedSequential("Sequential")
	cur := a.stemWidth
	for i, depth := range a.depths {
		name := fmt.Sprintf("block%d", i+1)
		sb := tb.Sub(name)
		stage := newNamedSequential("AnyStage")
		for j := range depth {
			in, stride := a.widths[i], 1
			if j == 0 {
				in, stride = cur, 2
			}
			blk, err := newResBottleneckBlock(sb.Sub(fmt.Sprintf("block%d-%d", i+1, j)), in, a.widths[i], stride,
				a.groupWidths[i], a.bottleneck, a.seRatio)
			if err != nil {
				return nil, err
			}
			stage.add(fmt.Sprintf("block%d-%d", i+1, j), blk)
		}
		trunk.add(name, stage)
		cur = a.widths[i]
	}
	m.TrunkOutput = trunk
	m.Avgpool = nn.NewAdaptiveAvgPool2d(1, 1)
	m.FC = nn.NewLinear(b.Sub("fc"), cur, cfg.numClasses(), true)
	m.RegisterModule("stem", &m.Stem)
	m.RegisterModule("trunk_output", &m.TrunkOutput)
	m.RegisterModule("avgpool", &m.Avgpool)
	m.RegisterModule("fc", &m.FC)
	return m, nil
}

func newResBottleneckBlock(b *nn.Builder, in, out, stride, groupWidth int, bottleneck, seRatio float64) (*ResBottleneckBlock, error) {
	m := &ResBottleneckBlock{}
	if in != out || stride != 1 {
		m.Proj = newConvNormAct(b.Sub("proj"), in, out, 1, cna{stride: stride})
	}
	wb := int(math.RoundToEven(float64(out) * bottleneck))
	if groupWidth <= 0 || wb%groupWidth != 0 {
		return nil, fmt.Errorf("models: regnet: bottleneck width %d is not a multiple of group width %d", wb, groupWidth)
	}
	fb := b.Sub("f")
	f := &BottleneckTransform{
		A: newConvNormAct(fb.Sub("a"), in, wb, 1, cna{act: actReLU}),
		B: newConvNormAct(fb.Sub("b"), wb, wb, 3, cna{stride: stride, groups: wb / groupWidth, act: actReLU}),
	}
	if seRatio > 0 {
		f.SE = newSqueezeExcitation(fb.Sub("se"), wb, int(math.RoundToEven(seRatio*float64(in))), nn.NewReLU(false), nn.NewSigmoid())
	}
	f.C = newConvNormAct(fb.Sub("c"), wb, out, 1, cna{})
	f.RegisterModule("a", &f.A)
	f.RegisterModule("b", &f.B)
	f.RegisterModule("se", &f.SE)
	f.RegisterModule("c", &f.C)
	m.F = f
	m.Activation = nn.NewReLU(true)
	m.RegisterModule("proj", &m.Proj)
	m.RegisterModule("f", &m.F)
	m.RegisterModule("activation", &m.Activation)
	return m, nil
}

// Forward runs the transform.
func (m *BottleneckTransform) Forward(x *nn.Tensor) *nn.Tensor {
	x = m.B.Forward(m.A.Forward(x))
	if m.SE != nil {
		x = m.SE.scale(x, true)
	}
	return m.C.Forward(x)
}

// Forward runs the block.
func (m *ResBottleneckBlock) Forward(x *nn.Tensor) *nn.Tensor {
	y := m.F.Forward(x)
	short := x
	if m.Proj != nil {
		short = m.Proj.Forward(x)
	}
	return addReLU(y, short)
}

// Forward computes the class logits of x [N, 3, H, W].
func (m *RegNet) Forward(x *nn.Tensor) *nn.Tensor {
	x = m.TrunkOutput.Forward(m.Stem.Forward(x))
	x = m.Avgpool.Forward(x).Flatten(1, -1)
	return m.FC.Forward(x)
}

func (m *RegNet) String() string              { return nn.Repr(m) }
func (m *ResBottleneckBlock) String() string  { return nn.Repr(m) }
func (m *BottleneckTransform) String() string { return nn.Repr(m) }
