package nn

import (
	"fmt"
	"math"

	"github.com/ckptkit/ckpt/nn/internal/par"
	"github.com/ckptkit/ckpt/nn/internal/vec"
)

// BatchNorm2d is torch.nn.BatchNorm2d over x [N, C, H, W]. In training mode
// it normalises with the batch's statistics (biased variance) and updates
// running_mean and running_var (unbiased variance) with Momentum, or with a
// cumulative average when CumulativeAverage (torch's momentum=None); in eval
// mode it uses the running statistics. Weight and Bias are nil without
// affine; the running buffers are nil without track_running_stats, and then
// batch statistics are used in both modes.
type BatchNorm2d struct {
	Base
	NumFeatures               int
	Eps, Momentum             float64
	CumulativeAverage         bool
	Weight, Bias              *Tensor
	RunningMean, RunningVar   *Tensor
	NumBatchesTracked         int64
	affine, trackRunningStats bool
}

// NewBatchNorm2d builds a BatchNorm2d over c channels (options [Eps],
// [Momentum], [CumulativeAverage], [NoAffine], [NoRunningStats]); tensors
// come from b ("weight", "bias", "running_mean", "running_var",
// "num_batches_tracked") or start as torch's (ones, zeros, zeros, ones, 0).
func NewBatchNorm2d(b *Builder, c int, opts ...Option) *BatchNorm2d {
	o := collect(opts)
	m := &BatchNorm2d{NumFeatures: c, Eps: 1e-5, Momentum: 0.1, affine: !o.noAffine, trackRunningStats: !o.noRunningStats}
	if o.eps != 0 {
		m.Eps = o.eps
	}
	if o.momentum != nil {
		if *o.momentum < 0 {
			m.CumulativeAverage = true
			m.Momentum = 0
		} else {
			m.Momentum = *o.momentum
		}
	}
	if m.affine {
		m.Weight = b.Tensor("weight", []int{c}, fillInit(1))
		m.Bias = b.Tensor("bias", []int{c}, nil)
	}
	m.RegisterParameter("weight", &m.Weight)
	m.RegisterParameter("bias", &m.Bias)
	if m.trackRunningStats {
		m.RunningMean = b.Tensor("running_mean", []int{c}, nil)
		m.RunningVar = b.Tensor("running_var", []int{c}, fillInit(1))
		m.NumBatchesTracked = b.Int64("num_batches_tracked", 0)
		m.RegisterBuffer("running_mean", &m.RunningMean, true)
		m.RegisterBuffer("running_var", &m.RunningVar, true)
		m.RegisterInt64Buffer("num_batches_tracked", &m.NumBatchesTracked)
	}
	return m
}

// Forward normalises x [N, C, H, W] (any [N, C, ...] works).
func (m *BatchNorm2d) Forward(x *Tensor) *Tensor {
	if x.Dim() != 4 {
		shapeErr("BatchNorm2d", "expected 4D input", x.shape)
	}
	training := m.Training()
	momentum := m.Momentum
	if training && m.trackRunningStats {
		m.NumBatchesTracked++
		if m.CumulativeAverage {
			momentum = 1 / float64(m.NumBatchesTracked)
		}
	}
	useBatch := training || m.RunningMean == nil
	return BatchNormFn(x, m.RunningMean, m.RunningVar, m.Weight, m.Bias, useBatch, momentum, m.Eps)
}

