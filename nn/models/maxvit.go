package models

import (
	"fmt"
	"math"

	"github.com/ckptkit/ckpt/nn"
)

// MaxVit is torchvision.models.MaxVit (maxvit_t): a convolutional stem, then
// blocks of MaxViT layers (an MBConv, attention within 7x7 windows, and
// attention across a 7x7 grid), and a classifier on the pooled features.
type MaxVit struct {
	nn.Base
	Stem       *nn.Sequential
	Blocks     *nn.ModuleList
	Classifier *nn.Sequential
}

// MaxVitBlock is torchvision's MaxVitBlock: MaxViT layers, the first
// downsampling by two.
type MaxVitBlock struct {
	nn.Base
	Layers *nn.ModuleList
}

// MaxVitLayer is torchvision's MaxVitLayer: MBconv, window_attention and
// grid_attention in a Sequential.
type MaxVitLayer struct {
	nn.Base
	Layers *namedSequential
}

// MaxVitMBConv is MaxViT's MBConv (torchvision.models.maxvit.MBConv, not
// EfficientNet's): a pre-norm inverted bottleneck with squeeze-excitation,
// added to a projection of the input.
type MaxVitMBConv struct {
	nn.Base
	Proj            nn.Module // Identity, or [AvgPool2d,] Conv2d
	StochasticDepth nn.Module // Identity when its probability is 0
	Layers          *namedSequential
}

// PartitionAttentionLayer is torchvision's PartitionAttentionLayer: x
// partitioned into windows ("window") or a strided grid ("grid"), then
// x + attention(x) and x + mlp(x) over each partition's tokens.
type PartitionAttentionLayer struct {
	nn.Base
	grid              bool
	p, gh, gw         int
	PartitionOp       *WindowPartition
	DepartitionOp     *WindowDepartition
	PartitionSwap     nn.Module
	DepartitionSwap   nn.Module
	AttnLayer         *nn.Sequential
	MLPLayer          *nn.Sequential
	StochasticDropout *nn.StochasticDepth
}

// RelativePositionalMultiHeadAttention is MaxViT's attention over the P
// tokens of each partition, with a relative position bias table.
type RelativePositionalMultiHeadAttention struct {
	nn.Base
	NHeads, HeadDim, MaxSeqLen int
	ToQKV, Merge               *nn.Linear
	// RelativePositionBiasTable is [(2s-1)², heads] for s = sqrt(MaxSeqLen).
	RelativePositionBiasTable *nn.Tensor
	// RelativePositionIndex is [MaxSeqLen, MaxSeqLen].
	RelativePositionIndex *nn.Int64Tensor
	scale                 float32
}

// WindowPartition is MaxViT's WindowPartition module (no parameters; its
// owner passes the partition size).
type WindowPartition struct{ nn.Base }

// WindowDepartition is MaxViT's WindowDepartition module.
type WindowDepartition struct{ nn.Base }

// SwapAxes is MaxViT's SwapAxes(-2, -3).
type SwapAxes struct{ nn.Base }

// Forward swaps x's dimensions -2 and -3.
func (m *SwapAxes) Forward(x *nn.Tensor) *nn.Tensor { return x.Transpose(-2, -3) }

// Forward panics: the layer is called with its partition size by its owner.
func (m *WindowPartition) Forward(x *nn.Tensor) *nn.Tensor {
	panic("models: WindowPartition is run by PartitionAttentionLayer")
}

// Forward panics: the layer is called with its partition size by its owner.
func (m *WindowDepartition) Forward(x *nn.Tensor) *nn.Tensor {
	panic("models: WindowDepartition is run by PartitionAttentionLayer")
}

// maxvitBN is MaxViT's BatchNorm2d(eps=1e-3, momentum=0.99).
var maxvitBN = []nn.Option{nn.Eps(1e-3), nn.Momentum(0.99)}

type maxvitArch struct {
	stem          int
	channels      []int
	layers        []int
	headDim       int
	sdProb        float64
	partitionSize int
}

func init() {
	arch := maxvitArch{64, []int{64, 128, 256, 512}, []int{2, 2, 5, 2}, 32, 0.2, 7}
	Register(Spec{Name: "maxvit_t", Classifier: "classifier.5.weight",
		Build: func(cfg Config) (nn.Module, error) { return newMaxVit(cfg, arch) }})
}

// convOut is the output size of a 3x3 convolution of stride 2, padding 1.
func convOut(n int) int { return (n-3+2)/2 + 1 }

