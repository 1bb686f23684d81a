package optim

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/ckptkit/ckpt/nn"
)

// Algorithm names an update rule, as torch's optimizer class name.
type Algorithm string

// The update rules of this package.
const (
	SGD   Algorithm = "SGD"
	Adam  Algorithm = "Adam"
	AdamW Algorithm = "AdamW"
)

// Hyper holds the hyper-parameters of one parameter group. Each algorithm
// reads its own fields (torch's keyword arguments): SGD LR, Momentum,
// Dampening, WeightDecay, Nesterov, Maximize; Adam and AdamW LR, Betas, Eps,
// WeightDecay, AMSGrad, Maximize.
type Hyper struct {
	LR          float64
	Momentum    float64
	Dampening   float64
	WeightDecay float64
	Nesterov    bool
	Maximize    bool
	Betas       [2]float64
	Eps         float64
	AMSGrad     bool
}

// Option sets a hyper-parameter, for an optimizer's defaults or for one
// group: optim.NewSGD(params, optim.LR(0.1), optim.Momentum(0.9)).
type Option func(*Hyper)

// LR sets the learning rate.
func LR(v float64) Option { return func(h *Hyper) { h.LR = v } }

// Momentum sets SGD's momentum factor.
func Momentum(v float64) Option { return func(h *Hyper) { h.Momentum = v } }

// Dampening sets SGD's dampening of the momentum.
func Dampening(v float64) Option { return func(h *Hyper) { h.Dampening = v } }

// WeightDecay sets the L2 penalty (SGD, Adam) or the decoupled weight decay
// (AdamW).
func WeightDecay(v float64) Option { return func(h *Hyper) { h.WeightDecay = v } }

// Nesterov enables Nesterov momentum (SGD; it needs Momentum > 0 and no
// Dampening).
func Nesterov() Option { return func(h *Hyper) { h.Nesterov = true } }

// Maximize makes the optimizer ascend the objective instead of descending.
func Maximize() Option { return func(h *Hyper) { h.Maximize = true } }

// Betas sets Adam's running-average coefficients (torch's betas).
func Betas(b1, b2 float64) Option { return func(h *Hyper) { h.Betas = [2]float64{b1, b2} } }

// Eps sets Adam's denominator term.
func Eps(v float64) Option { return func(h *Hyper) { h.Eps = v } }

// AMSGrad enables the AMSGrad variant of Adam and AdamW.
func AMSGrad() Option { return func(h *Hyper) { h.AMSGrad = true } }

// Group is a parameter group: parameters that share hyper-parameters
// (torch's optimizer.param_groups[i]). Schedulers change Hyper.LR; code may
// change any field between steps.
type Group struct {
	Params []*nn.Tensor
	Hyper
	// InitialLR is the learning rate a scheduler started from (torch's
	// "initial_lr"); 0 means none yet, and the first scheduler made on the
	// optimizer sets it to LR.
	InitialLR float64
}

// Optimizer updates parameters from their gradients with one algorithm, over
// one or more parameter groups, as torch.optim's optimizers.
//
// Step updates only the parameters that require grad and hold a gradient;
// the others are skipped and their state is left untouched (torch skips a
// parameter whose grad is None). Per-parameter state (SGD's momentum buffer,
// Adam's step and moving averages) is created at a parameter's first update.
//
// Arithmetic follows torch's CPU kernels operation by operation in float32,
// so results agree with torch to a few ulps per step.
type Optimizer struct {
	// Algorithm is the update rule.
	Algorithm Algorithm
	// Groups are the parameter groups in order; parameter indices in a
	// state dict count through them in this order.
	Groups []*Group

	defaults Hyper
	state    map[*nn.Tensor]*paramState
}

// paramState is what torch keeps in optimizer.state[p].
type paramState struct {
	momentum   []float32 // SGD momentum_buffer, nil until momentum is used
	step       float64   // Adam's step (a float32 tensor in torch 1.13)
	expAvg     []float32
	expAvgSq   []float32
	maxExpAvg  []float32 // max_exp_avg_sq with AMSGrad
	hasMomSlot bool      // SGD has run on it (torch stores momentum_buffer=None)
}

