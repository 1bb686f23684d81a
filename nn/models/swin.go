package models

import (
	"fmt"
	"math"

	"github.com/ckptkit/ckpt/nn"
)

// SwinTransformer is torchvision.models.SwinTransformer (swin_t, swin_s,
// swin_b, and with V2 blocks swin_v2_t, swin_v2_s, swin_v2_b): a 4x4 patch
// embedding, stages of shifted-window attention blocks separated by patch
// merging, and a linear head on the pooled features. Activations run
// channels last, [N, H, W, C].
type SwinTransformer struct {
	nn.Base
	Features *nn.Sequential
	Norm     *nn.LayerNorm
	Permute  *Permute
	Avgpool  *nn.AdaptiveAvgPool2d
	Flatten  *nn.Flatten
	Head     *nn.Linear
}

// SwinBlock is torchvision's SwinTransformerBlock (V1: x + attn(norm1(x)),
// then + mlp(norm2(.))) or SwinTransformerBlockV2 (post-norm:
// x + norm1(attn(x)), then + norm2(mlp(.))).
type SwinBlock struct {
	nn.Base
	v2              bool
	Norm1           *nn.LayerNorm
	Attn            *ShiftedWindowAttention
	StochasticDepth *nn.StochasticDepth
	Norm2           *nn.LayerNorm
	MLP             *namedSequential
}

// ShiftedWindowAttention is torchvision's ShiftedWindowAttention (a learned
// relative position bias table) or ShiftedWindowAttentionV2 (cosine attention
// with a per-head logit scale, and a bias computed by a small MLP from log-
// spaced relative coordinates).
type ShiftedWindowAttention struct {
	nn.Base
	v2                        bool
	WindowSize                [2]int
	ShiftSize                 [2]int
	NumHeads                  int
	QKV, Proj                 *nn.Linear
	RelativePositionBiasTable *nn.Tensor      // V1: [(2wh-1)(2ww-1), heads]
	LogitScale                *nn.Tensor      // V2: [heads, 1, 1]
	RelativeCoordsTable       *nn.Tensor      // V2: [1, 2wh-1, 2ww-1, 2]
	RelativePositionIndex     *nn.Int64Tensor // [(wh*ww)²]
	CPBMLP                    *nn.Sequential  // V2
}

// PatchMerging is torchvision's PatchMerging (LayerNorm then Linear) or
// PatchMergingV2 (Linear then LayerNorm): each 2x2 patch's four vectors
// concatenated and projected to twice the channels.
type PatchMerging struct {
	nn.Base
	v2        bool
	Reduction *nn.Linear
	Norm      *nn.LayerNorm
}

type swinArch struct {
	embed  int
	depths []int
	heads  []int
	window int
	sdProb float64
	v2     bool
}

func init() {
	for _, a := range []struct {
		name string
		arch swinArch
	}{
		{"swin_t", swinArch{96, []int{2, 2, 6, 2}, []int{3, 6, 12, 24}, 7, 0.2, false}},
		{"swin_s", swinArch{96, []int{2, 2, 18, 2}, []int{3, 6, 12, 24}, 7, 0.3, false}},
		{"swin_b", swinArch{128, []int{2, 2, 18, 2}, []int{4, 8, 16, 32}, 7, 0.5, false}},
		{"swin_v2_t", swinArch{96, []int{2, 2, 6, 2}, []int{3, 6, 12, 24}, 8, 0.2, true}},
		{"swin_v2_s", swinArch{96, []int{2, 2, 18, 2}, []int{3, 6, 12, 24}, 8, 0.3, true}},
		{"swin_v2_b", swinArch{128, []int{2, 2, 18, 2}, []int{4, 8, 16, 32}, 8, 0.5, true}},
	} {
		arch := a.arch
		Register(Spec{Name: a.name, Classifier: "head.weight",
			Build: func(cfg Config) (nn.Module, error) { return newSwin(cfg, arch) }})
	}
}

