package nn

import (
	"fmt"
	"math"
)

// Reduction says how a loss combines its per-element values, as torch's
// reduction argument. The zero value is ReduceMean, torch's default.
type Reduction int

const (
	// ReduceMean averages the per-element losses ("mean"); losses with class
	// weights divide by the total weight of the counted targets instead.
	ReduceMean Reduction = iota
	// ReduceSum adds the per-element losses ("sum").
	ReduceSum
	// ReduceNone returns the per-element losses ("none").
	ReduceNone
)

// String returns torch's name for r: "mean", "sum" or "none".
func (r Reduction) String() string {
	switch r {
	case ReduceMean:
		return "mean"
	case ReduceSum:
		return "sum"
	case ReduceNone:
		return "none"
	}
	return fmt.Sprintf("Reduction(%d)", int(r))
}

// ParseReduction returns the Reduction torch calls s ("mean", "sum" or
// "none").
func ParseReduction(s string) (Reduction, error) {
	switch s {
	case "mean":
		return ReduceMean, nil
	case "sum":
		return ReduceSum, nil
	case "none":
		return ReduceNone, nil
	}
	return 0, fmt.Errorf("nn: unknown reduction %q (want mean, sum or none)", s)
}

// DefaultIgnoreIndex is torch's ignore_index default (-100): a target equal
// to it contributes nothing to the loss or its gradient.
const DefaultIgnoreIndex = -100

// CrossEntropyLoss is torch.nn.CrossEntropyLoss: log_softmax over the class
// dimension (1, or 0 for an unbatched [C] input) followed by the negative
// log-likelihood of the targets.
//
// With class-index targets (Forward), row i of a [N, C] (or [N, C, d1, ...])
// input with target y_i and label smoothing ε contributes
//
//	l_i = (1-ε)·w[y_i]·(-logp[i,y_i]) + (ε/C)·Σ_c w[c]·(-logp[i,c])
//
// and nothing when y_i == IgnoreIndex (w is Weight, or all ones). As in
// torch 1.13, the mean divides both terms by Σ w[y_i] over the counted rows
// (their number when there is no Weight), not by the number of rows; a mean
// over no counted row is NaN.
//
// With probability targets (ForwardProbs, a target of the input's shape),
// l_i = -Σ_c w[c]·t'[i,c]·logp[i,c] with t' = (1-ε)·t + ε/C, and the mean
// divides by the number of rows whatever the weights; IgnoreIndex does not
// apply.
type CrossEntropyLoss struct {
	// Weight holds a rescaling weight per class ([C]), or nil.
	Weight *Tensor
	// IgnoreIndex is a target value that is skipped; NewCrossEntropyLoss
	// sets DefaultIgnoreIndex.
	IgnoreIndex int
	// Reduction combines the per-row losses.
	Reduction Reduction
	// LabelSmoothing is ε in [0, 1].
	LabelSmoothing float64
}

// NewCrossEntropyLoss returns a CrossEntropyLoss with torch's defaults: no
// weights, ignore_index -100, mean reduction, no label smoothing.
func NewCrossEntropyLoss() *CrossEntropyLoss {
	return &CrossEntropyLoss{IgnoreIndex: DefaultIgnoreIndex}
}

// String prints the loss as torch's repr does: "CrossEntropyLoss()".
func (l *CrossEntropyLoss) String() string { return "CrossEntropyLoss()" }

// Forward returns the loss of logits input [N, C, d1, ...] (or [C]) against
// class indices target, one per element of [N, d1, ...] in row-major order
// (one value for a [C] input). With ReduceNone the result has shape
// [N, d1, ...]; otherwise it is a scalar. A target outside [0, C) that is not
// IgnoreIndex panics, as torch raises.
func (l *CrossEntropyLoss) Forward(input *Tensor, target []int) *Tensor {
	return classLoss("CrossEntropyLoss", input, target, l.Weight, l.IgnoreIndex, l.Reduction, l.LabelSmoothing, true)
}

// ForwardProbs returns the loss of logits input against target class
// probabilities of the same shape. Gradients flow to target too when it
// requires grad.
func (l *CrossEntropyLoss) ForwardProbs(input, target *Tensor) *Tensor {
	return probLoss(input, target, l.Weight, l.Reduction, l.LabelSmoothing)
}

// NLLLoss is torch.nn.NLLLoss: input holds log-probabilities [N, C, d1, ...]
// (or [C]) and row i contributes -w[y_i]·input[i, y_i], nothing when y_i ==
// IgnoreIndex. The mean divides by Σ w[y_i] over the counted rows.
type NLLLoss struct {
	// Weight holds a rescaling weight per class ([C]), or nil.
	Weight *Tensor
	// IgnoreIndex is a target value that is skipped; NewNLLLoss sets
	// DefaultIgnoreIndex.
	IgnoreIndex int
	// Reduction combines the per-row losses.
	Reduction Reduction
}