func defaultsFor(alg Algorithm) Hyper {
	switch alg {
	case Adam:
		return Hyper{LR: 1e-3, Betas: [2]float64{0.9, 0.999}, Eps: 1e-8}
	case AdamW:
		return Hyper{LR: 1e-3, Betas: [2]float64{0.9, 0.999}, Eps: 1e-8, WeightDecay: 1e-2}
	}
	return Hyper{}
}

// New returns an optimizer running alg over params (one group) with torch's
// defaults for alg changed by opts. SGD has no default learning rate: LR must
// be given. Invalid hyper-parameters are reported as errors, as torch raises
// ValueError.
func New(alg Algorithm, params []*nn.Tensor, opts ...Option) (*Optimizer, error) {
	switch alg {
	case SGD, Adam, AdamW:
	default:
		return nil, fmt.Errorf("optim: unknown algorithm %q", alg)
	}
	h := defaultsFor(alg)
	if alg == SGD {
		h.LR = math.NaN() // torch's lr=required
	}
	for _, o := range opts {
		o(&h)
	}
	if math.IsNaN(h.LR) {
		return nil, errors.New("optim: SGD needs a learning rate (optim.LR)")
	}
	o := &Optimizer{Algorithm: alg, defaults: h, state: map[*nn.Tensor]*paramState{}}
	if _, err := o.AddParamGroup(params); err != nil {
		return nil, err
	}
	return o, nil
}

// NewSGD is New(SGD, ...): stochastic gradient descent with optional
// momentum, dampening, Nesterov momentum, weight decay and maximize.
func NewSGD(params []*nn.Tensor, opts ...Option) (*Optimizer, error) {
	return New(SGD, params, opts...)
}

// NewAdam is New(Adam, ...) (defaults lr 1e-3, betas (0.9, 0.999), eps 1e-8).
func NewAdam(params []*nn.Tensor, opts ...Option) (*Optimizer, error) {
	return New(Adam, params, opts...)
}

// NewAdamW is New(AdamW, ...) (as Adam, with decoupled weight decay 1e-2 by
// default).
func NewAdamW(params []*nn.Tensor, opts ...Option) (*Optimizer, error) {
	return New(AdamW, params, opts...)
}

// Defaults returns the hyper-parameters new groups start from.
func (o *Optimizer) Defaults() Hyper { return o.defaults }

// AddParamGroup adds a group of params whose hyper-parameters are the
// optimizer's defaults changed by opts (torch's add_param_group). A parameter
// may belong to one group only.
func (o *Optimizer) AddParamGroup(params []*nn.Tensor, opts ...Option) (*Group, error) {
	h := o.defaults
	for _, op := range opts {
		op(&h)
	}
	if err := validate(o.Algorithm, h); err != nil {
		return nil, err
	}
	seen := map[*nn.Tensor]bool{}
	for _, g := range o.Groups {
		for _, p := range g.Params {
			seen[p] = true
		}
	}
	for i, p := range params {
		if p == nil {
			return nil, fmt.Errorf("optim: parameter %d is nil", i)
		}
		if seen[p] {
			return nil, fmt.Errorf("optim: parameter %d appears in more than one parameter group", i)
		}
		seen[p] = true
	}
	g := &Group{Params: append([]*nn.Tensor(nil), params...), Hyper: h}
	o.Groups = append(o.Groups, g)
	return g, nil
}