func newMaxVit(cfg Config, a maxvitArch) (*MaxVit, error) {
	size := cfg.ImageSize
	if size == 0 {
		size = 224
	}
	g := convOut(size)
	for i, s := 0, g; i < len(a.channels); i++ {
		s = convOut(s)
		if s%a.partitionSize != 0 {
			return nil, fmt.Errorf("models: maxvit: input size %d gives block %d a %dx%d input, not divisible by the partition size %d", size, i, s, s, a.partitionSize)
		}
	}
	b := cfg.Weights
	sb := b.Sub("stem")
	stem0 := newConvNormAct(sb.Sub("0"), 3, a.stem, 3, cna{stride: 2, bnOpts: maxvitBN})
	stem0.Append(nn.NewGELU("none"))
	stem := nn.NewSequential(stem0, newConvNormAct(sb.Sub("1"), a.stem, a.stem, 3, cna{norm: normNone, bias: true}))
	total := 0
	for _, n := range a.layers {
		total += n
	}
	// np.linspace(0, p, total): i*step with step = p/(total-1), the last exactly p.
	probs := make([]float64, total) // one layer: [0]
	for i := 1; i < total; i++ {
		probs[i] = float64(i) * (a.sdProb / float64(total-1))
	}
	if total > 1 {
		probs[total-1] = a.sdProb
	}
	blocks := nn.NewModuleList()
	bb := b.Sub("blocks")
	in, idx := a.stem, 0
	for i, out := range a.channels {
		g = convOut(g)
		blk := &MaxVitBlock{Layers: nn.NewModuleList()}
		lb := bb.Sub(fmt.Sprint(i)).Sub("layers")
		for j := range a.layers[i] {
			stride, cin := 1, out
			if j == 0 {
				stride, cin = 2, in
			}
			blk.Layers.Append(newMaxVitLayer(lb.Sub(fmt.Sprint(j)), cin, out, stride, a.headDim, a.partitionSize, g, probs[idx]))
			idx++
		}
		blk.RegisterModule("layers", &blk.Layers)
		blocks.Append(blk)
		in = out
	}
	last := a.channels[len(a.channels)-1]
	cb := b.Sub("classifier")
	m := &MaxVit{
		Stem:   stem,
		Blocks: blocks,
		Classifier: nn.NewSequential(
			nn.NewAdaptiveAvgPool2d(1),
			nn.NewFlatten(1, -1),
			nn.NewLayerNorm(cb.Sub("2"), []int{last}),
			nn.NewLinear(cb.Sub("3"), last, last, true),
			nn.NewTanh(),
			nn.NewLinear(cb.Sub("5"), last, cfg.numClasses(), false)),
	}
	m.RegisterModule("stem", &m.Stem)
	m.RegisterModule("blocks", &m.Blocks)
	m.RegisterModule("classifier", &m.Classifier)
	return m, nil
}

func newMaxVitLayer(b *nn.Builder, in, out, stride, headDim, partition, grid int, p float64) *MaxVitLayer {
	lb := b.Sub("layers")
	s := newNamedSequential("Sequential")
	s.add("MBconv", newMaxVitMBConv(lb.Sub("MBconv"), in, out, stride, p))
	s.add("window_attention", newPartitionAttention(lb.Sub("window_attention"), out, headDim, partition, false, grid, p))
	s.add("grid_attention", newPartitionAttention(lb.Sub("grid_attention"), out, headDim, partition, true, grid, p))
	m := &MaxVitLayer{Layers: s}
	m.RegisterModule("layers", &m.Layers)
	return m
}

func newMaxVitMBConv(b *nn.Builder, in, out, stride int, p float64) *MaxVitMBConv {
	m := &MaxVitMBConv{}
	if stride != 1 || in != out {
		pb := b.Sub("proj")
		if stride == 2 {
			m.Proj = nn.NewSequential(nn.NewAvgPool2d(3, nn.Stride(2), nn.Padding(1)), nn.NewConv2d(pb.Sub("1"), in, out, 1))
		} else {
			m.Proj = nn.NewSequential(nn.NewConv2d(pb.Sub("0"), in, out, 1))
		}
	} else {
		m.Proj = nn.NewIdentity()
	}
	if p != 0 {
		m.StochasticDepth = nn.NewStochasticDepth(p, "row")
	} else {
		m.StochasticDepth = nn.NewIdentity()
	}
	mid, sqz := out*4, out/4
	lb := b.Sub("layers")
	zero := 0
	l := newNamedSequential("Sequential")
	l.add("pre_norm", nn.NewBatchNorm2d(lb.Sub("pre_norm"), in, maxvitBN...))
	convA := newConvNormAct(lb.Sub("conv_a"), in, mid, 1, cna{padding: &zero, bnOpts: maxvitBN})
	convA.Append(nn.NewGELU("none"))
	l.add("conv_a", convA)
	convB := newConvNormAct(lb.Sub("conv_b"), mid, mid, 3, cna{stride: stride, groups: mid, bnOpts: maxvitBN})
	convB.Append(nn.NewGELU("none"))
	l.add("conv_b", convB)
	l.add("squeeze_excitation", newSqueezeExcitation(lb.Sub("squeeze_excitation"), mid, sqz, nn.NewSiLU(false), nn.NewSigmoid()))
	l.add("conv_c", nn.NewConv2d(lb.Sub("conv_c"), mid, out, 1))
	m.Layers = l
	m.RegisterModule("proj", &m.Proj)
	m.RegisterModule("stochastic_depth", &m.StochasticDepth)
	m.RegisterModule("layers", &m.Layers)
	return m
}

