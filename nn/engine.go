package nn

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/ckptkit/ckpt/nn/gemm"
	"github.com/ckptkit/ckpt/nn/internal/vec"
)

// This file is nn's inference engine: the preparation step ([Prepare]),
// the fused convolution it runs ([ConvBNAct]) and the in-place chain that
// Sequential runs when no graph is recorded.

// paramsVersion counts the changes to parameters and module structure that
// a prepared module must see: every mutating path of the package bumps it
// (LoadStateDict, CopyFrom, Train and Eval, registering or replacing a
// parameter, buffer or child), as does an optimizer step (through
// [MarkModified]). A plan built at one version is thrown away at the next
// call after it changed.
var paramsVersion atomic.Uint64

// MarkModified tells prepared modules ([Prepare]) that parameters or buffers
// were changed in place through [Tensor.Data]: their folded and packed
// copies are rebuilt on the next [Infer] call. The package's own mutating
// paths (LoadStateDict, CopyFrom, Train, Eval, registering a parameter or
// child) and nn/optim's Optimizer.Step call it already.
func MarkModified() {
	paramsVersion.Add(1)
	frozenVersion.Add(1)
}

// Prepare readies m for fast inference through [Infer], in the spirit of
// torch's optimize_for_inference: from then on, Infer(m, x) runs every
// convolution of m's tree with its weights folded with the eval-mode
// BatchNorm2d that follows it (in an [Sequential], or through
// [ConvBNAct]), packed once for the GEMM instead of on every call, and
// with bias, residual and activation applied in the GEMM's epilogue while
// each block of the output is in cache. The same holds for the
// convolutions of any module whose layers run through Sequential,
// ConvBNAct or [Conv2dFn] (an nn/graph imported ONNX model packs its Conv
// weights this way).
//
// The rule for weights that change afterwards: the folded and packed copies
// are built from the weights as they are at the first Infer call after
// Prepare, and rebuilt at the first call after any change the package can
// see ([MarkModified]: LoadStateDict, CopyFrom, Train, Eval, a replaced
// parameter or child, an optimizer step). A write through Tensor.Data that
// bypasses these must be followed by MarkModified or Prepare. m.Forward
// called directly, and Infer on a module never prepared, do not use the
// prepared copies. A module in training mode (anywhere in its tree) runs
// unprepared: BatchNorm then uses batch statistics, which cannot be
// folded.
//
// Prepare returns an error when m is in training mode; call m.Eval() first.
func Prepare(m Module) error {
	for _, s := range Modules(m) {
		if s.Training() {
			return fmt.Errorf("nn: Prepare: %s is in training mode; call Eval first", typeName(s))
		}
	}
	m.base().plan = &plan{}
	return nil
}

// Unprepare drops what [Prepare] made for m: Infer runs it as it would
// without.
func Unprepare(m Module) { m.base().plan = nil }

// plan is a prepared module's folded, packed convolutions, built as the
// calls meet them and dropped when paramsVersion moves on.
type plan struct {
	mu       sync.Mutex
	version  uint64
	training bool // some module of the tree is training: run unprepared
	convs    map[convKey]*convPrep
	linears  map[linKey]*linPrep // Linear weights packed (linear_prep.go)
}

// convKey names a convolution as prepared: with the batch norm folded into
// it (nil for none), or by its weight tensor alone (Conv2dFn).
type convKey struct {
	conv *Conv2d
	bn   *BatchNorm2d
	w, b *Tensor
}

// sources returns the tensors a prepared convolution is made from: a
// replaced tensor (a new Weight) makes it stale.
func (k convKey) sources() (s [6]*Tensor) {
	if k.conv != nil {
		s[0], s[1] = k.conv.Weight, k.conv.Bias
	} else {
		s[0], s[1] = k.w, k.b
	}
	if k.bn != nil {
		s[2], s[3], s[4], s[5] = k.bn.Weight, k.bn.Bias, k.bn.RunningMean, k.bn.RunningVar
	}
	return s
}

