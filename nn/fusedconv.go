package nn

// Conv2dFusedFn computes act(bn(conv2d(x, w, b)) + residual), where bn,
// residual and act may each be nil (skipped): [ConvBNAct] for a convolution
// whose tensors belong to no Conv2d module, such as an imported graph's Conv
// node followed by BatchNormalization, Add and Relu nodes.
//
// bn is read as eval-mode statistics (RunningMean, RunningVar, Eps and,
// when Weight is set, the affine Weight and Bias) whatever its mode; it is
// a description, not a module of the caller's tree, and a caller that keeps
// one *BatchNorm2d per fused layer lets a prepared module keep the folded
// weights. When no graph is recorded, inside an [Infer] call of a
// [Prepare]d module the batch norm is folded into the packed weights and
// the bias, residual and activation applied in the GEMM's epilogue, exactly
// as ConvBNAct does (the prepared copies follow Prepare's invalidation
// rule: they are rebuilt when w, b or bn's tensors are replaced or
// [MarkModified] is called); without one they are applied in one pass over
// the convolution's output. With a graph recorded it runs the ops one after
// the other, so gradients reach every tensor. residual must have the
// convolution's output shape. act may be any module; ReLU, ReLU6, SiLU,
// Sigmoid, Hardswish and Hardsigmoid are fused, others run after.
func Conv2dFusedFn(x, w, b *Tensor, p ConvParams, bn *BatchNorm2d, residual *Tensor, act Module) *Tensor {
	a, fusable := actOf(act)
	if act == nil {
		fusable = true
	}
	if needGrad(x, w, b, residual) || bn != nil && needGrad(bn.Weight, bn.Bias, bn.RunningMean, bn.RunningVar) {
		y := conv2d(x, w, b, p)
		if bn != nil {
			y = BatchNormFn(y, bn.RunningMean, bn.RunningVar, bn.Weight, bn.Bias, false, 0, bn.Eps)
		}
		if residual != nil {
			y = y.Add(residual)
		}
		if act != nil {
			y = act.Forward(y)
		}
		return y
	}
	var y *Tensor
	if pl := planOf(x); pl != nil {
		e := pl.get(convKey{w: w, b: b, bn: bn}, func() *convPrep { return newConvPrep(w, b, bn, p) })
		if e.p != p && !(p.Groups == 0 && e.p.Groups == 1) {
			y = conv2d(x, w, b, p)
			finishBN(y, bn, residual, a)
		} else {
			y = e.forward(x, residual, a)
		}
	} else {
		y = conv2d(x, w, b, p)
		finishBN(y, bn, residual, a)
	}
	if !fusable {
		y = act.Forward(y)
	}
	return y
}