// Forward returns proj(x) + stochastic_depth(layers(x)).
func (m *MaxVitMBConv) Forward(x *nn.Tensor) *nn.Tensor {
	res := m.Proj.Forward(x)
	y := m.StochasticDepth.Forward(m.Layers.Forward(x))
	if res == x {
		return addInPlace(y, res)
	}
	return addInPlace(res, y)
}

func newPartitionAttention(b *nn.Builder, c, headDim, partition int, grid bool, gridSize int, p float64) *PartitionAttentionLayer {
	n := gridSize / partition
	m := &PartitionAttentionLayer{grid: grid, p: partition}
	if grid {
		m.p = n
	}
	m.gh, m.gw = gridSize/m.p, gridSize/m.p
	m.PartitionOp, m.DepartitionOp = &WindowPartition{}, &WindowDepartition{}
	if grid {
		m.PartitionSwap, m.DepartitionSwap = &SwapAxes{}, &SwapAxes{}
	} else {
		m.PartitionSwap, m.DepartitionSwap = nn.NewIdentity(), nn.NewIdentity()
	}
	ab, mb := b.Sub("attn_layer"), b.Sub("mlp_layer")
	m.AttnLayer = nn.NewSequential(
		nn.NewLayerNorm(ab.Sub("0"), []int{c}),
		newRelPosMHA(ab.Sub("1"), c, headDim, partition*partition),
		nn.NewDropout(0, false))
	m.MLPLayer = nn.NewSequential(
		nn.NewLayerNorm(mb.Sub("0"), []int{c}),
		nn.NewLinear(mb.Sub("1"), c, 4*c, true),
		nn.NewGELU("none"),
		nn.NewLinear(mb.Sub("3"), 4*c, c, true),
		nn.NewDropout(0, false))
	m.StochasticDropout = nn.NewStochasticDepth(p, "row")
	m.RegisterModule("partition_op", &m.PartitionOp)
	m.RegisterModule("departition_op", &m.DepartitionOp)
	m.RegisterModule("partition_swap", &m.PartitionSwap)
	m.RegisterModule("departition_swap", &m.DepartitionSwap)
	m.RegisterModule("attn_layer", &m.AttnLayer)
	m.RegisterModule("mlp_layer", &m.MLPLayer)
	m.RegisterModule("stochastic_dropout", &m.StochasticDropout)
	return m
}

// Forward runs attention and the MLP over the partitions of x [B, C, H, W].
func (m *PartitionAttentionLayer) Forward(x *nn.Tensor) *nn.Tensor {
	bsz, c, h, w := x.Size(0), x.Size(1), x.Size(2), x.Size(3)
	p := m.p
	if h%p != 0 || w%p != 0 || h/p != m.gh || w/p != m.gw {
		panic(&nn.ShapeError{Op: "PartitionAttentionLayer", Shape: [][]int{x.Shape()},
			Msg: fmt.Sprintf("want a %dx%d map", m.gh*p, m.gw*p)})
	}
	// WindowPartition: [B, C, H, W] -> [B, (H/P)(W/P), P*P, C].
	x = x.Reshape(bsz, c, h/p, p, w/p, p).Permute(0, 2, 4, 3, 5, 1).Reshape(bsz, (h/p)*(w/p), p*p, c)
	x = m.PartitionSwap.Forward(x)
	x = addInPlace(m.StochasticDropout.Forward(m.AttnLayer.Forward(x)), x)
	x = addInPlace(m.StochasticDropout.Forward(m.MLPLayer.Forward(x)), x)
	x = m.DepartitionSwap.Forward(x)
	// WindowDepartition: [B, HP*WP, P*P, C] -> [B, C, HP*P, WP*P].
	return x.Reshape(bsz, m.gh, m.gw, p, p, c).Permute(0, 5, 1, 3, 2, 4).Reshape(bsz, c, m.gh*p, m.gw*p)
}