// check makes the plan current for m at the start of an Infer call: it
// returns nil when m must run unprepared.
func (pl *plan) check(m Module) *plan {
	v := paramsVersion.Load()
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.convs == nil || pl.version != v {
		pl.convs = map[convKey]*convPrep{}
		pl.linears = nil
		pl.version = v
		pl.training = false
		for _, s := range Modules(m) {
			if s.Training() {
				pl.training = true
			}
		}
	}
	if pl.training {
		return nil
	}
	return pl
}

// get returns the prepared form of key, building it with mk on first use.
func (pl *plan) get(key convKey, mk func() *convPrep) *convPrep {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	e, ok := pl.convs[key]
	if !ok || e.src != key.sources() {
		e = mk()
		e.src = key.sources()
		pl.convs[key] = e
	}
	return e
}

// planOf returns the plan of the Infer call x belongs to, nil for none.
func planOf(x *Tensor) *plan {
	if x == nil || x.arena == nil {
		return nil
	}
	return x.arena.plan
}

// convPrep is one prepared convolution: its weights (folded with a batch
// norm when there is one) as a tensor for the direct loops and packed for
// the GEMM, one packed matrix per group, and its bias (nil for none).
type convPrep struct {
	src    [6]*Tensor // the tensors it was made from (convKey.sources)
	p      ConvParams
	w      *Tensor
	bias   []float32
	packed []*gemm.PackedA

	winoOnce sync.Once // builds wino on the first pass that uses it
	wino     *winoPrep
}

// newConvPrep folds bn (may be nil) into w and b and packs the result.
func newConvPrep(w, b *Tensor, bn *BatchNorm2d, p ConvParams) *convPrep {
	e := foldConvPrep(w, b, bn, p)
	e.pack()
	return e
}

// foldConvPrep returns w and b with bn (may be nil) folded into them, not
// yet packed.
func foldConvPrep(w, b *Tensor, bn *BatchNorm2d, p ConvParams) *convPrep {
	if p.Groups <= 0 {
		p.Groups = 1
	}
	o := w.shape[0]
	per := len(w.data) / o
	e := &convPrep{p: p, w: &Tensor{data: append([]float32(nil), w.data...), shape: cloneInts(w.shape)}}
	if b != nil {
		e.bias = append([]float32(nil), b.data...)
	}
	if bn != nil {
		if e.bias == nil {
			e.bias = make([]float32, o)
		}
		for oc := range o {
			scale, shift := bnAffine(bn, oc)
			ws := e.w.data[oc*per : (oc+1)*per]
			for i := range ws {
				ws[i] = float32(float64(ws[i]) * float64(scale))
			}
			e.bias[oc] = float32(float64(e.bias[oc])*float64(scale) + float64(shift))
		}
	}
	return e
}

// pack packs e's folded weights for the GEMM, one matrix per group
// (depthwise layers, which run their own loop, have none).
func (e *convPrep) pack() {
	o, cg, p := e.w.shape[0], e.w.shape[1], e.p
	per := len(e.w.data) / o
	if !(cg == 1 && o == p.Groups && p.Groups > 1) {
		og := o / p.Groups
		for gr := range p.Groups {
			e.packed = append(e.packed, gemm.PackA(false, og, per, e.w.data[gr*og*per:], per))
		}
	}
}

// bnAffine returns channel ch's eval-mode BatchNorm as an affine map,
// y = x*scale + shift (its running statistics and affine parameters, when
// it has them, folded together).
func bnAffine(bn *BatchNorm2d, ch int) (scale, shift float32) {
	mean, vr := bn.RunningMean.data, bn.RunningVar.data
	s := 1 / math.Sqrt(float64(vr[ch])+bn.Eps)
	sh := -float64(mean[ch]) * s
	if bn.Weight != nil {
		w, b := float64(bn.Weight.data[ch]), float64(bn.Bias.data[ch])
		s *= w
		sh = sh*w + b
	}
	return float32(s), float32(sh)
}

