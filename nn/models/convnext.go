package models

import (
	"fmt"

	"github.com/ckptkit/ckpt/nn"
)

// ConvNeXt is torchvision.models.ConvNeXt (convnext_tiny, small, base,
// large).
type ConvNeXt struct {
	nn.Base
	Features   *nn.Sequential
	Avgpool    *nn.AdaptiveAvgPool2d
	Classifier *nn.Sequential
}

// CNBlock is torchvision's ConvNeXt block: a 7x7 depthwise convolution,
// then, channels last, LayerNorm, Linear to four times the width, GELU and
// Linear back, scaled per channel by LayerScale and added to the input
// (through stochastic depth in training).
type CNBlock struct {
	nn.Base
	// LayerScale is the layer_scale parameter, [dim, 1, 1].
	LayerScale      *nn.Tensor
	Block           *nn.Sequential
	StochasticDepth *nn.StochasticDepth
}

// cnStage is torchvision's CNBlockConfig: input channels, output channels
// of the downsampling layer after the stage (0: none) and blocks.
type cnStage struct{ in, out, layers int }

// convnextArch is ConvNeXt's constructor arguments.
type convnextArch struct {
	stages     []cnStage
	sdProb     float64
	layerScale float64
}

func init() {
	for _, a := range []struct {
		name string
		arch convnextArch
	}{
		{"convnext_tiny", convnextArch{[]cnStage{{96, 192, 3}, {192, 384, 3}, {384, 768, 9}, {768, 0, 3}}, 0.1, 1e-6}},
		{"convnext_small", convnextArch{[]cnStage{{96, 192, 3}, {192, 384, 3}, {384, 768, 27}, {768, 0, 3}}, 0.4, 1e-6}},
		{"convnext_base", convnextArch{[]cnStage{{128, 256, 3}, {256, 512, 3}, {512, 1024, 27}, {1024, 0, 3}}, 0.5, 1e-6}},
		{"convnext_large", convnextArch{[]cnStage{{192, 384, 3}, {384, 768, 3}, {768, 1536, 27}, {1536, 0, 3}}, 0.5, 1e-6}},
	} {
		arch := a.arch
		Register(Spec{Name: a.name, Classifier: "classifier.2.weight",
			Build: func(cfg Config) (nn.Module, error) { return newConvNeXt(cfg, arch) }})
	}
}

// convnextEps is the epsilon of ConvNeXt's LayerNorm and LayerNorm2d.
const convnextEps = 1e-6

func newConvNeXt(cfg Config, a convnextArch) (*ConvNeXt, error) {
	if len(a.stages) == 0 {
		return nil, fmt.Errorf("models: convnext: empty block setting")
	}
	b := cfg.Weights
	fb := b.Sub("features")
	zero := 0
	features := nn.NewSequential(newConvNormAct(fb.Sub("0"), 3, a.stages[0].in, 4,
		cna{stride: 4, padding: &zero, norm: normLayerNorm2d, lnEps: convnextEps, bias: true}))
	total := 0
	for _, s := range a.stages {
		total += s.layers
	}
	id := 0
	for _, s := range a.stages {
		sb := fb.Sub(fmt.Sprint(features.Len()))
		stage := nn.NewSequential()
		for i := range s.layers {
			sd := a.sdProb * float64(id) / (float64(total) - 1.0)
			stage.Append(newCNBlock(sb.Sub(fmt.Sprint(i)), s.in, a.layerScale, sd))
			id++
		}
		features.Append(stage)
		if s.out != 0 {
			db := fb.Sub(fmt.Sprint(features.Len()))
			features.Append(nn.NewSequential(
				newLayerNorm2d(db.Sub("0"), s.in, convnextEps),
				nn.NewConv2d(db.Sub("1"), s.in, s.out, 2, nn.Stride(2))))
		}
	}
	last := a.stages[len(a.stages)-1]
	lastOut := last.out
	if lastOut == 0 {
		lastOut = last.in
	}
	cb := b.Sub("classifier")
	m := &ConvNeXt{
		Features: features,
		Avgpool:  nn.NewAdaptiveAvgPool2d(1),
		Classifier: nn.NewSequential(
			newLayerNorm2d(cb.Sub("0"), lastOut, convnextEps),
			nn.NewFlatten(1, -1),
			nn.NewLinear(cb.Sub("2"), lastOut, cfg.numClasses(), true)),
	}
	m.RegisterModule("features", &m.Features)
	m.RegisterModule("avgpool", &m.Avgpool)
	m.RegisterModule("classifier", &m.Classifier)
	return m, nil
}

