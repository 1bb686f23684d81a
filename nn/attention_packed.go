package nn

import (
	"fmt"
	"sync"

	"github.com/ckptkit/ckpt/nn/gemm"
	"github.com/ckptkit/ckpt/nn/internal/vec"
)

// SelfAttentionPacked is multi-head self-attention on the packed output of
// an input projection: qkv is [B, L, 3·E], each token's query, key and value
// one after the other, each split into heads of E/heads features (the layout
// of MultiheadAttention's in_proj and of Swin's qkv Linear). It returns
// [B, L, E], head h's softmax(scale·q·kᵀ + bias)·v in features
// [h·E/heads, (h+1)·E/heads) of each token, which is what the output
// projection reads. bias (nil for none) is [G, heads, L, L] (or [heads, L,
// L] for G = 1): batch element i adds bias[i % G], as Swin's windows do
// with their shift masks (G windows per image).
//
// When no graph is recorded the heads are computed in place, with no
// transposed or permuted copies: each product reads q, k and v strided in
// qkv (k transposed by the GEMM's packing) and writes its head's columns of
// the result directly, the heads spread over the threads. Otherwise it is
// composed of the differentiable ops (Permute, [ScaledDotProductAttention]).
func SelfAttentionPacked(qkv *Tensor, heads int, bias *Tensor, scale float32) *Tensor {
	if qkv.Dim() != 3 || heads <= 0 || qkv.shape[2]%(3*heads) != 0 {
		shapeErr("SelfAttentionPacked", fmt.Sprintf("want [B, L, 3*E] with E divisible by %d heads", heads), qkv.shape)
	}
	b, l, e := qkv.shape[0], qkv.shape[1], qkv.shape[2]/3
	d := e / heads
	g := 1
	if bias != nil {
		switch {
		case bias.Dim() == 3 && sameShape(bias.shape, []int{heads, l, l}):
		case bias.Dim() == 4 && sameShape(bias.shape[1:], []int{heads, l, l}) && bias.shape[0] > 0 && b%bias.shape[0] == 0:
			g = bias.shape[0]
		default:
			shapeErr("SelfAttentionPacked", fmt.Sprintf("bias must be [G, %d, %d, %d] with G dividing the batch", heads, l, l), bias.shape)
		}
	}
	if needGrad(qkv, bias) {
		t := qkv.Reshape(b, l, 3, heads, d).Permute(2, 0, 3, 1, 4)
		part := func(i int) *Tensor { return t.Narrow(0, i, 1).Reshape(b/g, g, heads, l, d) }
		var bb *Tensor
		if bias != nil {
			bb = bias.Reshape(g, heads, l, l)
		}
		y := ScaledDotProductAttention(part(0), part(1), part(2), bb, scale)
		return y.Reshape(b, heads, l, d).Permute(0, 2, 1, 3).Reshape(b, l, e)
	}
	out := newResultData([]int{b, l, e}, false, qkv)
	if b == 0 || l == 0 || d == 0 {
		clear(out.data)
		return out
	}
	src, dst := qkv.data, out.data
	var bd []float32
	if bias != nil {
		bd = bias.data
	}
	tasks := b * heads
	parallelFor(tasks, tasks*l*l*d, func(lo, hi int) {
		sp := scoresPool.Get().(*attnScratch)
		if cap(sp.s) < l*l {
			sp.s = make([]float32, l*l)
		}
		s := sp.s[:l*l]
		for t := lo; t < hi; t++ {
			i, h := t/heads, t%heads
			base := i * l * 3 * e
			gemm.SgemmSmall(&sp.g, false, true, l, l, d, scale, src[base+h*d:], 3*e, src[base+e+h*d:], 3*e, 0, s, l)
			if bd != nil {
				off := ((i%g)*heads + h) * l * l
				addBias(s, bd[off:off+l*l])
			}
			softmaxRows(s, l)
			gemm.SgemmSmall(&sp.g, false, false, l, d, l, 1, s, l, src[base+2*e+h*d:], 3*e, 0, dst[i*l*e+h*d:], e)
		}
		scoresPool.Put(sp)
	})
	return out
}

// attnScratch is one goroutine's scratch in SelfAttentionPacked: the
// score matrix and the packed operands of its small products.
type attnScratch struct {
	s []float32
	g gemm.Small
}

// scoresPool holds the attnScratch of SelfAttentionPacked, one per
// goroutine at a time.
var scoresPool = sync.Pool{New: func() any { return new(attnScratch) }}

// softmaxRows overwrites each row of the matrix s (rows of l) with its
// softmax, as softmaxRow would, row by row. When every row's largest
// element is within 40 of the matrix's, the whole matrix is shifted by the
// matrix's largest element and exponentiated in one pass, then each row
// divided by its sum: softmax is the same for any shift of a row, and a
// row's largest exponential is then at least e⁻⁴⁰ ≈ 4e-18, a normal
// float32 with its full precision (terms that underflow are below
// 2⁻¹²⁶/4e-18 of the row's sum, far below float32's rounding). This saves
// the call overhead of two passes per row, which at Swin's 49 columns
// costs about as much as their arithmetic. Otherwise each row is done
// with its own maximum.
func softmaxRows(s []float32, l int) {
	if len(s) == 0 || l == 0 {
		return
	}
	rows := len(s) / l
	var hi, lo float32
	for r := range rows {
		m := vec.Max(s[r*l : (r+1)*l])
		if r == 0 || m > hi {
			hi = m
		}
		if r == 0 || m < lo {
			lo = m
		}
	}
	if !(hi-lo <= 40) {
		for r := range rows {
			softmaxRow(s[r*l : (r+1)*l])
		}
		return
	}
	vec.AffineApply(s, 1, -hi, vec.Identity)
	vec.Exp(s)
	for r := range rows {
		row := s[r*l : (r+1)*l]
		vec.Scale(row, 1/vec.Sum(row))
	}
	flushSubnormal(s)
}

// minNormal is the smallest positive normal float32, 2⁻¹²⁶.
const minNormal = 0x1p-126

// flushSubnormal sets the subnormal probabilities of p (all >= 0 or NaN) to
// zero. A masked logit (Swin's -100 for the tokens of another region of a
// shifted window) exponentiates to about e⁻¹⁰⁰ ≈ 4e-44, a subnormal, and
// every multiplication by a subnormal takes a microcode assist on x86 cores:
// the product of the probabilities by v then runs about 20 times slower than
// with normal values. A probability below 2⁻¹²⁶ next to a row sum of 1
// changes no output that float32 can show.
func flushSubnormal(p []float32) {
	for i, v := range p {
		if v < minNormal {
			p[i] = 0
		}
	}
}

// softmaxRow overwrites row with its softmax: exp is vec.Exp's, as torch's
// vectorised CPU kernel computes it; the max and the sum are vec's,
// several lanes at a time (the sum in float32: rows of attention scores are
// at most a few thousand long, a relative rounding of about 1e-7·sqrt(len)).
func softmaxRow(row []float32) {
	if len(row) == 0 {
		return
	}
	vec.AffineApply(row, 1, -vec.Max(row), vec.Identity)
	vec.Exp(row)
	vec.Scale(row, 1/vec.Sum(row))
	flushSubnormal(row)
}