// finishRow applies a bias, a residual (nil for none) and an activation to
// one row of an output, in place.
func finishRow(row []float32, bias float32, res []float32, a vec.Act) {
	if res == nil {
		vec.AffineApply(row, 1, bias, a)
		return
	}
	res = res[:len(row)]
	if bias == 0 && a == vec.ReLU {
		vec.AddReLU(row, res)
		return
	}
	for i, r := range res {
		row[i] += r + bias
	}
	if a != vec.Identity {
		vec.Apply(row, a)
	}
}

// forward runs the prepared convolution on x, then adds res (nil for none)
// and applies a, all in the product's epilogue where the layer goes
// through the GEMM.
func (e *convPrep) forward(x, res *Tensor, a vec.Act) *Tensor {
	g := convGeometry(x, e.w, nil, e.p)
	if depthwiseOutOfRange(&g) {
		y := conv2dPadded(x, e.w, e.p)
		finishInPlace(y, e.bias, res, a)
		return y
	}
	out := newResultData([]int{g.n, g.o, g.oh, g.ow}, false, x)
	var rd []float32
	if res != nil {
		if !sameShape(res.shape, out.shape) {
			shapeErr("ConvBNAct", "residual does not match the convolution's output", res.shape, out.shape)
		}
		rd = res.data
	}
	bias := func(i int) float32 {
		if e.bias == nil {
			return 0
		}
		return e.bias[i]
	}
	gf, xd := g, x.data
	if g.sw == 2 && g.kw > 1 && !g.depthwise() {
		dt := deinterleaveCols(x, g.wd)
		defer Release(dt)
		xd, gf.colsDeint = dt.data, true
	}
	switch {
	case useWinograd(&g) && (len(e.w.data) > 0 || e.wino != nil): // a frozen copy may keep only the packed or the Winograd weights
		winoForward(&g, e.winograd(&g), x, out.data, e.bias, rd, a)
	case g.depthwise() && res == nil:
		// Bias and activation applied plane by plane as the filter
		// writes them.
		depthwiseForwardAct(&g, x.data, e.w.data, e.bias, a, out.data)
	case g.depthwise():
		depthwiseForward(&g, x.data, e.w.data, nil, out.data)
		finishInPlace(out, e.bias, res, a)
	case g.groups != 1:
		hw := g.h * g.wd
		for n := range g.n {
			for gr := range g.groups {
				xin := xd[(n*g.c+gr*g.cg)*hw:]
				dst := out.data[(n*g.o+gr*g.og)*g.ohw:]
				if g.pointwise() {
					e.packed[gr].SgemmEpilogue(false, g.ohw, xin, g.ohw, dst, g.ohw, nil)
				} else {
					e.packed[gr].SgemmSourceEpilogue(g.ohw, &colSource{g: gf, x: xin}, dst, g.ohw, nil)
				}
			}
		}
		finishInPlace(out, e.bias, res, a)
	case g.n > 1 && g.k > g.ohw:
		// All images in one product (see convBatched), finished as the
		// [O, N*ohw] result is scattered into [N, O, ohw].
		cols := g.n * g.ohw
		tt := newResultData([]int{g.o, cols}, false, x)
		defer Release(tt)
		tmp := tt.data
		src := &colSource{g: gf, x: xd, imageStride: g.c * g.h * g.wd}
		e.packed[0].SgemmSourceEpilogue(cols, src, tmp, cols, nil)
		od := out.data
		parallelFor(g.o, len(od), func(lo, hi int) {
			for oc := lo; oc < hi; oc++ {
				for n := range g.n {
					off := (n*g.o + oc) * g.ohw
					row := od[off : off+g.ohw]
					copy(row, tmp[oc*cols+n*g.ohw:])
					var r []float32
					if rd != nil {
						r = rd[off : off+g.ohw]
					}
					finishRow(row, bias(oc), r, a)
				}
			}
		})
	default:
		hw := g.h * g.wd
		for n := range g.n {
			xin := xd[n*g.c*hw:]
			dst := out.data[n*g.o*g.ohw : (n+1)*g.o*g.ohw]
			var rn []float32
			if rd != nil {
				rn = rd[n*g.o*g.ohw : (n+1)*g.o*g.ohw]
			}
			ohw := g.ohw
			epi := func(i0, i1, j0, j1 int) {
				for i := i0; i < i1; i++ {
					var r []float32
					if rn != nil {
						r = rn[i*ohw+j0 : i*ohw+j1]
					}
					finishRow(dst[i*ohw+j0:i*ohw+j1], bias(i), r, a)
				}
			}
			if g.pointwise() {
				e.packed[0].SgemmEpilogue(false, g.ohw, xin, g.ohw, dst, g.ohw, epi)
			} else {
				e.packed[0].SgemmSourceEpilogue(g.ohw, &colSource{g: gf, x: xin}, dst, g.ohw, epi)
			}
		}
	}
	return out
}