// ForwardInPlace is m.Forward(x), followed by ReLU when relu is set, for a
// caller that owns x (a convolution's fresh output): when it normalises by
// batch statistics and no graph is recorded for x and m's parameters, it
// does so in place and returns x, so a frozen layer in training mode writes
// no second activation; otherwise it computes out of place, as Forward and
// [Tensor.ReLU] do. The results are the same either way.
func (m *BatchNorm2d) ForwardInPlace(x *Tensor, relu bool) *Tensor {
	if needGrad(x, m.Weight, m.Bias) || x.Dim() != 4 || (!m.Training() && m.RunningMean != nil) {
		y := m.Forward(x)
		if relu {
			y = y.ReLU()
		}
		return y
	}
	training := m.Training()
	momentum := m.Momentum
	if training && m.trackRunningStats {
		m.NumBatchesTracked++
		if m.CumulativeAverage {
			momentum = 1 / float64(m.NumBatchesTracked)
		}
	}
	useBatch := training || m.RunningMean == nil
	act := vec.Identity
	if relu {
		act = vec.ReLU
	}
	return batchNorm(x, m.RunningMean, m.RunningVar, m.Weight, m.Bias, useBatch, momentum, m.Eps, true, act, nil)
}

// forwardAct is act(m.Forward(x)) for a layer normalising by batch
// statistics (in training mode) and act ReLU, ReLU6 or SiLU, as one op:
// the normalised values are not kept for act's backward but recomputed
// from x, which BatchNorm's backward keeps anyway, so a conv-bn-act unit
// stores two activations, not three. The values and gradients are those of
// the two ops run one after the other, bit for bit. With res (nil for
// none; act must then be ReLU) it is relu(m.Forward(x) + res), ResNet's
// block end, whose backward needs only the output.
func (m *BatchNorm2d) forwardAct(x *Tensor, act vec.Act, res *Tensor) *Tensor {
	if x.Dim() != 4 {
		shapeErr("BatchNorm2d", "expected 4D input", x.shape)
	}
	momentum := m.Momentum
	if m.trackRunningStats {
		m.NumBatchesTracked++
		if m.CumulativeAverage {
			momentum = 1 / float64(m.NumBatchesTracked)
		}
	}
	return batchNorm(x, m.RunningMean, m.RunningVar, m.Weight, m.Bias, true, momentum, m.Eps, false, act, res)
}

// trainFusedAct reports the activation module a is, when batchNorm can run
// its backward (forwardAct).
func trainFusedAct(a Module) (vec.Act, bool) {
	switch a.(type) {
	case *ReLU:
		return vec.ReLU, true
	case *ReLU6:
		return vec.ReLU6, true
	case *SiLU:
		return vec.SiLU, true
	}
	return vec.Identity, false
}

// actGradInPlace sets z[i] = g[i]·act'(z[i]) for z the values act was
// applied to, with the formulas of [Tensor.ReLU], [Tensor.ReLU6] and
// [Tensor.SiLU]'s backward; s is scratch for SiLU, grown as needed.
func actGradInPlace(z, g []float32, act vec.Act, s *[]float32) {
	switch act {
	case vec.ReLU:
		vec.MaskGrad(z, g, z, 0, float32(math.NaN()))
	case vec.ReLU6:
		vec.MaskGrad(z, g, z, 0, 6)
	case vec.SiLU:
		if cap(*s) < len(z) {
			*s = make([]float32, len(z))
		}
		sg := (*s)[:len(z)]
		vec.ApplyTo(sg, z, vec.Sigmoid)
		g = g[:len(z)]
		for i, v := range z {
			si := sg[i]
			z[i] = g[i] * si * (1 + v*(1-si))
		}
	default:
		panic("nn: BatchNorm: no fused backward for " + act.String())
	}
}

// ExtraRepr prints torch's BatchNorm arguments.
func (m *BatchNorm2d) ExtraRepr() string {
	mom := pyFloat(m.Momentum)
	if m.CumulativeAverage {
		mom = "None"
	}
	return fmt.Sprintf("%d, eps=%s, momentum=%s, affine=%s, track_running_stats=%s",
		m.NumFeatures, pyFloat(m.Eps), mom, pyBool(m.affine), pyBool(m.trackRunningStats))
}

// String returns torch's repr of the module.
func (m *BatchNorm2d) String() string { return Repr(m) }

