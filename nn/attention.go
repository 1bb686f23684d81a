package nn

import (
	"fmt"
	"math"
	"runtime"

	"github.com/ckptkit/ckpt/nn/internal/par"
	"github.com/ckptkit/ckpt/nn/internal/vec"
)

// ScaledDotProductAttention returns softmax(scale·q·kᵀ + bias)·v over the
// last two dimensions: q is [..., L, d], k [..., S, d], v [..., S, dv] with
// equal leading dimensions; bias (nil for none) broadcasts against the
// logits [..., L, S] (a relative position bias, a mask of -100s). scale is
// usually 1/sqrt(d). The result is [..., L, dv]; gradients reach q, k, v and
// bias. k is read transposed in place, with no copy.
func ScaledDotProductAttention(q, k, v, bias *Tensor, scale float32) *Tensor {
	logits := batchedMatMul(q, k, false, true, scale)
	if bias != nil {
		logits = logits.Add(bias)
	}
	var p *Tensor
	if needGrad(logits) {
		p = logits.Softmax(-1)
	} else {
		p = softmaxRowsInPlace(logits)
	}
	return BatchedMatMul(p, v, false, false)
}

// softmaxRowsMin is the element count below which softmaxRowsInPlace stays on
// one goroutine.
const softmaxRowsMin = 1 << 15

// softmaxRowsInPlace overwrites x (an intermediate result no graph refers
// to) with its softmax over the last dimension, rows spread over GOMAXPROCS
// goroutines. exp is vec.Exp's, as torch's vectorised CPU kernel computes
// it; each row's sum is accumulated in float64.
func softmaxRowsInPlace(x *Tensor) *Tensor {
	n := x.shape[x.Dim()-1]
	if n == 0 {
		return x
	}
	rows := len(x.data) / n
	d := x.data
	each := func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := d[r*n : (r+1)*n]
			m := float32(math.Inf(-1))
			for _, v := range row {
				m = max(m, v)
			}
			for j := range row {
				row[j] -= m
			}
			vec.Exp(row)
			s := 0.0
			for _, v := range row {
				s += float64(v)
			}
			vec.Scale(row, float32(1/s))
			flushSubnormal(row)
		}
	}
	workers := min(runtime.GOMAXPROCS(0), rows)
	if workers <= 1 || len(d) < softmaxRowsMin {
		each(0, rows)
		return x
	}
	par.Do(workers, func(i int) { each(i*rows/workers, (i+1)*rows/workers) })
	return x
}

// MultiheadAttention is torch.nn.MultiheadAttention with equal query, key
// and value sizes (no kdim/vdim, no bias_k/bias_v, no dropout in eval), in
// torch's packed layout: in_proj_weight [3E, E] holds the query, key and
// value projections one after the other, in_proj_bias [3E] their biases,
// and out_proj is the output projection (printed as
// NonDynamicallyQuantizableLinear, as torch does).
type MultiheadAttention struct {
	Base
	EmbedDim, NumHeads int
	// BatchFirst means inputs are [N, L, E] rather than [L, N, E].
	BatchFirst bool
	// Dropout is the attention dropout probability (training mode only).
	Dropout                  float64
	InProjWeight, InProjBias *Tensor
	OutProj                  *NonDynamicallyQuantizableLinear
}

// NonDynamicallyQuantizableLinear is the Linear subclass torch uses for
// MultiheadAttention's out_proj; it differs from Linear only in its printed
// name.
type NonDynamicallyQuantizableLinear struct{ *Linear }

// String returns torch's repr of the module.
func (m *NonDynamicallyQuantizableLinear) String() string { return Repr(m) }