// finishInPlace applies a per-channel bias (nil for none), a residual (nil
// for none) and an activation to y [N, C, ...] in place, a channel plane at
// a time.
func finishInPlace(y *Tensor, bias []float32, res *Tensor, a vec.Act) {
	if bias == nil && res == nil && a == vec.Identity {
		return
	}
	n, c := y.shape[0], y.shape[1]
	hw := len(y.data) / (n * c)
	d := y.data
	var rd []float32
	if res != nil {
		if !sameShape(res.shape, y.shape) {
			shapeErr("ConvBNAct", "residual does not match the convolution's output", res.shape, y.shape)
		}
		rd = res.data
	}
	parallelFor(n*c, len(d), func(lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			var b float32
			if bias != nil {
				b = bias[nc%c]
			}
			var r []float32
			if rd != nil {
				r = rd[nc*hw : (nc+1)*hw]
			}
			finishRow(d[nc*hw:(nc+1)*hw], b, r, a)
		}
	})
}

// actOf reports which fusable activation m is.
func actOf(m Module) (vec.Act, bool) {
	switch m.(type) {
	case *ReLU:
		return vec.ReLU, true
	case *ReLU6:
		return vec.ReLU6, true
	case *Hardswish:
		return vec.Hardswish, true
	case *SiLU:
		return vec.SiLU, true
	case *Hardsigmoid:
		return vec.Hardsigmoid, true
	case *Sigmoid:
		return vec.Sigmoid, true
	}
	return vec.Identity, false
}

