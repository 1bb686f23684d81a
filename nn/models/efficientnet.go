package models

import (
	"fmt"
	"math"

	"github.com/ckptkit/ckpt/nn"
)

// EfficientNet is torchvision.models.EfficientNet: efficientnet_b0..b7
// (MBConv blocks) and efficientnet_v2_s/m/l (FusedMBConv, then MBConv).
type EfficientNet struct {
	nn.Base
	Features   *nn.Sequential
	Avgpool    *nn.AdaptiveAvgPool2d
	Classifier *nn.Sequential
}

// MBConv is torchvision's EfficientNet block: an optional 1x1 expansion, a
// depthwise convolution, squeeze-and-excitation and a linear 1x1 projection,
// with a residual connection (through stochastic depth in training) when
// the shape is kept.
type MBConv struct {
	nn.Base
	Block           *nn.Sequential
	StochasticDepth *nn.StochasticDepth
	useRes          bool
	typeName        string
}

// mbconvConf is torchvision's MBConvConfig or FusedMBConvConfig after width
// and depth scaling.
type mbconvConf struct {
	fused                           bool
	expand                          float64
	kernel, stride, in, out, layers int
}

// efficientnetArch is EfficientNet's constructor arguments.
type efficientnetArch struct {
	setting     []mbconvConf
	dropout     float64
	lastChannel int // 0: four times the last stage's width
	bnOpts      []nn.Option
	sdProb      float64 // stochastic_depth_prob
}

// efficientnetB scales the EfficientNet-B0 setting by width and depth
// multipliers (torchvision's _efficientnet_conf for efficientnet_bN).
func efficientnetB(width, depth, dropout float64, bnOpts []nn.Option) efficientnetArch {
	a := efficientnetArch{dropout: dropout, bnOpts: bnOpts, sdProb: 0.2}
	for _, c := range [][6]int{
		{1, 3, 1, 32, 16, 1}, {6, 3, 2, 16, 24, 2}, {6, 5, 2, 24, 40, 2}, {6, 3, 2, 40, 80, 3},
		{6, 5, 1, 80, 112, 3}, {6, 5, 2, 112, 192, 4}, {6, 3, 1, 192, 320, 1},
	} {
		a.setting = append(a.setting, mbconvConf{
			expand: float64(c[0]), kernel: c[1], stride: c[2],
			in:     makeDivisible(float64(c[3])*width, 8, 0),
			out:    makeDivisible(float64(c[4])*width, 8, 0),
			layers: int(math.Ceil(float64(c[5]) * depth)),
		})
	}
	return a
}

// efficientnetV2 builds a v2 setting from rows of (fused, expand, kernel,
// stride, in, out, layers).
func efficientnetV2(dropout float64, rows ...[7]int) efficientnetArch {
	a := efficientnetArch{dropout: dropout, lastChannel: 1280, bnOpts: []nn.Option{nn.Eps(1e-3)}, sdProb: 0.2}
	for _, r := range rows {
		a.setting = append(a.setting, mbconvConf{fused: r[0] == 1, expand: float64(r[1]), kernel: r[2],
			stride: r[3], in: r[4], out: r[5], layers: r[6]})
	}
	return a
}

func init() {
	bnB5 := []nn.Option{nn.Eps(0.001), nn.Momentum(0.01)}
	archs := []struct {
		name string
		arch efficientnetArch
	}{
		{"efficientnet_b0", efficientnetB(1.0, 1.0, 0.2, nil)},
		{"efficientnet_b1", efficientnetB(1.0, 1.1, 0.2, nil)},
		{"efficientnet_b2", efficientnetB(1.1, 1.2, 0.3, nil)},
		{"efficientnet_b3", efficientnetB(1.2, 1.4, 0.3, nil)},
		{"efficientnet_b4", efficientnetB(1.4, 1.8, 0.4, nil)},
		{"efficientnet_b5", efficientnetB(1.6, 2.2, 0.4, bnB5)},
		{"efficientnet_b6", efficientnetB(1.8, 2.6, 0.5, bnB5)},
		{"efficientnet_b7", efficientnetB(2.0, 3.1, 0.5, bnB5)},
		{"efficientnet_v2_s", efficientnetV2(0.2,
			[7]int{1, 1, 3, 1, 24, 24, 2}, [7]int{1, 4, 3, 2, 24, 48, 4}, [7]int{1, 4, 3, 2, 48, 64, 4},
			[7]int{0, 4, 3, 2, 64, 128, 6}, [7]int{0, 6, 3, 1, 128, 160, 9}, [7]int{0, 6, 3, 2, 160, 256, 15})},
		{"efficientnet_v2_m", efficientnetV2(0.3,
			[7]int{1, 1, 3, 1, 24, 24, 3}, [7]int{1, 4, 3, 2, 24, 48, 5}, [7]int{1, 4, 3, 2, 48, 80, 5},
			[7]int{0, 4, 3, 2, 80, 160, 7}, [7]int{0, 6, 3, 1, 160, 176, 14}, [7]int{0, 6, 3, 2, 176, 304, 18},
			[7]int{0, 6, 3, 1, 304, 512, 5})},
		{"efficientnet_v2_l", efficientnetV2(0.4,
			[7]int{1, 1, 3, 1, 32, 32, 4}, [7]int{1, 4, 3, 2, 32, 64, 7}, [7]int{1, 4, 3, 2, 64, 96, 7},
			[7]int{0, 4, 3, 2, 96, 192, 10}, [7]int{0, 6, 3, 1, 192, 224, 19}, [7]int{0, 6, 3, 2, 224, 384, 25},
			[7]int{0, 6, 3, 1, 384, 640, 7})},
	}
	for _, a := range archs {
		arch := a.arch
		Register(Spec{Name: a.name, Classifier: "classifier.1.weight",
			Build: func(cfg Config) (nn.Module, error) { return newEfficientNet(cfg, arch) }})
	}
}

