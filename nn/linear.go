package nn

import (
	"fmt"

	"github.com/ckptkit/ckpt/nn/gemm"
	"github.com/ckptkit/ckpt/nn/internal/vec"
)

// Linear applies y = x·Wᵀ + b over the last dimension of x, as torch.nn.Linear.
// Weight is [out_features, in_features], Bias [out_features] or nil.
type Linear struct {
	Base
	InFeatures, OutFeatures int
	Weight, Bias            *Tensor
}

// NewLinear builds a Linear layer, taking "weight" and "bias" from b (nil b:
// torch's default initialisation, U(-1/sqrt(in), 1/sqrt(in))).
func NewLinear(b *Builder, in, out int, bias bool) *Linear {
	m := &Linear{InFeatures: in, OutFeatures: out}
	bound := fanInBound(in)
	m.Weight = b.Tensor("weight", []int{out, in}, uniformInit(bound))
	if bias {
		m.Bias = b.Tensor("bias", []int{out}, uniformInit(bound))
	}
	m.RegisterParameter("weight", &m.Weight)
	m.RegisterParameter("bias", &m.Bias)
	return m
}

// Forward applies the layer to x [..., in_features].
func (m *Linear) Forward(x *Tensor) *Tensor {
	if a := x.arena; a != nil && a.tap == m {
		return a.capture(x, m.OutFeatures)
	}
	return LinearFn(x, m.Weight, m.Bias)
}

// ExtraRepr prints torch's "in_features=.., out_features=.., bias=..".
func (m *Linear) ExtraRepr() string {
	return fmt.Sprintf("in_features=%d, out_features=%d, bias=%s", m.InFeatures, m.OutFeatures, pyBool(m.Bias != nil))
}

// String returns torch's repr of the module.
func (m *Linear) String() string { return Repr(m) }

// LinearFn computes x·wᵀ + b for x [..., in], w [out, in], b [out] or nil.
func LinearFn(x, w, b *Tensor) *Tensor {
	if w.Dim() != 2 || x.Dim() < 1 || x.shape[x.Dim()-1] != w.shape[1] {
		shapeErr("Linear", "input features do not match weight", x.shape, w.shape)
	}
	out, in := w.shape[0], w.shape[1]
	if b != nil && (b.Dim() != 1 || b.shape[0] != out) {
		shapeErr("Linear", "bias does not match weight", w.shape, b.shape)
	}
	if pl := planOf(x); pl != nil && !needGrad(x, w, b) {
		if y := linearPrepared(pl, x, w, b, vec.Identity); y != nil {
			return y
		}
	}
	rows := 1
	for _, d := range x.shape[:x.Dim()-1] {
		rows *= d
	}
	shape := append(append([]int(nil), x.shape[:x.Dim()-1]...), out)
	// Every element is written, by the bias or the product, unless there
	// is neither.
	y := newResultData(shape, b == nil && in == 0, x, w)
	if rows > 0 && out > 0 {
		if b != nil {
			for r := range rows {
				copy(y.data[r*out:(r+1)*out], b.data)
			}
		}
		beta := float32(0)
		if b != nil {
			beta = 1
		}
		if in > 0 {
			gemm.Sgemm(false, true, rows, out, in, 1, x.data, in, w.data, in, beta, y.data, out)
		}
	}
	if !needGrad(x, w, b) {
		return y
	}
	return record(y, "AddmmBackward", []*Tensor{x, w, b}, func(g []float32) [][]float32 {
		var gx, gw, gb []float32
		if x.requiresGrad && rows > 0 && in > 0 && out > 0 {
			gx = gradBuf(len(x.data), false) // beta 0: every element is written
			gemm.Sgemm(false, false, rows, in, out, 1, g, out, w.data, in, 0, gx, in)
		} else if x.requiresGrad && rows > 0 && in > 0 {
			gx = make([]float32, len(x.data))
			if out > 0 {
				gemm.Sgemm(false, false, rows, in, out, 1, g, out, w.data, in, 0, gx, in)
			}
		} else if x.requiresGrad {
			gx = make([]float32, len(x.data))
		}
		if w.requiresGrad {
			gw = make([]float32, len(w.data))
			if rows > 0 && in > 0 && out > 0 {
				gemm.Sgemm(true, false, out, in, rows, 1, g, out, x.data, in, 0, gw, in)
			}
		}
		if b != nil && b.requiresGrad {
			// Column blocks split over threads, each column summed over
			// the rows in order, as on one.
			gb = make([]float32, out)
			parallelFor(out, rows*out, func(lo, hi int) {
				acc := make([]float64, hi-lo)
				for r := range rows {
					for j, v := range g[r*out+lo : r*out+hi] {
						acc[j] += float64(v)
					}
				}
				for j, v := range acc {
					gb[lo+j] = float32(v)
				}
			})
		}
		return [][]float32{gx, gw, gb}
	})
}