// ConvBNAct computes act(bn(conv(x)) + residual), where bn, act and
// residual may each be nil (skipped): the unit of a CNN, as one op. When a
// graph is recorded it runs the modules one after the other. Otherwise the
// batch norm (in eval mode) is one per-channel affine map; inside an
// [Infer] call of a [Prepare]d module it is folded into the convolution's
// packed weights and the bias, residual and activation are applied in the
// GEMM's epilogue, and without one they are applied in one pass over the
// convolution's output. act may be any module; ReLU, ReLU6, SiLU,
// Sigmoid, Hardswish and Hardsigmoid are fused, others run after.
func ConvBNAct(conv *Conv2d, bn *BatchNorm2d, act Module, x, residual *Tensor) *Tensor {
	a, fusable := vec.Identity, act == nil
	if act != nil {
		a, fusable = actOf(act)
	}
	bnOK := bn == nil || !bn.Training() && bn.RunningMean != nil
	if !bnOK && !needGrad(x, conv.Weight, conv.Bias, bn.Weight, bn.Bias, residual) {
		// A frozen layer in training mode: batch statistics, applied in
		// place to the convolution's output, so it writes no second
		// activation.
		_, relu := act.(*ReLU)
		relu = relu && residual == nil
		y := bn.ForwardInPlace(conv.Forward(x), relu)
		if residual != nil {
			y = y.Add(residual)
		}
		if act != nil && !relu {
			y = act.Forward(y)
		}
		return y
	}
	if !bnOK || needGrad(x, conv.Weight, conv.Bias, residual) ||
		bn != nil && needGrad(x, bn.Weight, bn.Bias) {
		y := conv.Forward(x)
		if fa, ok := trainFusedAct(act); ok && bn != nil && bn.Training() && y.Dim() == 4 &&
			(residual == nil || fa == vec.ReLU && sameShape(residual.shape, y.shape)) {
			return bn.forwardAct(y, fa, residual) // the normalised values are not stored
		}
		if bn != nil {
			y = bn.Forward(y)
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
		e := pl.get(convKey{conv: conv, bn: bn}, func() *convPrep {
			return newConvPrep(conv.Weight, conv.Bias, bn, conv.ConvParams)
		})
		y = e.forward(x, residual, a)
	} else if e := frozenPrep(conv, bn, x); e != nil {
		y = e.forward(x, residual, a) // a frozen layer runs as it would in Infer
	} else {
		y = conv.Forward(x)
		finishBN(y, bn, residual, a)
	}
	if !fusable {
		y = act.Forward(y)
	}
	return y
}

// finishBN applies eval-mode bn (nil for none), a residual (nil for none)
// and an activation to y in place, one pass per channel plane.
func finishBN(y *Tensor, bn *BatchNorm2d, res *Tensor, a vec.Act) {
	if bn == nil {
		finishInPlace(y, nil, res, a)
		return
	}
	n, c := y.shape[0], y.shape[1]
	hw := len(y.data) / (n * c)
	d := y.data
	var rd []float32
	if res != nil {
		if !sameShape(res.shape, y.shape) {
			shapeErr("ConvBNAct", "residual does not match the convolution's output", res.shape, y.shape)
		}
		rd = res.data
	}
	parallelFor(n*c, len(d), func(lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			scale, shift := bnAffine(bn, nc%c)
			row := d[nc*hw : (nc+1)*hw]
			if rd == nil {
				vec.AffineApply(row, scale, shift, a)
				continue
			}
			vec.AffineApply(row, scale, shift, vec.Identity)
			finishRow(row, 0, rd[nc*hw:(nc+1)*hw], a)
		}
	})
}

// conv2dPreparedFn is Conv2dFn inside a prepared Infer call: the weights
// packed once per plan, keyed by their tensors (an imported graph's Conv
// nodes, which hold no Conv2d).
func conv2dPreparedFn(pl *plan, x, w, b *Tensor, p ConvParams) *Tensor {
	e := pl.get(convKey{w: w, b: b}, func() *convPrep { return newConvPrep(w, b, nil, p) })
	if e.p != p && !(p.Groups == 0 && e.p.Groups == 1) {
		return conv2d(x, w, b, p)
	}
	return e.forward(x, nil, vec.Identity)
}

// depthwiseOutOfRange reports whether g is a depthwise convolution with
// unit width stride some of whose kernel columns fall wholly outside the
// input's width (a 5x5 kernel on a 1x1 map, as mobilenet_v3 meets at small
// input sizes), which the depthwise loop does not handle.
func depthwiseOutOfRange(g *convGeom) bool {
	if !g.depthwise() || g.sw != 1 {
		return false
	}
	for kj := range g.kw {
		off := kj*g.dw - g.pw
		lo := min(max(-off, 0), g.ow)
		if hi := min(max(g.wd-off, 0), g.ow); hi <= lo && (lo+off < 0 || lo+off > g.wd) {
			return true
		}
	}
	return false
}

// conv2dPadded convolves x with w (no bias) with its zero padding made
// explicit rows and columns of x, for the convolutions depthwiseOutOfRange
// reports.
func conv2dPadded(x, w *Tensor, p ConvParams) *Tensor {
	n, ch, h, wd := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	ph, pw := p.Padding[0], p.Padding[1]
	if ph > 0 {
		z := Zeros(n, ch, ph, wd)
		x = Cat([]*Tensor{z, x, z}, 2)
	}
	if pw > 0 {
		z := Zeros(n, ch, h+2*ph, pw)
		x = Cat([]*Tensor{z, x, z}, 3)
	}
	p.Padding = [2]int{0, 0}
	return conv2d(x, w, nil, p)
}