// maxvitRelativeIndex is MaxViT's _get_relative_position_index for an s×s
// window: [s², s²].
func maxvitRelativeIndex(s int) *nn.Int64Tensor {
	return nn.NewInt64Tensor(nn.RelativePositionIndex(s, s), s*s, s*s)
}

func newRelPosMHA(b *nn.Builder, feat, headDim, maxSeq int) *RelativePositionalMultiHeadAttention {
	heads := feat / headDim
	size := int(math.Sqrt(float64(maxSeq)))
	m := &RelativePositionalMultiHeadAttention{NHeads: heads, HeadDim: headDim, MaxSeqLen: maxSeq,
		scale: float32(math.Pow(float64(feat), -0.5))}
	m.ToQKV = nn.NewLinear(b.Sub("to_qkv"), feat, heads*headDim*3, true)
	m.Merge = nn.NewLinear(b.Sub("merge"), heads*headDim, feat, true)
	m.RelativePositionBiasTable = b.Tensor("relative_position_bias_table", []int{(2*size - 1) * (2*size - 1), heads},
		func(t *nn.Tensor) { nn.InitTruncNormal(t, 0, 0.02, -2, 2, nil) })
	m.RelativePositionIndex = b.Int64Tensor("relative_position_index", maxvitRelativeIndex(size))
	m.RegisterParameter("relative_position_bias_table", &m.RelativePositionBiasTable)
	m.RegisterInt64TensorBuffer("relative_position_index", &m.RelativePositionIndex)
	m.RegisterModule("to_qkv", &m.ToQKV)
	m.RegisterModule("merge", &m.Merge)
	return m
}

// Forward runs attention over the P tokens of each group of x [B, G, P, D].
func (m *RelativePositionalMultiHeadAttention) Forward(x *nn.Tensor) *nn.Tensor {
	bsz, g, p, d := x.Size(0), x.Size(1), x.Size(2), x.Size(3)
	h, dh := m.NHeads, m.HeadDim
	qkv := m.ToQKV.Forward(x).Reshape(bsz*g, p, 3, h, dh).Permute(2, 0, 3, 1, 4)
	q := qkv.Narrow(0, 0, 1).Reshape(bsz*g, h, p, dh)
	k := qkv.Narrow(0, 1, 1).Reshape(bsz*g, h, p, dh).MulScalar(m.scale)
	v := qkv.Narrow(0, 2, 1).Reshape(bsz*g, h, p, dh)
	bias := nn.RelativePositionBias(m.RelativePositionBiasTable, m.RelativePositionIndex.Data, m.MaxSeqLen)
	out := nn.ScaledDotProductAttention(q, k, v, bias, 1)
	out = out.Permute(0, 2, 1, 3).Reshape(bsz, g, p, d)
	return m.Merge.Forward(out)
}

// Forward runs the layer's MBConv and its two attention layers.
func (m *MaxVitLayer) Forward(x *nn.Tensor) *nn.Tensor { return m.Layers.Forward(x) }

// Forward runs the block's layers.
func (m *MaxVitBlock) Forward(x *nn.Tensor) *nn.Tensor {
	for i := range m.Layers.Len() {
		x = m.Layers.At(i).Forward(x)
	}
	return x
}

// Forward computes the class logits of x [N, 3, H, W].
func (m *MaxVit) Forward(x *nn.Tensor) *nn.Tensor {
	x = m.Stem.Forward(x)
	for i := range m.Blocks.Len() {
		x = m.Blocks.At(i).Forward(x)
	}
	return m.Classifier.Forward(x)
}

func (m *MaxVit) String() string                               { return nn.Repr(m) }
func (m *MaxVitBlock) String() string                          { return nn.Repr(m) }
func (m *MaxVitLayer) String() string                          { return nn.Repr(m) }
func (m *MaxVitMBConv) String() string                         { return nn.Repr(m) }
func (m *PartitionAttentionLayer) String() string              { return nn.Repr(m) }
func (m *RelativePositionalMultiHeadAttention) String() string { return nn.Repr(m) }
func (m *WindowPartition) String() string                      { return nn.Repr(m) }
func (m *WindowDepartition) String() string                    { return nn.Repr(m) }
func (m *SwapAxes) String() string                             { return nn.Repr(m) }

// TypeName is torchvision's class name.
func (m *MaxVitMBConv) TypeName() string { return "MBConv" }