func newEfficientNet(cfg Config, a efficientnetArch) (*EfficientNet, error) {
	if len(a.setting) == 0 {
		return nil, fmt.Errorf("models: efficientnet: empty inverted residual setting")
	}
	b := cfg.Weights
	fb := b.Sub("features")
	features := nn.NewSequential(newConvNormAct(fb.Sub("0"), 3, a.setting[0].in, 3,
		cna{stride: 2, bnOpts: a.bnOpts, act: actSiLU}))
	total := 0
	for _, c := range a.setting {
		total += c.layers
	}
	id := 0
	for _, c := range a.setting {
		sb := fb.Sub(fmt.Sprint(features.Len()))
		stage := nn.NewSequential()
		for i := range c.layers {
			bc := c
			if i > 0 {
				bc.in, bc.stride = bc.out, 1
			}
			if bc.stride < 1 || bc.stride > 2 {
				return nil, fmt.Errorf("models: efficientnet: illegal stride %d", bc.stride)
			}
			sd := a.sdProb * float64(id) / float64(total)
			stage.Append(newMBConv(sb.Sub(fmt.Sprint(i)), bc, sd, a.bnOpts))
			id++
		}
		features.Append(stage)
	}
	lastIn := a.setting[len(a.setting)-1].out
	lastOut := a.lastChannel
	if lastOut == 0 {
		lastOut = 4 * lastIn
	}
	features.Append(newConvNormAct(fb.Sub(fmt.Sprint(features.Len())), lastIn, lastOut, 1,
		cna{bnOpts: a.bnOpts, act: actSiLU}))
	m := &EfficientNet{
		Features: features,
		Avgpool:  nn.NewAdaptiveAvgPool2d(1),
		Classifier: nn.NewSequential(
			nn.NewDropout(cfg.dropout(a.dropout), true),
			nn.NewLinear(b.Sub("classifier").Sub("1"), lastOut, cfg.numClasses(), true)),
	}
	m.RegisterModule("features", &m.Features)
	m.RegisterModule("avgpool", &m.Avgpool)
	m.RegisterModule("classifier", &m.Classifier)
	return m, nil
}

func newMBConv(b *nn.Builder, c mbconvConf, sd float64, bnOpts []nn.Option) *MBConv {
	bb := b.Sub("block")
	seq := nn.NewSequential()
	next := func() *nn.Builder { return bb.Sub(fmt.Sprint(seq.Len())) }
	expanded := makeDivisible(float64(c.in)*c.expand, 8, 0)
	m := &MBConv{typeName: "MBConv"}
	if c.fused {
		m.typeName = "FusedMBConv"
		if expanded != c.in {
			seq.Append(newConvNormAct(next(), c.in, expanded, c.kernel, cna{stride: c.stride, bnOpts: bnOpts, act: actSiLU}))
			seq.Append(newConvNormAct(next(), expanded, c.out, 1, cna{bnOpts: bnOpts}))
		} else {
			seq.Append(newConvNormAct(next(), c.in, c.out, c.kernel, cna{stride: c.stride, bnOpts: bnOpts, act: actSiLU}))
		}
	} else {
		if expanded != c.in {
			seq.Append(newConvNormAct(next(), c.in, expanded, 1, cna{bnOpts: bnOpts, act: actSiLU}))
		}
		seq.Append(newConvNormAct(next(), expanded, expanded, c.kernel,
			cna{stride: c.stride, groups: expanded, bnOpts: bnOpts, act: actSiLU}))
		seq.Append(newSqueezeExcitation(next(), expanded, max(1, c.in/4), nn.NewSiLU(true), nn.NewSigmoid()))
		seq.Append(newConvNormAct(next(), expanded, c.out, 1, cna{bnOpts: bnOpts}))
	}
	m.Block = seq
	m.StochasticDepth = nn.NewStochasticDepth(sd, "row")
	m.useRes = c.stride == 1 && c.in == c.out
	m.RegisterModule("block", &m.Block)
	m.RegisterModule("stochastic_depth", &m.StochasticDepth)
	return m
}

// Forward runs the block.
func (m *MBConv) Forward(x *nn.Tensor) *nn.Tensor {
	if !m.useRes {
		return m.Block.Forward(x)
	}
	if m.StochasticDepth.Training() && m.StochasticDepth.P > 0 {
		return m.StochasticDepth.Forward(m.Block.Forward(x)).Add(x)
	}
	return m.Block.ForwardAdd(x, x)
}

// TypeName returns torchvision's class name: MBConv or FusedMBConv.
func (m *MBConv) TypeName() string { return m.typeName }

// Forward computes the class logits of x [N, 3, H, W].
func (m *EfficientNet) Forward(x *nn.Tensor) *nn.Tensor {
	x = m.Features.Forward(x)
	x = m.Avgpool.Forward(x).Flatten(1, -1)
	return m.Classifier.Forward(x)
}

func (m *EfficientNet) String() string { return nn.Repr(m) }
func (m *MBConv) String() string       { return nn.Repr(m) }