// OwnedForwarder is implemented by modules that take part in the in-place
// decisions of an inference chain (see [Sequential.Forward]): ForwardOwned
// runs the module on x, which it may overwrite when owned is set (x is an
// intermediate result nobody else reads), and reports whether its own
// result is one the caller may overwrite in turn.
type OwnedForwarder interface {
	ForwardOwned(x *Tensor, owned bool) (*Tensor, bool)
}

// ForwardOwned runs the children in order, as Forward, and reports whether
// the result may be overwritten. When no graph is recorded, each Conv2d
// with the eval-mode BatchNorm2d and activation that follow it runs as one
// [ConvBNAct], and an activation whose input is an intermediate result of
// the chain runs in place: the in-place decisions come from the chain's
// structure, not from a flag.
func (s *Sequential) ForwardOwned(x *Tensor, owned bool) (*Tensor, bool) {
	return s.chain(x, owned, nil)
}

// ForwardAdd returns s(x) + res (res of the output's shape), as
// s.Forward(x).Add(res). When no graph is recorded and the chain ends with a
// convolution unit without activation (a residual block's projection), res
// is added in that convolution's epilogue; otherwise it is added in place to
// the chain's own result.
func (s *Sequential) ForwardAdd(x, res *Tensor) *Tensor {
	y, _ := s.chain(x, false, res)
	return y
}

// residualAdder is a module that can add a residual to its result as it
// computes it (a Sequential, or a module embedding one).
type residualAdder interface {
	ForwardAdd(x, res *Tensor) *Tensor
}

// chain runs s's layers on x (owned: x may be overwritten) and adds res
// (nil for none) to the result.
func (s *Sequential) chain(x *Tensor, owned bool, res *Tensor) (*Tensor, bool) {
	layers := s.layers
	n := len(layers)
	for i := 0; i < n; i++ {
		switch m := layers[i].(type) {
		case *Conv2d:
			var bn *BatchNorm2d
			j := i + 1
			if j < n {
				if b, ok := layers[j].(*BatchNorm2d); ok && !b.Training() && b.RunningMean != nil {
					bn, j = b, j+1
				}
			}
			var act Module
			if j < n {
				if _, ok := actOf(layers[j]); ok {
					act, j = layers[j], j+1
				}
			}
			var r *Tensor
			if j == n && act == nil {
				r, res = res, nil // the residual goes in this unit's epilogue
			}
			x, owned = ConvBNAct(m, bn, act, x, r), true
			i = j - 1
		case *BatchNorm2d:
			if i+1 < n && m.Training() && x.Dim() == 4 && needGrad(x, m.Weight, m.Bias) {
				if fa, ok := trainFusedAct(layers[i+1]); ok {
					// Training with a graph: batch norm and activation as
					// one op, which stores no normalised values.
					x, owned = m.forwardAct(x, fa, nil), true
					i++
					continue
				}
			}
			y := m.Forward(x)
			owned = y != x
			x = y
		case residualAdder:
			if i == n-1 && res != nil {
				x, owned, res = m.ForwardAdd(x, res), true, nil
				continue
			}
			if f, ok := m.(OwnedForwarder); ok {
				x, owned = f.ForwardOwned(x, owned)
			} else {
				x, owned = layers[i].Forward(x), false
			}
		case OwnedForwarder:
			x, owned = m.ForwardOwned(x, owned)
		default:
			if a, ok := actOf(m); ok && owned && !needGrad(x) {
				inplaceAct(x, a)
				continue
			}
			y := m.Forward(x)
			owned = y != x && freshResult(m)
			x = y
		}
	}
	if res != nil {
		if owned && !needGrad(x, res) && sameShape(x.shape, res.shape) {
			finishInPlace(x, nil, res, vec.Identity)
		} else {
			x, owned = x.Add(res), true
		}
	}
	return x, owned
}

// freshResult reports whether m's Forward returns a new tensor that shares
// no memory with its input or its weights.
func freshResult(m Module) bool {
	switch m.(type) {
	case *Conv2d, *BatchNorm2d, *Linear, *MaxPool2d, *AvgPool2d, *AdaptiveAvgPool2d:
		return true
	}
	_, ok := actOf(m)
	return ok
}