// NewNLLLoss returns an NLLLoss with torch's defaults.
func NewNLLLoss() *NLLLoss { return &NLLLoss{IgnoreIndex: DefaultIgnoreIndex} }

// String prints "NLLLoss()".
func (l *NLLLoss) String() string { return "NLLLoss()" }

// Forward returns the loss of log-probabilities input against class indices
// target (laid out as for [CrossEntropyLoss.Forward]).
func (l *NLLLoss) Forward(input *Tensor, target []int) *Tensor {
	return classLoss("NLLLoss", input, target, l.Weight, l.IgnoreIndex, l.Reduction, 0, false)
}

// MSELoss is torch.nn.MSELoss: the squared difference (input-target)²,
// reduced. target broadcasts against input; gradients flow to both.
type MSELoss struct {
	// Reduction combines the per-element losses.
	Reduction Reduction
}

// NewMSELoss returns an MSELoss with mean reduction.
func NewMSELoss() *MSELoss { return &MSELoss{} }

// String prints "MSELoss()".
func (l *MSELoss) String() string { return "MSELoss()" }

// Forward returns the mean (or sum, or elementwise) squared error.
func (l *MSELoss) Forward(input, target *Tensor) *Tensor {
	return lossReduce(input.Sub(target).Square(), l.Reduction)
}

// BCEWithLogitsLoss is torch.nn.BCEWithLogitsLoss, binary cross-entropy on
// logits computed stably:
//
//	l = w·[(1-y)·x + (1 + (p-1)·y)·log(1 + e^-x)]
//
// which is -w·[p·y·log σ(x) + (1-y)·log(1-σ(x))], with w the Weight
// (broadcast against the input) and p the PosWeight (broadcast along the
// last dimension, one per class). target has the input's shape; gradients
// flow to both.
type BCEWithLogitsLoss struct {
	// Weight rescales each element (any shape that broadcasts to the
	// input's), or nil.
	Weight *Tensor
	// PosWeight weighs the positive term per class ([C] for an input
	// [..., C]), or nil.
	PosWeight *Tensor
	// Reduction combines the per-element losses.
	Reduction Reduction
}

// NewBCEWithLogitsLoss returns a BCEWithLogitsLoss with torch's defaults.
func NewBCEWithLogitsLoss() *BCEWithLogitsLoss { return &BCEWithLogitsLoss{} }

// String prints "BCEWithLogitsLoss()".
func (l *BCEWithLogitsLoss) String() string { return "BCEWithLogitsLoss()" }

// Forward returns the loss of logits input against targets in [0, 1].
func (l *BCEWithLogitsLoss) Forward(input, target *Tensor) *Tensor {
	if !sameShape(input.shape, target.shape) {
		shapeErr("BCEWithLogitsLoss", "target size must be the same as input size", input.shape, target.shape)
	}
	n := len(input.data)
	w := lossExpand(l.Weight, input.shape)
	pw := lossExpand(l.PosWeight, input.shape)
	vals := make([]float32, n)
	for i, xv := range input.data {
		x, y := float64(xv), float64(target.data[i])
		lw := 1.0
		if pw != nil {
			lw = 1 + (float64(pw[i])-1)*y
		}
		v := (1-y)*x + lw*lossSoftplusNeg(x)
		if w != nil {
			v *= float64(w[i])
		}
		vals[i] = float32(v)
	}
	out := &Tensor{data: vals, shape: append([]int(nil), input.shape...)}
	out = Record(out, "BCEWithLogitsLoss", []*Tensor{input, target}, func(g []float32) [][]float32 {
		var gx, gy []float32
		if input.requiresGrad {
			gx = make([]float32, n)
		}
		if target.requiresGrad {
			gy = make([]float32, n)
		}
		for i, xv := range input.data {
			x, y := float64(xv), float64(target.data[i])
			gi := float64(g[i])
			if w != nil {
				gi *= float64(w[i])
			}
			p := 1.0
			if pw != nil {
				p = float64(pw[i])
			}
			if gx != nil {
				// d/dx: (1-y) - lw·σ(-x)
				gx[i] = float32(gi * ((1 - y) - (1+(p-1)*y)*lossSigmoid(-x)))
			}
			if gy != nil {
				gy[i] = float32(gi * (-x + (p-1)*lossSoftplusNeg(x)))
			}
		}
		return [][]float32{gx, gy}
	})
	return lossReduce(out, l.Reduction)
}

