package nn

import (
	"github.com/ckptkit/ckpt/nn/gemm"
	"github.com/ckptkit/ckpt/nn/internal/vec"
)

// This file is the inference engine's part for fully connected layers: in
// an [Infer] call of a [Prepare]d module, [LinearFn] (and so [Linear],
// MultiheadAttention's projections and the transformers' MLPs) multiplies
// by the weight packed once per plan (gemm.PackedB) instead of gathering
// its transpose on every call, with the bias and an activation applied in
// the product's epilogue while each block of the output is in cache. The
// invalidation rule is the convolutions' (see Prepare): the plan's packed
// copies are dropped when paramsVersion moves, and an entry is keyed by
// its weight and bias tensors, so a replaced tensor is packed anew.

// linKey names a prepared Linear by its weight and bias tensors.
type linKey struct{ w, b *Tensor }

// linPrep is one prepared Linear: Wᵀ [in, out] packed, and its bias.
type linPrep struct {
	packed *gemm.PackedB
	bias   []float32 // nil for none
}

// linear returns the prepared form of the layer with weight w and bias b
// (nil for none), packing it on first use.
func (pl *plan) linear(w, b *Tensor) *linPrep {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.linears == nil {
		pl.linears = map[linKey]*linPrep{}
	}
	k := linKey{w, b}
	if e, ok := pl.linears[k]; ok {
		return e
	}
	out, in := w.shape[0], w.shape[1]
	e := &linPrep{packed: gemm.PackB(true, in, out, w.data, in)}
	if b != nil {
		e.bias = append([]float32(nil), b.data...)
	}
	pl.linears[k] = e
	return e
}

// forward computes act(x·Wᵀ + b) for x [rows, in] (the leading dimensions
// flattened) into a result of the given shape.
func (e *linPrep) forward(x *Tensor, shape []int, rows int, a vec.Act) *Tensor {
	out, in := e.packed.Cols(), e.packed.Rows()
	y := newResultData(shape, false, x)
	yd, bias := y.data, e.bias
	var epi gemm.Epilogue
	if bias != nil || a != vec.Identity {
		epi = func(i0, i1, j0, j1 int) {
			for i := i0; i < i1; i++ {
				row := yd[i*out+j0 : i*out+j1]
				if bias != nil {
					addBias(row, bias[j0:j1])
				}
				if a != vec.Identity {
					vec.Apply(row, a)
				}
			}
		}
	}
	e.packed.SgemmEpilogue(false, rows, x.data, in, yd, out, epi)
	return y
}

// addBias adds b to row elementwise (len(b) >= len(row)).
func addBias(row, b []float32) { vec.Add(row, b) }

// linearAct is LinearFn followed by the activation a: inside a prepared
// Infer call a is applied in the product's epilogue; otherwise after it.
// It reports false when it did not apply a (the caller must).
func linearAct(x, w, b *Tensor, a vec.Act) (*Tensor, bool) {
	if pl := planOf(x); pl != nil && !needGrad(x, w, b) {
		if y := linearPrepared(pl, x, w, b, a); y != nil {
			return y, true
		}
	}
	return LinearFn(x, w, b), a == vec.Identity
}

// linearPrepared runs LinearFn's product with w prepared in pl, or returns
// nil when the shapes are ones it leaves to LinearFn (which checks them).
func linearPrepared(pl *plan, x, w, b *Tensor, a vec.Act) *Tensor {
	if w.Dim() != 2 || x.Dim() < 1 || x.shape[x.Dim()-1] != w.shape[1] ||
		b != nil && (b.Dim() != 1 || b.shape[0] != w.shape[0]) {
		return nil
	}
	rows := len(x.data) / max(w.shape[1], 1)
	if rows == 0 || w.shape[0] == 0 || w.shape[1] == 0 {
		return nil
	}
	shape := append(append([]int(nil), x.shape[:x.Dim()-1]...), w.shape[0])
	return pl.linear(w, b).forward(x, shape, rows, a)
}

// LinearGELU returns gelu(x·wᵀ + b) with exact (erf) GELU, as
// LinearFn(x, w, b).GELU("none"): inside an [Infer] call of a [Prepare]d
// module the bias and the GELU are applied in the product's epilogue.
func LinearGELU(x, w, b *Tensor) *Tensor {
	y, done := linearAct(x, w, b, vec.GELU)
	if !done {
		y = y.GELU("none")
	}
	return y
}