func newSwin(cfg Config, a swinArch) (*SwinTransformer, error) {
	if len(a.depths) == 0 || len(a.depths) != len(a.heads) {
		return nil, fmt.Errorf("models: swin: %d depths for %d head counts", len(a.depths), len(a.heads))
	}
	b := cfg.Weights
	fb := b.Sub("features")
	e := a.embed
	stem := fb.Sub("0")
	features := nn.NewSequential(nn.NewSequential(
		nn.NewConv2d(stem.Sub("0"), 3, e, 4, nn.Stride(4)),
		newPermute(0, 2, 3, 1),
		nn.NewLayerNorm(stem.Sub("2"), []int{e})))
	total := 0
	for _, d := range a.depths {
		total += d
	}
	id := 0
	for s, depth := range a.depths {
		dim := e << s
		sb := fb.Sub(fmt.Sprint(features.Len()))
		stage := nn.NewSequential()
		for i := range depth {
			sd := a.sdProb * float64(id) / float64(total-1)
			shift := 0
			if i%2 == 1 {
				shift = a.window / 2
			}
			stage.Append(newSwinBlock(sb.Sub(fmt.Sprint(i)), dim, a.heads[s], a.window, shift, sd, a.v2))
			id++
		}
		features.Append(stage)
		if s < len(a.depths)-1 {
			features.Append(newPatchMerging(fb.Sub(fmt.Sprint(features.Len())), dim, a.v2))
		}
	}
	nf := e << (len(a.depths) - 1)
	m := &SwinTransformer{
		Features: features,
		Norm:     nn.NewLayerNorm(b.Sub("norm"), []int{nf}),
		Permute:  newPermute(0, 3, 1, 2),
		Avgpool:  nn.NewAdaptiveAvgPool2d(1),
		Flatten:  nn.NewFlatten(1, -1),
		Head:     nn.NewLinear(b.Sub("head"), nf, cfg.numClasses(), true),
	}
	m.RegisterModule("features", &m.Features)
	m.RegisterModule("norm", &m.Norm)
	m.RegisterModule("permute", &m.Permute)
	m.RegisterModule("avgpool", &m.Avgpool)
	m.RegisterModule("flatten", &m.Flatten)
	m.RegisterModule("head", &m.Head)
	return m, nil
}

func newSwinBlock(b *nn.Builder, dim, heads, window, shift int, sd float64, v2 bool) *SwinBlock {
	m := &SwinBlock{
		v2:              v2,
		Norm1:           nn.NewLayerNorm(b.Sub("norm1"), []int{dim}),
		Attn:            newShiftedWindowAttention(b.Sub("attn"), dim, window, shift, heads, v2),
		StochasticDepth: nn.NewStochasticDepth(sd, "row"),
		Norm2:           nn.NewLayerNorm(b.Sub("norm2"), []int{dim}),
		MLP:             newMLP(b.Sub("mlp"), "MLP", dim, 4*dim, dim, 0),
	}
	m.RegisterModule("norm1", &m.Norm1)
	m.RegisterModule("attn", &m.Attn)
	m.RegisterModule("stochastic_depth", &m.StochasticDepth)
	m.RegisterModule("norm2", &m.Norm2)
	m.RegisterModule("mlp", &m.MLP)
	return m
}

// Forward runs the block on x [N, H, W, C].
func (m *SwinBlock) Forward(x *nn.Tensor) *nn.Tensor {
	if m.v2 {
		x = addInPlace(m.StochasticDepth.Forward(m.Norm1.Forward(m.Attn.Forward(x))), x)
		return addInPlace(m.StochasticDepth.Forward(m.Norm2.Forward(m.MLP.Forward(x))), x)
	}
	x = addInPlace(m.StochasticDepth.Forward(m.Attn.Forward(m.Norm1.Forward(x))), x)
	return addInPlace(m.StochasticDepth.Forward(m.MLP.Forward(m.Norm2.Forward(x))), x)
}

// relativeCoordsTable is Swin V2's relative_coords_table for a window:
// sign(c)·log2(|c|+1)/3 of the relative coordinates scaled to [-8, 8].
func relativeCoordsTable(wh, ww int) []float32 {
	out := make([]float32, 0, (2*wh-1)*(2*ww-1)*2)
	f := func(v, w int) float32 {
		c := float32(v) / float32(w-1) * 8
		s := float32(0)
		switch {
		case c > 0:
			s = 1
		case c < 0:
			s = -1
		}
		return s * float32(math.Log2(math.Abs(float64(c))+1)) / 3
	}
	for i := -(wh - 1); i < wh; i++ {
		for j := -(ww - 1); j < ww; j++ {
			out = append(out, f(i, wh), f(j, ww))
		}
	}
	return out
}