// BatchNormFn is torch.nn.functional.batch_norm over x [N, C, ...]. With
// training it normalises by batch statistics and, when runningMean and
// runningVar are non-nil, updates them in place with momentum (unbiased
// variance); otherwise it uses the running statistics. weight and bias may be
// nil.
func BatchNormFn(x, runningMean, runningVar, weight, bias *Tensor, training bool, momentum, eps float64) *Tensor {
	return batchNorm(x, runningMean, runningVar, weight, bias, training, momentum, eps, false, vec.Identity, nil)
}

// batchNorm is BatchNormFn followed by the activation act (Identity for
// none; otherwise ReLU, ReLU6 or SiLU, whose backward it runs itself from
// the normalised values, recomputed, so that they are never stored); with
// inplace (only when no graph is recorded) it writes the result over x.
// With res (nil for none, act ReLU, not inplace) it is relu(bn(x) + res),
// whose backward masks by the output.
func batchNorm(x, runningMean, runningVar, weight, bias *Tensor, training bool, momentum, eps float64, inplace bool, act vec.Act, res *Tensor) *Tensor {
	if x.Dim() < 2 {
		shapeErr("BatchNorm", "want input [N, C, ...]", x.shape)
	}
	n, c := x.shape[0], x.shape[1]
	inner := numel(x.shape[2:])
	for _, t := range []*Tensor{runningMean, runningVar, weight, bias} {
		if t != nil && len(t.data) != c {
			shapeErr("BatchNorm", "per-channel tensor does not match channels", x.shape, t.shape)
		}
	}
	if !training && (runningMean == nil || runningVar == nil) {
		panic("nn: BatchNorm: running statistics required when not training")
	}
	if res != nil && (act != vec.ReLU || inplace || !sameShape(res.shape, x.shape)) {
		shapeErr("BatchNorm", "residual must match the input, with ReLU", x.shape, res.shape)
	}
	if !training && !needGrad(x, weight, bias) && !inplace {
		return batchNormEval(x, runningMean, runningVar, weight, bias, eps)
	}
	mean := make([]float64, c)
	invstd := make([]float64, c)
	cnt := n * inner
	if training {
		if cnt <= 1 {
			panic(fmt.Sprintf("nn: BatchNorm: expected more than 1 value per channel when training, got input size %v", x.shape))
		}
		// Channels are independent: they split across goroutines, each
		// summed in the same order as on one.
		parallelFor(c, len(x.data), func(lo, hi int) {
			for ch := lo; ch < hi; ch++ {
				s := 0.0
				for i := range n {
					s += vec.SumF64(x.data[(i*c+ch)*inner : (i*c+ch+1)*inner])
				}
				mu := s / float64(cnt)
				ss := 0.0
				for i := range n {
					ss += vec.SumSqDevF64(x.data[(i*c+ch)*inner:(i*c+ch+1)*inner], mu)
				}
				v := ss / float64(cnt)
				mean[ch], invstd[ch] = mu, 1/math.Sqrt(v+eps)
				if runningMean != nil && runningVar != nil {
					runningMean.data[ch] = float32((1-momentum)*float64(runningMean.data[ch]) + momentum*mu)
					runningVar.data[ch] = float32((1-momentum)*float64(runningVar.data[ch]) + momentum*ss/float64(cnt-1))
				}
			}
		})
	} else {
		for ch := range c {
			mean[ch] = float64(runningMean.data[ch])
			invstd[ch] = 1 / math.Sqrt(float64(runningVar.data[ch])+eps)
		}
	}
	out := x
	if !inplace {
		out = newResultData(cloneInts(x.shape), false, x)
	}
	// affine is channel ch's map x*scale + shift.
	affine := func(ch int) (float32, float32) {
		sc := invstd[ch]
		if weight != nil {
			sc *= float64(weight.data[ch])
		}
		sh := -mean[ch] * sc
		if bias != nil {
			sh += float64(bias.data[ch])
		}
		return float32(sc), float32(sh)
	}
	parallelFor(c, len(x.data), func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			s32, h32 := affine(ch)
			for i := range n {
				src := x.data[(i*c+ch)*inner : (i*c+ch+1)*inner]
				dst := out.data[(i*c+ch)*inner : (i*c+ch+1)*inner]
				if res != nil {
					vec.AffineApplyTo(dst, src, s32, h32, vec.Identity)
					vec.AddReLU(dst, res.data[(i*c+ch)*inner:(i*c+ch+1)*inner])
					continue
				}
				vec.AffineApplyTo(dst, src, s32, h32, act)
			}
		}
	})
	if inplace {
		return out
	}
	if !needGrad(x, weight, bias, res) {
		return out
	}
	inputs := []*Tensor{x, weight, bias}
	// The backward reads only these of res, so that the residual itself
	// can be collected after the forward pass.
	hasRes, resGrad := res != nil, res != nil && res.requiresGrad
	if hasRes {
		inputs = append(inputs, res)
	}
	y := out.data
	return record(out, "NativeBatchNormBackward", inputs, func(g []float32) [][]float32 {
		var gx, gw, gb, gz []float32
		if hasRes {
			// relu(bn(x) + res): the gradient at the sum, from the
			// output's sign, is the residual's, and bn's output's.
			gz = gradBuf(len(g), false)
			parallelChunks(len(g), func(lo, hi int) {
				vec.MaskGrad(gz[lo:hi], g[lo:hi], y[lo:hi], 0, float32(math.NaN()))
			})
			if x.requiresGrad {
				gx = gradBuf(len(x.data), false)
			}
		} else if act != vec.Identity {
			// gz is the gradient at the normalised values, act's backward
			// from them recomputed; x's gradient is written over it.
			gz = gradBuf(len(x.data), false)
			if x.requiresGrad {
				gx = gz
			}
		} else if x.requiresGrad {
			gx = gradBuf(len(x.data), false) // every element is written
		}
		if weight != nil && weight.requiresGrad {
			gw = make([]float32, c)
		}
		if bias != nil && bias.requiresGrad {
			gb = make([]float32, c)
		}
		gin := g
		if gz != nil {
			gin = gz
		}
		parallelFor(c, len(x.data), func(lo, hi int) {
			var scratch []float32
			for ch := lo; ch < hi; ch++ {
				if gz != nil && !hasRes {
					s32, h32 := affine(ch)
					for i := range n {
						zp := gz[(i*c+ch)*inner : (i*c+ch+1)*inner]
						vec.AffineApplyTo(zp, x.data[(i*c+ch)*inner:(i*c+ch+1)*inner], s32, h32, vec.Identity)
						actGradInPlace(zp, g[(i*c+ch)*inner:(i*c+ch+1)*inner], act, &scratch)
					}
				}
				sg, sgd := 0.0, 0.0 // Σg, Σg·(x-μ)
				mu, is := mean[ch], invstd[ch]
				for i := range n {
					gs := gin[(i*c+ch)*inner : (i*c+ch+1)*inner]
					a, b := vec.SumDotDevF64(gs, x.data[(i*c+ch)*inner:(i*c+ch+1)*inner], mu)
					sg += a
					sgd += b
				}
				sgx := sgd * is // Σg·x̂
				if gw != nil {
					gw[ch] = float32(sgx)
				}
				if gb != nil {
					gb[ch] = float32(sg)
				}
				if gx == nil {
					continue
				}
				gamma := 1.0
				if weight != nil {
					gamma = float64(weight.data[ch])
				}
				k := gamma * is
				fc := float64(cnt)
				// gx = k·(g - Σg/cnt - x̂·Σg·x̂/cnt) with x̂ = (x-μ)·is, as
				// a·g + b·x + c; in eval mode only k·g.
				a, b, cc := k, 0.0, 0.0
				if training {
					b = -k * is * sgx / fc
					cc = -k*sg/fc - b*mu
				}
				for i := range n {
					gs := gin[(i*c+ch)*inner : (i*c+ch+1)*inner]
					vec.AxpbyF64(gx[(i*c+ch)*inner:(i*c+ch+1)*inner], gs, x.data[(i*c+ch)*inner:(i*c+ch+1)*inner], a, b, cc)
				}
			}
		})
		if hasRes {
			if !resGrad {
				putGradBuf(gz)
				gz = nil
			}
			return [][]float32{gx, gw, gb, gz}
		}
		if gz != nil && gx == nil {
			putGradBuf(gz)
		}
		return [][]float32{gx, gw, gb}
	})
}