func validate(alg Algorithm, h Hyper) error {
	switch {
	case h.LR < 0 || math.IsNaN(h.LR):
		return fmt.Errorf("optim: invalid learning rate: %v", h.LR)
	case h.WeightDecay < 0:
		return fmt.Errorf("optim: invalid weight_decay value: %v", h.WeightDecay)
	}
	if alg == SGD {
		if h.Momentum < 0 {
			return fmt.Errorf("optim: invalid momentum value: %v", h.Momentum)
		}
		if h.Nesterov && (h.Momentum <= 0 || h.Dampening != 0) {
			return errors.New("optim: nesterov momentum requires a momentum and zero dampening")
		}
		return nil
	}
	switch {
	case h.Eps < 0:
		return fmt.Errorf("optim: invalid epsilon value: %v", h.Eps)
	case h.Betas[0] < 0 || h.Betas[0] >= 1:
		return fmt.Errorf("optim: invalid beta parameter at index 0: %v", h.Betas[0])
	case h.Betas[1] < 0 || h.Betas[1] >= 1:
		return fmt.Errorf("optim: invalid beta parameter at index 1: %v", h.Betas[1])
	}
	return nil
}

// Params returns every parameter of every group, in state-dict index order.
func (o *Optimizer) Params() []*nn.Tensor {
	var ps []*nn.Tensor
	for _, g := range o.Groups {
		ps = append(ps, g.Params...)
	}
	return ps
}

// ZeroGrad drops the gradient of every parameter of the optimizer
// (zero_grad(set_to_none=True), torch 2's default): the next Step skips a
// parameter that gets no new gradient.
func (o *Optimizer) ZeroGrad() {
	for _, p := range o.Params() {
		p.ZeroGrad()
	}
}

// Step performs one update of every parameter that requires grad and has a
// gradient.
func (o *Optimizer) Step() {
	var stepped []*nn.Tensor
	defer func() { nn.MarkStepped(stepped) }() // prepared modules must see the new weights
	var work []stepWork
	defer func() { runSteps(work) }()
	for _, g := range o.Groups {
		for _, p := range g.Params {
			if !p.RequiresGrad() || p.Grad() == nil {
				continue
			}
			stepped = append(stepped, p)
			st := o.state[p]
			if st == nil {
				st = &paramState{}
				o.state[p] = st
			}
			switch o.Algorithm {
			case SGD:
				work = append(work, stepWork{p.Numel(), sgdStep(p, st, &g.Hyper)})
			case Adam, AdamW:
				work = append(work, stepWork{p.Numel(), adamStep(p, st, &g.Hyper, o.Algorithm == AdamW)})
			}
		}
	}
}

// sgdStep is torch 1.13's _single_tensor_sgd for one parameter, fused into
// one pass per element with torch's float32 operations in torch's order.
// It readies the state and returns the update of elements [lo, hi), for
// runSteps to split across goroutines (each element's update reads and
// writes only that element, so any split gives the same bits).
func sgdStep(p *nn.Tensor, st *paramState, h *Hyper) func(lo, hi int) {
	w, grad := p.Data(), p.Grad().Data()
	grad = grad[:len(w)]
	st.hasMomSlot = true
	wd, lr := float32(h.WeightDecay), float32(-h.LR)
	m, damp := float32(h.Momentum), float32(1-h.Dampening)
	first := h.Momentum != 0 && st.momentum == nil
	if first {
		st.momentum = make([]float32, len(w))
	}
	buf := st.momentum
	if h.Momentum != 0 && !first && !h.Maximize && h.WeightDecay == 0 && !h.Nesterov {
		// The common case (SGD with momentum, nothing else) without the
		// per-element tests.
		return func(lo, hi int) {
			w, b := w[lo:hi], buf[lo:hi]
			for i, d := range grad[lo:hi] {
				b[i] = b[i]*m + damp*d
				w[i] = w[i] + lr*b[i]
			}
		}
	}
	return func(lo, hi int) {
		for i := lo; i < hi; i++ {
			d := grad[i]
			if h.Maximize {
				d = -d
			}
			if h.WeightDecay != 0 {
				d = d + wd*w[i]
			}
			if h.Momentum != 0 {
				if first {
					buf[i] = d
				} else {
					buf[i] = buf[i]*m + damp*d
				}
				if h.Nesterov {
					d = d + m*buf[i]
				} else {
					d = buf[i]
				}
			}
			w[i] = w[i] + lr*d
		}
	}
}