// NewMultiheadAttention builds torch.nn.MultiheadAttention(embedDim,
// numHeads, dropout=dropout, batch_first=batchFirst) with biases, taking
// in_proj_weight, in_proj_bias and out_proj from b (nil: torch's
// initialisation, xavier_uniform in_proj_weight and zero biases).
func NewMultiheadAttention(b *Builder, embedDim, numHeads int, dropout float64, batchFirst bool) *MultiheadAttention {
	if numHeads <= 0 || embedDim%numHeads != 0 {
		panic(fmt.Sprintf("nn: MultiheadAttention: embed_dim %d must be divisible by num_heads %d", embedDim, numHeads))
	}
	m := &MultiheadAttention{EmbedDim: embedDim, NumHeads: numHeads, BatchFirst: batchFirst, Dropout: dropout}
	bound := math.Sqrt(6 / float64(embedDim+3*embedDim))
	m.InProjWeight = b.Tensor("in_proj_weight", []int{3 * embedDim, embedDim}, uniformInit(bound))
	m.InProjBias = b.Tensor("in_proj_bias", []int{3 * embedDim}, nil)
	m.OutProj = &NonDynamicallyQuantizableLinear{NewLinear(b.Sub("out_proj"), embedDim, embedDim, true)}
	if b == nil || b.src == nil {
		for i := range m.OutProj.Bias.data {
			m.OutProj.Bias.data[i] = 0
		}
	}
	m.RegisterParameter("in_proj_weight", &m.InProjWeight)
	m.RegisterParameter("in_proj_bias", &m.InProjBias)
	m.RegisterModule("out_proj", &m.OutProj)
	return m
}

// Forward is self-attention: Attend(x, x, x).
func (m *MultiheadAttention) Forward(x *Tensor) *Tensor { return m.Attend(x, x, x) }

// Attend returns the attention output for query, key and value ([N, L, E]
// when BatchFirst, else [L, N, E]; key and value of one length S), without
// the attention weights (torch's need_weights=False).
func (m *MultiheadAttention) Attend(query, key, value *Tensor) *Tensor {
	e, h := m.EmbedDim, m.NumHeads
	for _, t := range []*Tensor{query, key, value} {
		if t.Dim() != 3 || t.shape[2] != e {
			shapeErr("MultiheadAttention", fmt.Sprintf("want 3-dimensional inputs of %d features", e), t.shape)
		}
	}
	if !m.BatchFirst {
		query, key, value = query.Transpose(0, 1), key.Transpose(0, 1), value.Transpose(0, 1)
	}
	n, l, s := query.shape[0], query.shape[1], key.shape[1]
	d := e / h
	scale := float32(1 / math.Sqrt(float64(d)))
	if query == key && key == value && !(m.Training() && m.Dropout > 0) {
		out := SelfAttentionPacked(LinearFn(query, m.InProjWeight, m.InProjBias), h, nil, scale)
		out = m.OutProj.Forward(out)
		if !m.BatchFirst {
			out = out.Transpose(0, 1)
		}
		return out
	}
	var q, k, v *Tensor
	if query == key && key == value {
		qkv := LinearFn(query, m.InProjWeight, m.InProjBias).Reshape(n, l, 3, h, d).Permute(2, 0, 3, 1, 4)
		q, k, v = qkv.Narrow(0, 0, 1), qkv.Narrow(0, 1, 1), qkv.Narrow(0, 2, 1)
	} else {
		w, b := m.InProjWeight, m.InProjBias
		proj := func(x *Tensor, i, len int) *Tensor {
			return LinearFn(x, w.Narrow(0, i*e, e), b.Narrow(0, i*e, e)).Reshape(n, len, h, d).Permute(0, 2, 1, 3)
		}
		q, k, v = proj(query, 0, l), proj(key, 1, s), proj(value, 2, s)
	}
	q, k, v = q.Reshape(n, h, l, d), k.Reshape(n, h, s, d), v.Reshape(n, h, s, d)
	var out *Tensor
	if m.Training() && m.Dropout > 0 {
		logits := BatchedMatMul(q, k, false, true).MulScalar(scale)
		out = BatchedMatMul(logits.Softmax(-1).Dropout(m.Dropout, true), v, false, false)
	} else {
		out = ScaledDotProductAttention(q, k, v, nil, scale)
	}
	out = m.OutProj.Forward(out.Permute(0, 2, 1, 3).Reshape(n, l, e))
	if !m.BatchFirst {
		out = out.Transpose(0, 1)
	}
	return out
}

// String returns torch's repr of the module.
func (m *MultiheadAttention) String() string { return Repr(m) }