// batchNormEval is the inference path: one multiply-add per element with the
// per-channel scale and shift folded from the running statistics, and no
// allocation besides the output.
func batchNormEval(x, runningMean, runningVar, weight, bias *Tensor, eps float64) *Tensor {
	out := newResult(cloneInts(x.shape), x)
	if len(x.data) < parallelMin {
		batchNormEvalRange(x, runningMean, runningVar, weight, bias, eps, out, 0, x.shape[0]*x.shape[1])
		return out
	}
	parallelFor(x.shape[0]*x.shape[1], len(x.data), func(lo, hi int) {
		batchNormEvalRange(x, runningMean, runningVar, weight, bias, eps, out, lo, hi)
	})
	return out
}

// batchNormEvalRange normalises the planes [lo, hi) of x (plane i*C+ch is
// channel ch of sample i).
func batchNormEvalRange(x, runningMean, runningVar, weight, bias *Tensor, eps float64, out *Tensor, lo, hi int) {
	c := x.shape[1]
	inner := numel(x.shape[2:])
	for p := lo; p < hi; p++ {
		ch := p % c
		sc := 1 / math.Sqrt(float64(runningVar.data[ch])+eps)
		if weight != nil {
			sc *= float64(weight.data[ch])
		}
		sh := -float64(runningMean.data[ch]) * sc
		if bias != nil {
			sh += float64(bias.data[ch])
		}
		s32, h32 := float32(sc), float32(sh)
		src := x.data[p*inner : (p+1)*inner]
		dst := out.data[p*inner : (p+1)*inner]
		dst = dst[:len(src)]
		for j, v := range src {
			dst[j] = v*s32 + h32
		}
	}
}