// lossReduce applies a reduction to elementwise losses.
func lossReduce(t *Tensor, r Reduction) *Tensor {
	checkReduction(r)
	switch r {
	case ReduceMean:
		return t.Mean(false)
	case ReduceSum:
		return t.Sum(false)
	case ReduceNone:
		return t
	}
	panic(fmt.Sprintf("nn: unknown reduction %d", int(r)))
}

// checkReduction panics on a Reduction that is none of the constants.
func checkReduction(r Reduction) {
	if r < ReduceMean || r > ReduceNone {
		panic(fmt.Sprintf("nn: unknown reduction %d", int(r)))
	}
}

// lossExpand broadcasts w to shape (nil stays nil). Neither operand
// requires grad, so nothing is recorded (and grad mode, which is
// process-wide, is left alone).
func lossExpand(w *Tensor, shape []int) []float32 {
	if w == nil {
		return nil
	}
	out := Zeros(shape...).Add(w.Detach())
	if !sameShape(out.shape, shape) {
		shapeErr("loss", "weight does not broadcast to the input", w.shape, shape)
	}
	return out.data
}

// lossSoftplusNeg returns log(1 + e^-x) without overflow.
func lossSoftplusNeg(x float64) float64 {
	if x > 0 {
		return math.Log1p(math.Exp(-x))
	}
	return -x + math.Log1p(math.Exp(x))
}

func lossSigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// lossLayout describes an input [N, C, d1, ...] as rows of C classes: row r
// = (n, k) with k over the inner positions; class c of row r is at
// n*C*inner + c*inner + k.
type lossLayout struct {
	rows, classes, inner int
	outShape             []int
}

func newLossLayout(op string, x *Tensor) lossLayout {
	switch x.Dim() {
	case 0:
		shapeErr(op, "input must have a class dimension", x.shape)
	case 1:
		return lossLayout{rows: 1, classes: x.shape[0], inner: 1, outShape: []int{}}
	}
	inner := 1
	for _, d := range x.shape[2:] {
		inner *= d
	}
	out := append([]int{x.shape[0]}, x.shape[2:]...)
	return lossLayout{rows: x.shape[0] * inner, classes: x.shape[1], inner: inner, outShape: out}
}

func (lo lossLayout) at(r, c int) int {
	n, k := r/lo.inner, r%lo.inner
	return (n*lo.classes+c)*lo.inner + k
}

// lossLogSoftmaxRows returns log_softmax over the classes of every row, in
// float64, laid out like the input.
func lossLogSoftmaxRows(x *Tensor, lo lossLayout) []float64 {
	lp := make([]float64, len(x.data))
	for r := 0; r < lo.rows; r++ {
		m := math.Inf(-1)
		for c := 0; c < lo.classes; c++ {
			m = math.Max(m, float64(x.data[lo.at(r, c)]))
		}
		s := 0.0
		for c := 0; c < lo.classes; c++ {
			s += math.Exp(float64(x.data[lo.at(r, c)]) - m)
		}
		lse := m + math.Log(s)
		for c := 0; c < lo.classes; c++ {
			i := lo.at(r, c)
			lp[i] = float64(x.data[i]) - lse
		}
	}
	return lp
}

// classLoss is cross-entropy (softmax true: input holds logits) or NLL
// (input holds log-probabilities) against class indices. Both are written as
// loss = -Σ a[i]·logp[i] with a coefficient a per input element; the gradient
// of the logits is then g·(Σ_row a · softmax - a), and of log-probabilities
// -g·a.
func classLoss(op string, x *Tensor, target []int, weight *Tensor, ignore int, red Reduction, eps float64, softmax bool) *Tensor {
	checkReduction(red)
	lo := newLossLayout(op, x)
	if len(target) != lo.rows {
		shapeErr(op, fmt.Sprintf("%d targets for %d rows", len(target), lo.rows), x.shape)
	}
	if weight != nil && (weight.Dim() != 1 || weight.shape[0] != lo.classes) {
		shapeErr(op, "weight must have one value per class", weight.shape, x.shape)
	}
	wt := func(c int) float64 {
		if weight == nil {
			return 1
		}
		return float64(weight.data[c])
	}
	var lp []float64
	if softmax {
		lp = lossLogSoftmaxRows(x, lo)
	} else {
		lp = make([]float64, len(x.data))
		for i, v := range x.data {
			lp[i] = float64(v)
		}
	}
	// Denominators of the mean (torch 1.13, cross_entropy_loss_label_smoothing).
	dNLL, dSmooth := 1.0, 1.0
	if red == ReduceMean {
		dNLL = 0
		for _, y := range target {
			if y != ignore {
				dNLL += wt(y)
			}
		}
		dSmooth = dNLL
	}
	a := make([]float64, len(x.data))
	rowLoss := make([]float64, lo.rows)
	for r, y := range target {
		if y == ignore {
			continue
		}
		if y < 0 || y >= lo.classes {
			panic(fmt.Sprintf("nn: %s: target %d out of bounds for %d classes", op, y, lo.classes))
		}
		a[lo.at(r, y)] += (1 - eps) * wt(y) / dNLL
		if eps > 0 {
			for c := 0; c < lo.classes; c++ {
				a[lo.at(r, c)] += eps / float64(lo.classes) * wt(c) / dSmooth
			}
		}
		for c := 0; c < lo.classes; c++ {
			i := lo.at(r, c)
			rowLoss[r] -= a[i] * lp[i]
		}
	}
	if red == ReduceMean && dNLL == 0 && lo.rows > 0 {
		rowLoss[0] = math.NaN() // torch's 0/0
	}
	return classOut(op, x, lo, a, lp, rowLoss, red, softmax, nil)
}

