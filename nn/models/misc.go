package models

import (
	"math"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/internal/vec"
)

// This file holds the building blocks of torchvision.ops.misc and
// convnext.py that the mobile and modern families share:
// Conv2dNormActivation, SqueezeExcitation, Permute and LayerNorm2d, and the
// fused eval-mode passes they run on.

// actKind names an activation that can be applied in place in one pass.
type actKind int8

const (
	actNone actKind = iota
	actReLU
	actReLU6
	actHardswish
	actSiLU
	actHardsigmoid
	actSigmoid
)

// module returns the activation layer torchvision builds for k with its
// inplace argument.
func (k actKind) module(inplace bool) nn.Module {
	switch k {
	case actReLU:
		return nn.NewReLU(inplace)
	case actReLU6:
		return nn.NewReLU6(inplace)
	case actHardswish:
		return nn.NewHardswish(inplace)
	case actSiLU:
		return nn.NewSiLU(inplace)
	case actHardsigmoid:
		return nn.NewHardsigmoid(inplace)
	case actSigmoid:
		return nn.NewSigmoid()
	}
	return nil
}

// actOf reports which activation module m is, actNone when it is none of the
// fused ones.
func actOf(m nn.Module) (actKind, bool) {
	switch m.(type) {
	case *nn.ReLU:
		return actReLU, true
	case *nn.ReLU6:
		return actReLU6, true
	case *nn.Hardswish:
		return actHardswish, true
	case *nn.SiLU:
		return actSiLU, true
	case *nn.Hardsigmoid:
		return actHardsigmoid, true
	case *nn.Sigmoid:
		return actSigmoid, true
	}
	return actNone, false
}

// vecAct maps each actKind to its vector kernel.
var vecAct = [...]vec.Act{
	actNone:        vec.Identity,
	actReLU:        vec.ReLU,
	actReLU6:       vec.ReLU6,
	actHardswish:   vec.Hardswish,
	actSiLU:        vec.SiLU,
	actHardsigmoid: vec.Hardsigmoid,
	actSigmoid:     vec.Sigmoid,
}

// applyAct applies k to p in place, with torch's formulas.
func applyAct(p []float32, k actKind) { vec.Apply(p, vecAct[k]) }

// affineActInPlace applies eval-mode BatchNorm and then activation k to y
// [N, C, ...] in place, one pass per channel plane.
func affineActInPlace(y *nn.Tensor, bn *nn.BatchNorm2d, k actKind) {
	c := y.Size(1)
	n := y.Size(0)
	hw := y.Numel() / (n * c)
	d := y.Data()
	a := vecAct[k]
	parallel(n*c, hw, func(lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			scale, shift := bnAffine(bn, nc%c)
			vec.AffineApply(d[nc*hw:(nc+1)*hw], scale, shift, a)
		}
	})
}

// actInPlace applies k to x, overwriting it when no graph is recorded. x must
// be an intermediate result the caller owns.
func actInPlace(x *nn.Tensor, k actKind, m nn.Module) *nn.Tensor {
	if !inference(x) {
		return m.Forward(x)
	}
	d := x.Data()
	const chunk = 4096
	parallel((len(d)+chunk-1)/chunk, chunk, func(lo, hi int) {
		applyAct(d[lo*chunk:min(hi*chunk, len(d))], k)
	})
	return x
}

// addInPlace returns a + b for tensors of one shape, summing into a (which
// the caller owns) when no graph is recorded.
func addInPlace(a, b *nn.Tensor) *nn.Tensor {
	if !inference(a, b) {
		return a.Add(b)
	}
	ad, bd := a.Data(), b.Data()
	bd = bd[:len(ad)]
	const chunk = 4096
	parallel((len(ad)+chunk-1)/chunk, chunk, func(lo, hi int) {
		a, b := ad[lo*chunk:min(hi*chunk, len(ad))], bd[lo*chunk:min(hi*chunk, len(ad))]
		for i, v := range b {
			a[i] += v
		}
	})
	return a
}

// normKind selects the normalisation layer of a Conv2dNormActivation.
type normKind int8

const (
	normBN normKind = iota
	normNone
	normLayerNorm2d
)