func newCNBlock(b *nn.Builder, dim int, layerScale, sd float64) *CNBlock {
	bb := b.Sub("block")
	m := &CNBlock{
		LayerScale: b.Tensor("layer_scale", []int{dim, 1, 1}, func(t *nn.Tensor) { nn.InitConstant(t, layerScale) }),
		Block: nn.NewSequential(
			nn.NewConv2d(bb.Sub("0"), dim, dim, 7, nn.Padding(3), nn.Groups(dim)),
			newPermute(0, 2, 3, 1),
			nn.NewLayerNorm(bb.Sub("2"), []int{dim}, nn.Eps(convnextEps)),
			nn.NewLinear(bb.Sub("3"), dim, 4*dim, true),
			nn.NewGELU("none"),
			nn.NewLinear(bb.Sub("5"), 4*dim, dim, true),
			newPermute(0, 3, 1, 2)),
		StochasticDepth: nn.NewStochasticDepth(sd, "row"),
	}
	m.RegisterParameter("layer_scale", &m.LayerScale)
	m.RegisterModule("block", &m.Block)
	m.RegisterModule("stochastic_depth", &m.StochasticDepth)
	return m
}

// Forward runs the block.
func (m *CNBlock) Forward(x *nn.Tensor) *nn.Tensor {
	y := x
	for i := range m.Block.Len() {
		in := y
		if c, ok := m.Block.At(i).(*nn.Conv2d); ok {
			y = c.Forward(y)
		} else {
			y = m.Block.At(i).Forward(y)
		}
		if _, ok := m.Block.At(i).(*Permute); ok && i > 0 {
			// The depthwise convolution's and the last Linear's results
			// are read by the permute alone, which keeps nothing of
			// them: their memory goes to later results.
			nn.ReleaseUnsaved(in)
		}
	}
	if !inference(y, m.LayerScale) {
		s := m.LayerScale.Mul(y)
		d := s
		if m.StochasticDepth.Training() {
			// A product by the noise, which needs no gradient: s is not
			// kept for the backward pass.
			d = m.StochasticDepth.Forward(s)
			if d != s {
				nn.ReleaseUnsaved(s)
			}
		}
		out := d.Add(x)
		nn.ReleaseUnsaved(d) // an addition keeps neither operand
		return out
	}
	// y = layer_scale * y + x in one pass.
	n, c := y.Size(0), y.Size(1)
	hw := y.Numel() / (n * c)
	yd, xd, ls := y.Data(), x.Data(), m.LayerScale.Data()
	parallel(n*c, hw, func(lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			s := ls[nc%c]
			p, q := yd[nc*hw:(nc+1)*hw], xd[nc*hw:(nc+1)*hw]
			for j := range p {
				p[j] = s*p[j] + q[j]
			}
		}
	})
	return y
}

// Forward computes the class logits of x [N, 3, H, W].
func (m *ConvNeXt) Forward(x *nn.Tensor) *nn.Tensor {
	x = m.Features.Forward(x)
	x = m.Avgpool.Forward(x)
	return m.Classifier.Forward(x)
}

func (m *ConvNeXt) String() string { return nn.Repr(m) }
func (m *CNBlock) String() string  { return nn.Repr(m) }