// normRows normalises rows of length d (row r covers data[r*d:(r+1)*d]) and
// applies the per-channel affine map of a row's group (r%groups), each
// channel covering inner consecutive elements; it is the shared core of
// LayerNorm (one group, inner 1) and GroupNorm. The loops index the affine
// parameters directly: a function asked for each element's index cost
// more than the arithmetic.
func normRows(x, weight, bias *Tensor, rows, d, groups, inner int, eps float64, name string) *Tensor {
	// The affine parameters of row r's element j are at (r%groups)*cg +
	// j/inner: the loops below keep that index, and j's place in its
	// channel, as counters.
	cg := d / inner
	var wd, bd []float32
	if weight != nil {
		wd = weight.data
	}
	if bias != nil {
		bd = bias.data
	}
	mean := make([]float64, rows)
	invstd := make([]float64, rows)
	out := newResult(cloneInts(x.shape), x)
	parallelFor(rows, rows*d, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xs := x.data[r*d : (r+1)*d]
			s := 0.0
			for _, v := range xs {
				s += float64(v)
			}
			mu := s / float64(d)
			ss := 0.0
			for _, v := range xs {
				dv := float64(v) - mu
				ss += dv * dv
			}
			is := 1 / math.Sqrt(ss/float64(d)+eps)
			mean[r], invstd[r] = mu, is
			dst := out.data[r*d : (r+1)*d]
			k, t := (r%groups)*cg, 0 // element j's affine index, and j's place in its channel
			for j, v := range xs {
				y := (float64(v) - mu) * is
				if wd != nil {
					y *= float64(wd[k])
				}
				if bd != nil {
					y += float64(bd[k])
				}
				dst[j] = float32(y)
				if t++; t == inner {
					t, k = 0, k+1
				}
			}
		}
	})
	return record(out, name, []*Tensor{x, weight, bias}, func(g []float32) [][]float32 {
		var gx, gw, gb []float32
		if x.requiresGrad {
			gx = gradBuf(len(x.data), false) // every row is written
		}
		needW := weight != nil && weight.requiresGrad
		needB := bias != nil && bias.requiresGrad
		// The rows go in normParts fixed blocks, each with its own sums
		// of the weight's and bias's gradients, added up in block order
		// at the end: the same result whatever the number of threads.
		parts := min(rows, normParts)
		var aws, abs [][]float64
		if needW {
			aws = make([][]float64, parts)
		}
		if needB {
			abs = make([][]float64, parts)
		}
		par.Do(parts, func(p int) {
			var aw, ab []float64
			if needW {
				aw = make([]float64, len(weight.data))
				aws[p] = aw
			}
			if needB {
				ab = make([]float64, len(bias.data))
				abs[p] = ab
			}
			for r := p * rows / parts; r < (p+1)*rows/parts; r++ {
				xs, gs := x.data[r*d:(r+1)*d], g[r*d:(r+1)*d]
				mu, is := mean[r], invstd[r]
				a0 := (r % groups) * cg
				s1, s2 := 0.0, 0.0 // Σdx̂, Σdx̂·x̂
				k, t := a0, 0
				for j, v := range gs {
					xh := (float64(xs[j]) - mu) * is
					if aw != nil {
						aw[k] += float64(v) * xh
					}
					if ab != nil {
						ab[k] += float64(v)
					}
					dxh := float64(v)
					if wd != nil {
						dxh *= float64(wd[k])
					}
					s1 += dxh
					s2 += dxh * xh
					if t++; t == inner {
						t, k = 0, k+1
					}
				}
				if gx == nil {
					continue
				}
				fd := float64(d)
				gxr := gx[r*d : (r+1)*d]
				k, t = a0, 0
				for j, v := range gs {
					xh := (float64(xs[j]) - mu) * is
					dxh := float64(v)
					if wd != nil {
						dxh *= float64(wd[k])
					}
					gxr[j] = float32(is * (dxh - s1/fd - xh*s2/fd))
					if t++; t == inner {
						t, k = 0, k+1
					}
				}
			}
		})
		sum := func(ps [][]float64) []float32 {
			for _, p := range ps[1:] {
				for i, v := range p {
					ps[0][i] += v
				}
			}
			return toF32(ps[0])
		}
		if needW {
			gw = sum(aws)
		}
		if needB {
			gb = sum(abs)
		}
		return [][]float32{gx, gw, gb}
	})
}