// cna holds Conv2dNormActivation's arguments besides the channel counts and
// kernel size. The zero value is torchvision's default: stride 1, padding
// (k-1)/2*dilation, BatchNorm2d with torch's defaults, no activation.
type cna struct {
	stride, groups, dilation int
	padding                  *int
	norm                     normKind
	bnOpts                   []nn.Option // options of BatchNorm2d (Eps, Momentum)
	lnEps                    float64
	act                      actKind
	bias                     bool // a conv bias even with a norm layer (convnext's stem)
	typeName                 string
}

// ConvNormActivation is torchvision.ops.misc.Conv2dNormActivation: a
// Sequential of a Conv2d, an optional norm layer and an optional activation.
// Subclasses print their own name (regnet's SimpleStemIN). It runs as the
// nn.Sequential it embeds: with no graph to record, as one nn.ConvBNAct.
type ConvNormActivation struct {
	*nn.Sequential
	// OutChannels is the convolution's output channels.
	OutChannels int
	typeName    string
}

func newConvNormAct(b *nn.Builder, in, out, k int, o cna) *ConvNormActivation {
	stride, groups, dil := max(o.stride, 1), max(o.groups, 1), max(o.dilation, 1)
	pad := (k - 1) / 2 * dil
	if o.padding != nil {
		pad = *o.padding
	}
	opts := []nn.Option{nn.Stride(stride), nn.Padding(pad), nn.Dilation(dil), nn.Groups(groups)}
	if o.norm != normNone && !o.bias {
		opts = append(opts, nn.NoBias())
	}
	seq := nn.NewSequential(nn.NewConv2d(b.Sub("0"), in, out, k, opts...))
	switch o.norm {
	case normBN:
		seq.Append(nn.NewBatchNorm2d(b.Sub("1"), out, o.bnOpts...))
	case normLayerNorm2d:
		seq.Append(newLayerNorm2d(b.Sub("1"), out, o.lnEps))
	}
	if a := o.act.module(true); a != nil {
		seq.Append(a)
	}
	name := o.typeName
	if name == "" {
		name = "Conv2dNormActivation"
	}
	return &ConvNormActivation{Sequential: seq, OutChannels: out, typeName: name}
}

// TypeName returns torchvision's class name.
func (m *ConvNormActivation) TypeName() string { return m.typeName }

func (m *ConvNormActivation) String() string { return nn.Repr(m) }

// SqueezeExcitation is torchvision.ops.SqueezeExcitation: the input scaled
// per channel by scale_activation(fc2(activation(fc1(avgpool(x))))).
type SqueezeExcitation struct {
	nn.Base
	Avgpool         *nn.AdaptiveAvgPool2d
	FC1, FC2        *nn.Conv2d
	Activation      nn.Module
	ScaleActivation nn.Module
}

func newSqueezeExcitation(b *nn.Builder, in, squeeze int, act nn.Module, scale nn.Module) *SqueezeExcitation {
	m := &SqueezeExcitation{
		Avgpool:         nn.NewAdaptiveAvgPool2d(1),
		FC1:             nn.NewConv2d(b.Sub("fc1"), in, squeeze, 1),
		FC2:             nn.NewConv2d(b.Sub("fc2"), squeeze, in, 1),
		Activation:      act,
		ScaleActivation: scale,
	}
	m.RegisterModule("avgpool", &m.Avgpool)
	m.RegisterModule("fc1", &m.FC1)
	m.RegisterModule("fc2", &m.FC2)
	m.RegisterModule("activation", &m.Activation)
	m.RegisterModule("scale_activation", &m.ScaleActivation)
	return m
}

// Forward returns x scaled per channel.
func (m *SqueezeExcitation) Forward(x *nn.Tensor) *nn.Tensor { return m.scale(x, false) }

// ForwardOwned implements nn.OwnedForwarder: x is scaled in place when the
// chain owns it.
func (m *SqueezeExcitation) ForwardOwned(x *nn.Tensor, owned bool) (*nn.Tensor, bool) {
	return m.scale(x, owned), true
}