func newShiftedWindowAttention(b *nn.Builder, dim, window, shift, heads int, v2 bool) *ShiftedWindowAttention {
	m := &ShiftedWindowAttention{v2: v2, WindowSize: [2]int{window, window}, ShiftSize: [2]int{shift, shift}, NumHeads: heads}
	m.QKV = nn.NewLinear(b.Sub("qkv"), dim, 3*dim, true)
	m.Proj = nn.NewLinear(b.Sub("proj"), dim, dim, true)
	t := (2*window - 1) * (2*window - 1)
	if v2 {
		m.LogitScale = b.Tensor("logit_scale", []int{heads, 1, 1}, func(t *nn.Tensor) { nn.InitConstant(t, math.Log(10)) })
		m.RelativeCoordsTable = b.Tensor("relative_coords_table", []int{1, 2*window - 1, 2*window - 1, 2}, func(t *nn.Tensor) {
			copy(t.Data(), relativeCoordsTable(window, window))
		})
		cb := b.Sub("cpb_mlp")
		m.CPBMLP = nn.NewSequential(nn.NewLinear(cb.Sub("0"), 2, 512, true), nn.NewReLU(true), nn.NewLinear(cb.Sub("2"), 512, heads, false))
	} else {
		m.RelativePositionBiasTable = b.Tensor("relative_position_bias_table", []int{t, heads}, func(t *nn.Tensor) {
			nn.InitTruncNormal(t, 0, 0.02, -2, 2, nil)
		})
	}
	n := window * window
	m.RelativePositionIndex = b.Int64Tensor("relative_position_index", nn.NewInt64Tensor(nn.RelativePositionIndex(window, window), n*n))
	m.RegisterParameter("relative_position_bias_table", &m.RelativePositionBiasTable)
	m.RegisterParameter("logit_scale", &m.LogitScale)
	m.RegisterBuffer("relative_coords_table", &m.RelativeCoordsTable, true)
	m.RegisterInt64TensorBuffer("relative_position_index", &m.RelativePositionIndex)
	m.RegisterModule("qkv", &m.QKV)
	m.RegisterModule("proj", &m.Proj)
	m.RegisterModule("cpb_mlp", &m.CPBMLP)
	return m
}

// positionBias returns the per-head relative position bias [heads, N, N].
func (m *ShiftedWindowAttention) positionBias() *nn.Tensor {
	n := m.WindowSize[0] * m.WindowSize[1]
	if !m.v2 {
		return nn.RelativePositionBias(m.RelativePositionBiasTable, m.RelativePositionIndex.Data, n)
	}
	table := m.CPBMLP.Forward(m.RelativeCoordsTable).Reshape(-1, m.NumHeads)
	return nn.RelativePositionBias(table, m.RelativePositionIndex.Data, n).Sigmoid().MulScalar(16)
}

// shiftMask is the attention mask of shifted windows: for each of the
// windows of a padded ph×pw map rolled by the shift, -100 between tokens
// that came from different regions, 0 within one. The result is
// [1, windows, 1, N, N], to add to logits [B, windows, heads, N, N].
func shiftMask(ph, pw int, win, shift [2]int) *nn.Tensor {
	label := make([]int, ph*pw)
	region := func(i, size, w, s int) int {
		switch {
		case i < size-w:
			return 0
		case i < size-s:
			return 1
		}
		return 2
	}
	for y := range ph {
		for x := range pw {
			label[y*pw+x] = region(y, ph, win[0], shift[0])*3 + region(x, pw, win[1], shift[1])
		}
	}
	nwh, nww := ph/win[0], pw/win[1]
	n := win[0] * win[1]
	mask := nn.Zeros(1, nwh*nww, 1, n, n)
	d := mask.Data()
	tok := make([]int, n)
	for wy := range nwh {
		for wx := range nww {
			for i := range n {
				tok[i] = label[(wy*win[0]+i/win[1])*pw+wx*win[1]+i%win[1]]
			}
			base := (wy*nww + wx) * n * n
			for i := range n {
				for j := range n {
					if tok[i] != tok[j] {
						d[base+i*n+j] = -100
					}
				}
			}
		}
	}
	return mask
}