// normParts is the number of blocks of rows normRows's backward pass sums
// the affine parameters' gradients in.
const normParts = 16

func toF32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// LayerNormFn is torch.nn.functional.layer_norm over the trailing
// dimensions normalizedShape; weight and bias (of that shape) may be nil.
func LayerNormFn(x *Tensor, normalizedShape []int, weight, bias *Tensor, eps float64) *Tensor {
	k := len(normalizedShape)
	if k == 0 || x.Dim() < k || !sameShape(x.shape[x.Dim()-k:], normalizedShape) {
		shapeErr("LayerNorm", fmt.Sprintf("input does not end with normalized shape %v", normalizedShape), x.shape)
	}
	d := numel(normalizedShape)
	rows := 0
	if d > 0 {
		rows = len(x.data) / d
	}
	if rows > 0 && !needGrad(x, weight, bias) {
		return layerNormInfer(x, weight, bias, rows, d, eps)
	}
	return normRows(x, weight, bias, rows, d, 1, 1, eps, "NativeLayerNormBackward")
}

// LayerNorm is torch.nn.LayerNorm.
type LayerNorm struct {
	Base
	NormalizedShape []int
	Eps             float64
	Weight, Bias    *Tensor
}

// NewLayerNorm builds a LayerNorm over the trailing dimensions shape
// (options [Eps], [NoAffine]); weight starts at ones and bias at zeros.
func NewLayerNorm(b *Builder, shape []int, opts ...Option) *LayerNorm {
	o := collect(opts)
	m := &LayerNorm{NormalizedShape: append([]int(nil), shape...), Eps: 1e-5}
	if o.eps != 0 {
		m.Eps = o.eps
	}
	if !o.noAffine {
		m.Weight = b.Tensor("weight", shape, fillInit(1))
		m.Bias = b.Tensor("bias", shape, nil)
	}
	m.RegisterParameter("weight", &m.Weight)
	m.RegisterParameter("bias", &m.Bias)
	return m
}