// classOut makes the output tensor of a loss written as -Σ a·logp and
// records its backward. tgt, when non-nil, is a probability target whose
// gradient is tgtGrad(i) per unit of upstream gradient.
func classOut(op string, x *Tensor, lo lossLayout, a, lp, rowLoss []float64, red Reduction, softmax bool, tgt *probTarget) *Tensor {
	var out *Tensor
	if red == ReduceNone {
		vals := make([]float32, lo.rows)
		for r, v := range rowLoss {
			vals[r] = float32(v)
		}
		out = &Tensor{data: vals, shape: append([]int(nil), lo.outShape...)}
	} else {
		s := 0.0
		for _, v := range rowLoss {
			s += v
		}
		out = Scalar(float32(s))
	}
	inputs := []*Tensor{x}
	if tgt != nil {
		inputs = append(inputs, tgt.t)
	}
	return Record(out, op, inputs, func(g []float32) [][]float32 {
		rowG := func(r int) float64 {
			if red == ReduceNone {
				return float64(g[r])
			}
			return float64(g[0])
		}
		grads := make([][]float32, len(inputs))
		if x.requiresGrad {
			gx := make([]float32, len(x.data))
			for r := 0; r < lo.rows; r++ {
				gr := rowG(r)
				if !softmax {
					for c := 0; c < lo.classes; c++ {
						i := lo.at(r, c)
						gx[i] = float32(-gr * a[i])
					}
					continue
				}
				sa := 0.0
				for c := 0; c < lo.classes; c++ {
					sa += a[lo.at(r, c)]
				}
				for c := 0; c < lo.classes; c++ {
					i := lo.at(r, c)
					gx[i] = float32(gr * (sa*math.Exp(lp[i]) - a[i]))
				}
			}
			grads[0] = gx
		}
		if tgt != nil && tgt.t.requiresGrad {
			gt := make([]float32, len(x.data))
			for r := 0; r < lo.rows; r++ {
				gr := rowG(r)
				for c := 0; c < lo.classes; c++ {
					i := lo.at(r, c)
					gt[i] = float32(-gr * tgt.coef[i] * lp[i])
				}
			}
			grads[1] = gt
		}
		return grads
	})
}

// probTarget is a probability target and d(a)/d(target) per element.
type probTarget struct {
	t    *Tensor
	coef []float64
}

// probLoss is cross-entropy against class probabilities.
func probLoss(x, target *Tensor, weight *Tensor, red Reduction, eps float64) *Tensor {
	const op = "CrossEntropyLoss"
	if !sameShape(x.shape, target.shape) {
		shapeErr(op, "probability target must have the input's shape", x.shape, target.shape)
	}
	checkReduction(red)
	lo := newLossLayout(op, x)
	if weight != nil && (weight.Dim() != 1 || weight.shape[0] != lo.classes) {
		shapeErr(op, "weight must have one value per class", weight.shape, x.shape)
	}
	scale := 1.0
	if red == ReduceMean {
		scale = 1 / float64(lo.rows)
	}
	lp := lossLogSoftmaxRows(x, lo)
	a := make([]float64, len(x.data))
	coef := make([]float64, len(x.data))
	rowLoss := make([]float64, lo.rows)
	for r := 0; r < lo.rows; r++ {
		for c := 0; c < lo.classes; c++ {
			i := lo.at(r, c)
			w := scale
			if weight != nil {
				w *= float64(weight.data[c])
			}
			a[i] = w * ((1-eps)*float64(target.data[i]) + eps/float64(lo.classes))
			coef[i] = w * (1 - eps)
			rowLoss[r] -= a[i] * lp[i]
		}
	}
	return classOut(op, x, lo, a, lp, rowLoss, red, true, &probTarget{t: target, coef: coef})
}