// Forward is torchvision's shifted_window_attention on x [B, H, W, C].
func (m *ShiftedWindowAttention) Forward(x *nn.Tensor) *nn.Tensor {
	h, w, c := x.Size(1), x.Size(2), x.Size(3)
	win := m.WindowSize
	padR := (win[1] - w%win[1]) % win[1]
	padB := (win[0] - h%win[0]) % win[0]
	if padR > 0 || padB > 0 {
		x = x.Pad(0, 0, 0, padR, 0, padB)
	}
	ph, pw := h+padB, w+padR
	shift := m.ShiftSize
	if win[0] >= ph {
		shift[0] = 0
	}
	if win[1] >= pw {
		shift[1] = 0
	}
	shifted := shift[0]+shift[1] > 0
	nw := (ph / win[0]) * (pw / win[1])
	// Rolled by -shift and cut into windows, [B*nW, N, C], in one pass.
	x = nn.WindowPartitionShifted(x, win[0], win[1], shift[0], shift[1])
	bw, n := x.Size(0), x.Size(1)
	heads := m.NumHeads
	hd := c / heads
	qkvBias := m.QKV.Bias
	if m.v2 && qkvBias != nil {
		// V2 ignores the key's bias (torchvision zeroes it in a copy).
		keep := nn.Ones(3 * c)
		for i := c; i < 2*c; i++ {
			keep.Data()[i] = 0
		}
		qkvBias = qkvBias.Mul(keep)
	}
	scale := float32(math.Pow(float64(hd), -0.5))
	if !m.v2 {
		// q, k and v read in place from the projection's output, the
		// windows' position bias (and shift mask) added by window.
		bias := m.positionBias()
		if shifted {
			bias = bias.Reshape(1, heads, n, n).Add(shiftMask(ph, pw, win, shift).Reshape(nw, 1, n, n))
		}
		x = nn.SelfAttentionPacked(nn.LinearFn(x, m.QKV.Weight, qkvBias), heads, bias, scale)
		return m.finish(x, h, w, ph, pw, padR, padB, shift)
	}
	packed := nn.LinearFn(x, m.QKV.Weight, qkvBias)
	ls := m.LogitScale.Clamp(-math.MaxFloat32, float32(math.Log(100))).Exp()
	bias := m.positionBias()
	if shifted {
		bias = bias.Reshape(1, heads, n, n).Add(shiftMask(ph, pw, win, shift).Reshape(nw, 1, n, n))
	}
	if !packed.RequiresGrad() && !ls.RequiresGrad() && !bias.RequiresGrad() {
		// Cosine attention on the packed path: q and k normalised in
		// place in the projection's output, q scaled by its head's logit
		// scale, then the heads read in place as V1's are.
		cosineQK(packed.Data(), c, heads, ls.Data())
		x = nn.SelfAttentionPacked(packed, heads, bias, 1)
		return m.finish(x, h, w, ph, pw, padR, padB, shift)
	}
	qkv := packed.Reshape(bw, n, 3, heads, hd).Permute(2, 0, 3, 1, 4)
	q := qkv.Narrow(0, 0, 1).Reshape(bw, heads, n, hd)
	k := qkv.Narrow(0, 1, 1).Reshape(bw, heads, n, hd)
	v := qkv.Narrow(0, 2, 1).Reshape(bw, heads, n, hd)
	if m.v2 {
		// Cosine attention: the per-head logit scale multiplies the
		// normalised queries, which scales each head's logits.
		q, k, scale = q.Normalize(1e-12).Mul(ls), k.Normalize(1e-12), 1
	}
	// Windows as [B, nW, heads, N, d], so that the position bias
	// [heads, N, N] and the shift mask [1, nW, 1, N, N] broadcast.
	bias = bias.Reshape(1, -1, heads, n, n)
	q, k, v = q.Reshape(bw/nw, nw, heads, n, hd), k.Reshape(bw/nw, nw, heads, n, hd), v.Reshape(bw/nw, nw, heads, n, hd)
	x = nn.ScaledDotProductAttention(q, k, v, bias, scale).Reshape(bw, heads, n, hd).Permute(0, 2, 1, 3).Reshape(bw, n, c)
	return m.finish(x, h, w, ph, pw, padR, padB, shift)
}