// stepWork is one parameter's update: f updates its elements [lo, hi),
// of n.
type stepWork struct {
	n int
	f func(lo, hi int)
}

// stepChunk is the number of elements a goroutine updates at a time (128
// KiB of each operand).
const stepChunk = 1 << 15

// runSteps runs the updates, split into chunks of stepChunk elements over
// GOMAXPROCS goroutines when there are several chunks.
func runSteps(work []stepWork) {
	total := 0
	for _, s := range work {
		total += s.n
	}
	threads := min(runtime.GOMAXPROCS(0), (total+stepChunk-1)/stepChunk)
	if threads <= 1 {
		for _, s := range work {
			s.f(0, s.n)
		}
		return
	}
	type chunk struct{ s, lo, hi int }
	var chunks []chunk
	for i, s := range work {
		for lo := 0; lo < s.n; lo += stepChunk {
			chunks = append(chunks, chunk{i, lo, min(lo+stepChunk, s.n)})
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	run := func() {
		for {
			k := int(next.Add(1)) - 1
			if k >= len(chunks) {
				return
			}
			c := chunks[k]
			work[c.s].f(c.lo, c.hi)
		}
	}
	for range threads - 1 {
		wg.Go(run)
	}
	run()
	wg.Wait()
}

// adamStep is torch 1.13's _single_tensor_adam / _single_tensor_adamw for
// one parameter (not capturable, not differentiable), fused into one pass
// per element with torch's float32 operations in torch's order. As
// sgdStep, it returns the update of elements [lo, hi) for runSteps.
func adamStep(p *nn.Tensor, st *paramState, h *Hyper, decoupled bool) func(lo, hi int) {
	w, grad := p.Data(), p.Grad().Data()
	n := len(w)
	if st.expAvg == nil {
		st.expAvg = make([]float32, n)
		st.expAvgSq = make([]float32, n)
	}
	if h.AMSGrad && st.maxExpAvg == nil {
		st.maxExpAvg = make([]float32, n)
	}
	// step is a float32 tensor in torch; it counts exactly up to 2^24.
	st.step = float64(float32(st.step + 1))
	b1, b2 := h.Betas[0], h.Betas[1]
	f1, a1 := float32(b1), float32(1-b1)
	f2, a2 := float32(b2), float32(1-b2)
	wd, decay := float32(h.WeightDecay), float32(1-h.LR*h.WeightDecay)
	bc1 := 1 - math.Pow(b1, st.step)
	bc2 := 1 - math.Pow(b2, st.step)
	stepSize := float32(-(h.LR / bc1))
	bc2s := float32(math.Sqrt(bc2))
	eps := float32(h.Eps)
	m, v := st.expAvg, st.expAvgSq
	grad = grad[:n]
	return func(lo, hi int) {
		adamRange(w, grad, m, v, st.maxExpAvg, h, decoupled, lo, hi, f1, a1, f2, a2, wd, decay, stepSize, bc2s, eps)
	}
}

// adamRange is adamStep's update of elements [lo, hi).
func adamRange(w, grad, m, v, maxExpAvg []float32, h *Hyper, decoupled bool, lo, hi int, f1, a1, f2, a2, wd, decay, stepSize, bc2s, eps float32) {
	for i := lo; i < hi; i++ {
		g := grad[i]
		if h.Maximize {
			g = -g
		}
		if h.WeightDecay != 0 {
			if decoupled {
				w[i] *= decay
			} else {
				g = g + wd*w[i]
			}
		}
		m[i] = m[i]*f1 + a1*g
		v[i] = v[i]*f2 + a2*(g*g)
		vi := v[i]
		if h.AMSGrad {
			if vi > maxExpAvg[i] || vi != vi {
				maxExpAvg[i] = vi
			}
			vi = maxExpAvg[i]
		}
		denom := sqrt32(vi)/bc2s + eps
		w[i] = w[i] + stepSize*(m[i]/denom)
	}
}

func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }
