package models

import (
	"fmt"
	"math"

	"github.com/ckptkit/ckpt/nn"
)

// VisionTransformer is torchvision.models.VisionTransformer (vit_b_16,
// vit_b_32, vit_l_16, vit_l_32, vit_h_14): the image cut into patches by a
// strided convolution, a class token prepended, a stack of pre-norm
// transformer encoder blocks, and a linear head on the class token.
type VisionTransformer struct {
	nn.Base
	ImageSize, PatchSize, HiddenDim int
	// ClassToken is the class_token parameter, [1, 1, hidden_dim].
	ClassToken *nn.Tensor
	ConvProj   *nn.Conv2d
	Encoder    *ViTEncoder
	Heads      *namedSequential
}

// ViTEncoder is torchvision's vision_transformer.Encoder: the position
// embedding added to the tokens, the encoder blocks and a final LayerNorm.
type ViTEncoder struct {
	nn.Base
	// PosEmbedding is the pos_embedding parameter, [1, seq_length, hidden_dim].
	PosEmbedding *nn.Tensor
	Dropout      *nn.Dropout
	Layers       *namedSequential
	LN           *nn.LayerNorm
}

// EncoderBlock is torchvision's vision_transformer.EncoderBlock:
// x + attention(ln_1(x)), then that plus mlp(ln_2(.)).
type EncoderBlock struct {
	nn.Base
	LN1           *nn.LayerNorm
	SelfAttention *nn.MultiheadAttention
	Dropout       *nn.Dropout
	LN2           *nn.LayerNorm
	MLP           *namedSequential
}

// vitArch is one of torchvision's ViT configurations.
type vitArch struct {
	patch, layers, heads, hidden, mlp int
}

// vitEps is the epsilon of every LayerNorm of the ViTs.
const vitEps = 1e-6

func init() {
	for _, a := range []struct {
		name string
		arch vitArch
	}{
		{"vit_b_16", vitArch{16, 12, 12, 768, 3072}},
		{"vit_b_32", vitArch{32, 12, 12, 768, 3072}},
		{"vit_l_16", vitArch{16, 24, 16, 1024, 4096}},
		{"vit_l_32", vitArch{32, 24, 16, 1024, 4096}},
		{"vit_h_14", vitArch{14, 32, 16, 1280, 5120}},
	} {
		arch := a.arch
		Register(Spec{Name: a.name, Classifier: "heads.head.weight",
			Build: func(cfg Config) (nn.Module, error) { return newViT(cfg, arch) }})
	}
}

// vitImageSize is the image size a ViT is built for: cfg.ImageSize, or,
// when that is zero, the size the weights' position embedding was trained at,
// or 224.
func vitImageSize(cfg Config, patch int) (int, error) {
	if cfg.ImageSize > 0 {
		return cfg.ImageSize, nil
	}
	if s, ok := cfg.Weights.StoredShape("encoder.pos_embedding"); ok && len(s) == 3 && s[1] > 1 {
		side := int(math.Round(math.Sqrt(float64(s[1] - 1))))
		if int64(side*side) != s[1]-1 {
			return 0, fmt.Errorf("models: vit: encoder.pos_embedding has %d positions, not 1 + a square", s[1])
		}
		return side * patch, nil
	}
	return 224, nil
}

func newViT(cfg Config, a vitArch) (*VisionTransformer, error) {
	size, err := vitImageSize(cfg, a.patch)
	if err != nil {
		return nil, err
	}
	if size%a.patch != 0 {
		return nil, fmt.Errorf("models: vit: image size %d is not a multiple of the patch size %d", size, a.patch)
	}
	b := cfg.Weights
	seq := (size/a.patch)*(size/a.patch) + 1
	d := a.hidden
	eb := b.Sub("encoder")
	layers := newNamedSequential("Sequential")
	lb := eb.Sub("layers")
	for i := range a.layers {
		name := fmt.Sprintf("encoder_layer_%d", i)
		layers.add(name, newEncoderBlock(lb.Sub(name), a.heads, d, a.mlp))
	}
	enc := &ViTEncoder{
		PosEmbedding: eb.Tensor("pos_embedding", []int{1, seq, d}, func(t *nn.Tensor) { nn.InitNormal(t, 0, 0.02, nil) }),
		Dropout:      nn.NewDropout(0, false),
		Layers:       layers,
		LN:           nn.NewLayerNorm(eb.Sub("ln"), []int{d}, nn.Eps(vitEps)),
	}
	enc.RegisterParameter("pos_embedding", &enc.PosEmbedding)
	enc.RegisterModule("dropout", &enc.Dropout)
	enc.RegisterModule("layers", &enc.Layers)
	enc.RegisterModule("ln", &enc.LN)
	heads := newNamedSequential("Sequential")
	heads.add("head", nn.NewLinear(b.Sub("heads").Sub("head"), d, cfg.numClasses(), true))
	m := &VisionTransformer{
		ImageSize: size, PatchSize: a.patch, HiddenDim: d,
		ClassToken: b.Tensor("class_token", []int{1, 1, d}, nil),
		ConvProj:   nn.NewConv2d(b.Sub("conv_proj"), 3, d, a.patch, nn.Stride(a.patch)),
		Encoder:    enc,
		Heads:      heads,
	}
	m.RegisterParameter("class_token", &m.ClassToken)
	m.RegisterModule("conv_proj", &m.ConvProj)
	m.RegisterModule("encoder", &m.Encoder)
	m.RegisterModule("heads", &m.Heads)
	return m, nil
}

// newMLP is torchvision.ops.MLP(in, [hidden, out], activation_layer=GELU,
// dropout=p) under typeName (ViT's MLPBlock is a subclass).
func newMLP(b *nn.Builder, typeName string, in, hidden, out int, p float64) *namedSequential {
	s := newNamedSequential(typeName)
	s.add("0", nn.NewLinear(b.Sub("0"), in, hidden, true))
	s.add("1", nn.NewGELU("none"))
	s.add("2", nn.NewDropout(p, false))
	s.add("3", nn.NewLinear(b.Sub("3"), hidden, out, true))
	s.add("4", nn.NewDropout(p, false))
	return s
}

func newEncoderBlock(b *nn.Builder, heads, d, mlp int) *EncoderBlock {
	m := &EncoderBlock{
		LN1:           nn.NewLayerNorm(b.Sub("ln_1"), []int{d}, nn.Eps(vitEps)),
		SelfAttention: nn.NewMultiheadAttention(b.Sub("self_attention"), d, heads, 0, true),
		Dropout:       nn.NewDropout(0, false),
		LN2:           nn.NewLayerNorm(b.Sub("ln_2"), []int{d}, nn.Eps(vitEps)),
		MLP:           newMLP(b.Sub("mlp"), "MLPBlock", d, mlp, d, 0),
	}
	m.RegisterModule("ln_1", &m.LN1)
	m.RegisterModule("self_attention", &m.SelfAttention)
	m.RegisterModule("dropout", &m.Dropout)
	m.RegisterModule("ln_2", &m.LN2)
	m.RegisterModule("mlp", &m.MLP)
	return m
}

// Forward runs the block on x [N, L, D].
func (m *EncoderBlock) Forward(x *nn.Tensor) *nn.Tensor {
	y := m.Dropout.Forward(m.SelfAttention.Forward(m.LN1.Forward(x)))
	y = addInPlace(y, x)
	return addInPlace(m.MLP.Forward(m.LN2.Forward(y)), y)
}

// Forward adds the position embedding to x [N, L, D] and runs the blocks
// and the final norm.
func (m *ViTEncoder) Forward(x *nn.Tensor) *nn.Tensor {
	x = m.Dropout.Forward(x.Add(m.PosEmbedding))
	return m.LN.Forward(m.Layers.Forward(x))
}

// Forward computes the class logits of x [N, 3, image_size, image_size].
func (m *VisionTransformer) Forward(x *nn.Tensor) *nn.Tensor {
	if x.Dim() != 4 || x.Size(2) != m.ImageSize || x.Size(3) != m.ImageSize {
		panic(&nn.ShapeError{Op: "VisionTransformer", Shape: [][]int{x.Shape()},
			Msg: fmt.Sprintf("want an image of %dx%d", m.ImageSize, m.ImageSize)})
	}
	n := x.Size(0)
	g := m.ImageSize / m.PatchSize
	x = m.ConvProj.Forward(x).Reshape(n, m.HiddenDim, g*g).Permute(0, 2, 1)
	tokens := make([]*nn.Tensor, 0, n)
	for range n {
		tokens = append(tokens, m.ClassToken)
	}
	x = nn.Cat([]*nn.Tensor{nn.Cat(tokens, 0), x}, 1)
	x = m.Encoder.Forward(x)
	x = x.Narrow(1, 0, 1).Reshape(n, m.HiddenDim)
	return m.Heads.Forward(x)
}

func (m *VisionTransformer) String() string { return nn.Repr(m) }
func (m *ViTEncoder) String() string        { return nn.Repr(m) }
func (m *EncoderBlock) String() string      { return nn.Repr(m) }

// TypeName is torchvision's class name.
func (m *ViTEncoder) TypeName() string { return "Encoder" }