// cosineQK normalises, in qkv (tokens of [q | k | v], each c features in
// heads of c/heads), every head's query and key to unit length, as
// torch.nn.functional.normalize does (divided by max(‖x‖, 1e-12); the
// same arithmetic as nn.Tensor.Normalize), and multiplies each query by
// its head's logit scale ls[h], which scales that head's logits.
func cosineQK(qkv []float32, c, heads int, ls []float32) {
	hd := c / heads
	for t := 0; t+3*c <= len(qkv); t += 3 * c {
		for part := range 2 {
			for h := range heads {
				xs := qkv[t+part*c+h*hd : t+part*c+(h+1)*hd]
				s := 0.0
				for _, v := range xs {
					s += float64(v) * float64(v)
				}
				inv := 1 / math.Max(math.Sqrt(s), 1e-12)
				for j, v := range xs {
					xs[j] = float32(float64(v) * inv)
					if part == 0 {
						xs[j] *= ls[h]
					}
				}
			}
		}
	}
}

// finish projects the attention output x [B*nW, N, C] and puts the windows
// back into the map [B, h, w, C] (unrolled, unpadded).
func (m *ShiftedWindowAttention) finish(x *nn.Tensor, h, w, ph, pw, padR, padB int, shift [2]int) *nn.Tensor {
	win := m.WindowSize
	x = m.Proj.Forward(x)
	x = nn.WindowReverseShifted(x, win[0], win[1], ph, pw, shift[0], shift[1])
	if padR > 0 || padB > 0 {
		x = x.Narrow(1, 0, h).Narrow(2, 0, w)
	}
	return x
}

func newPatchMerging(b *nn.Builder, dim int, v2 bool) *PatchMerging {
	nd := 4 * dim
	if v2 {
		nd = 2 * dim
	}
	m := &PatchMerging{
		v2:        v2,
		Reduction: nn.NewLinear(b.Sub("reduction"), 4*dim, 2*dim, false),
		Norm:      nn.NewLayerNorm(b.Sub("norm"), []int{nd}),
	}
	m.RegisterModule("reduction", &m.Reduction)
	m.RegisterModule("norm", &m.Norm)
	return m
}

// Forward merges 2x2 patches of x [N, H, W, C] (padding odd sizes) into
// [N, ceil(H/2), ceil(W/2), 2C].
func (m *PatchMerging) Forward(x *nn.Tensor) *nn.Tensor {
	h, w, c := x.Size(1), x.Size(2), x.Size(3)
	x = x.Pad(0, 0, 0, w%2, 0, h%2)
	n, ph, pw := x.Size(0), x.Size(1), x.Size(2)
	// torchvision concatenates x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2],
	// x[1::2, 1::2]: the column parity is the outer index, the row's inner.
	x = x.Reshape(n, ph/2, 2, pw/2, 2, c).Permute(0, 1, 3, 4, 2, 5).Reshape(n, ph/2, pw/2, 4*c)
	if m.v2 {
		return m.Norm.Forward(m.Reduction.Forward(x))
	}
	return m.Reduction.Forward(m.Norm.Forward(x))
}

// Forward computes the class logits of x [N, 3, H, W].
func (m *SwinTransformer) Forward(x *nn.Tensor) *nn.Tensor {
	stem := m.Features.At(0).(*nn.Sequential)
	x = stem.At(0).(*nn.Conv2d).Forward(x)
	x = stem.At(2).Forward(stem.At(1).Forward(x))
	for i := 1; i < m.Features.Len(); i++ {
		x = m.Features.At(i).Forward(x)
	}
	x = m.Permute.Forward(m.Norm.Forward(x))
	return m.Head.Forward(m.Flatten.Forward(m.Avgpool.Forward(x)))
}

func (m *SwinTransformer) String() string        { return nn.Repr(m) }
func (m *SwinBlock) String() string              { return nn.Repr(m) }
func (m *ShiftedWindowAttention) String() string { return nn.Repr(m) }
func (m *PatchMerging) String() string           { return nn.Repr(m) }

// TypeName is torchvision's class name.
func (m *SwinBlock) TypeName() string {
	if m.v2 {
		return "SwinTransformerBlockV2"
	}
	return "SwinTransformerBlock"
}

// TypeName is torchvision's class name.
func (m *ShiftedWindowAttention) TypeName() string {
	if m.v2 {
		return "ShiftedWindowAttentionV2"
	}
	return "ShiftedWindowAttention"
}

// TypeName is torchvision's class name.
func (m *PatchMerging) TypeName() string {
	if m.v2 {
		return "PatchMergingV2"
	}
	return "PatchMerging"
}