// Forward normalises x over the trailing dimensions.
func (m *LayerNorm) Forward(x *Tensor) *Tensor {
	return LayerNormFn(x, m.NormalizedShape, m.Weight, m.Bias, m.Eps)
}

// ExtraRepr prints torch's "(d,), eps=.., elementwise_affine=..".
func (m *LayerNorm) ExtraRepr() string {
	return fmt.Sprintf("%s, eps=%s, elementwise_affine=%s", pyTuple(m.NormalizedShape...), pyFloat(m.Eps), pyBool(m.Weight != nil))
}

// String returns torch's repr of the module.
func (m *LayerNorm) String() string { return Repr(m) }

// GroupNormFn is torch.nn.functional.group_norm over x [N, C, ...] with
// per-channel weight and bias (either may be nil).
func GroupNormFn(x *Tensor, groups int, weight, bias *Tensor, eps float64) *Tensor {
	if x.Dim() < 2 || groups <= 0 || x.shape[1]%groups != 0 {
		shapeErr("GroupNorm", fmt.Sprintf("channels not divisible by %d groups", groups), x.shape)
	}
	n, c := x.shape[0], x.shape[1]
	inner := numel(x.shape[2:])
	cg := c / groups
	d := cg * inner
	return normRows(x, weight, bias, n*groups, d, groups, max(inner, 1), eps, "NativeGroupNormBackward")
}

// GroupNorm is torch.nn.GroupNorm.
type GroupNorm struct {
	Base
	NumGroups, NumChannels int
	Eps                    float64
	Weight, Bias           *Tensor
}

// NewGroupNorm builds a GroupNorm (options [Eps], [NoAffine]).
func NewGroupNorm(b *Builder, groups, channels int, opts ...Option) *GroupNorm {
	o := collect(opts)
	if groups <= 0 || channels%groups != 0 {
		panic(fmt.Sprintf("nn: GroupNorm: num_channels %d must be divisible by num_groups %d", channels, groups))
	}
	m := &GroupNorm{NumGroups: groups, NumChannels: channels, Eps: 1e-5}
	if o.eps != 0 {
		m.Eps = o.eps
	}
	if !o.noAffine {
		m.Weight = b.Tensor("weight", []int{channels}, fillInit(1))
		m.Bias = b.Tensor("bias", []int{channels}, nil)
	}
	m.RegisterParameter("weight", &m.Weight)
	m.RegisterParameter("bias", &m.Bias)
	return m
}

// Forward normalises x [N, C, ...] per group.
func (m *GroupNorm) Forward(x *Tensor) *Tensor {
	return GroupNormFn(x, m.NumGroups, m.Weight, m.Bias, m.Eps)
}

// ExtraRepr prints torch's "G, C, eps=.., affine=..".
func (m *GroupNorm) ExtraRepr() string {
	return fmt.Sprintf("%d, %d, eps=%s, affine=%s", m.NumGroups, m.NumChannels, pyFloat(m.Eps), pyBool(m.Weight != nil))
}

// String returns torch's repr of the module.
func (m *GroupNorm) String() string { return Repr(m) }