// scale computes the per-channel scale of x and applies it, in place when
// owned and no graph is recorded.
func (m *SqueezeExcitation) scale(x *nn.Tensor, owned bool) *nn.Tensor {
	s := m.Avgpool.Forward(x)
	s = m.FC1.Forward(s)
	if k, ok := actOf(m.Activation); ok {
		s = actInPlace(s, k, m.Activation)
	} else {
		s = m.Activation.Forward(s)
	}
	s = m.FC2.Forward(s)
	if k, ok := actOf(m.ScaleActivation); ok {
		s = actInPlace(s, k, m.ScaleActivation)
	} else {
		s = m.ScaleActivation.Forward(s)
	}
	if !owned || !inference(x, s) {
		return s.Mul(x)
	}
	n, c := x.Size(0), x.Size(1)
	hw := x.Numel() / (n * c)
	d, sd := x.Data(), s.Data()
	parallel(n*c, hw, func(lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			vec.Scale(d[nc*hw:(nc+1)*hw], sd[nc])
		}
	})
	return x
}

func (m *SqueezeExcitation) String() string { return nn.Repr(m) }

// Permute is torchvision.ops.misc.Permute: x with its dimensions reordered.
type Permute struct {
	nn.Base
	Dims []int
}

func newPermute(dims ...int) *Permute { return &Permute{Dims: dims} }

// Forward permutes x.
func (m *Permute) Forward(x *nn.Tensor) *nn.Tensor { return x.Permute(m.Dims...) }

func (m *Permute) String() string { return nn.Repr(m) }

// LayerNorm2d is torchvision's convnext LayerNorm2d: a LayerNorm over the
// channels of x [N, C, H, W] at each position.
type LayerNorm2d struct {
	*nn.LayerNorm
}

func newLayerNorm2d(b *nn.Builder, c int, eps float64) *LayerNorm2d {
	return &LayerNorm2d{nn.NewLayerNorm(b, []int{c}, nn.Eps(eps))}
}

// Forward normalises x over its channel dimension.
func (m *LayerNorm2d) Forward(x *nn.Tensor) *nn.Tensor {
	if !inference(x, m.Weight, m.Bias) {
		return m.LayerNorm.Forward(x.Permute(0, 2, 3, 1)).Permute(0, 3, 1, 2)
	}
	return channelNorm(x, m.Weight, m.Bias, m.Eps)
}

// TypeName returns torchvision's class name.
func (m *LayerNorm2d) TypeName() string { return "LayerNorm2d" }

func (m *LayerNorm2d) String() string { return nn.Repr(m) }

// channelNorm normalises x [N, C, ...] over C at each position, with
// per-channel weight and bias (either may be nil), into a new tensor.
func channelNorm(x, weight, bias *nn.Tensor, eps float64) *nn.Tensor {
	n, c := x.Size(0), x.Size(1)
	hw := x.Numel() / (n * c)
	out := nn.ZerosLike(x)
	xd, od := x.Data(), out.Data()
	var w, b []float32
	if weight != nil {
		w = weight.Data()
	}
	if bias != nil {
		b = bias.Data()
	}
	parallel(n, c*hw, func(lo, hi int) {
		mean := make([]float64, hw)
		m2 := make([]float64, hw)
		for i := lo; i < hi; i++ {
			xs, os := xd[i*c*hw:(i+1)*c*hw], od[i*c*hw:(i+1)*c*hw]
			clear(mean)
			clear(m2)
			for ch := range c {
				for j, v := range xs[ch*hw : (ch+1)*hw] {
					mean[j] += float64(v)
				}
			}
			for j := range mean {
				mean[j] /= float64(c)
			}
			for ch := range c {
				for j, v := range xs[ch*hw : (ch+1)*hw] {
					d := float64(v) - mean[j]
					m2[j] += d * d
				}
			}
			for j := range m2 {
				m2[j] = 1 / math.Sqrt(m2[j]/float64(c)+eps)
			}
			for ch := range c {
				wc, bc := float64(1), float64(0)
				if w != nil {
					wc = float64(w[ch])
				}
				if b != nil {
					bc = float64(b[ch])
				}
				o := os[ch*hw : (ch+1)*hw]
				for j, v := range xs[ch*hw : (ch+1)*hw] {
					o[j] = float32((float64(v)-mean[j])*m2[j]*wc + bc)
				}
			}
		}
	})
	return out
}
