package nn

import (
	"sync"
	"sync/atomic"
)

// A frozen part of a model ([Freeze]: no gradients, evaluation mode kept)
// computes what it would compute inside an [Infer] call, during training
// too: its convolutions run with the BatchNorm that follows folded into
// their weights, packed once for the GEMM, and bias, residual and
// activation applied in the epilogue, as a [Prepare]d module's do. The
// folded, packed copy lives in the convolution (Conv2d.frozenCopy) and is
// rebuilt when frozenVersion moves on.

// frozenVersion counts the changes a frozen convolution's prepared copy
// must see. Every [MarkModified] bumps it; an optimizer step
// ([MarkStepped]) bumps it only when it updated a tensor some frozen
// convolution was prepared from, so a training step that updates the
// classifier does not make the frozen backbone repack its weights.
var frozenVersion atomic.Uint64

// frozenSources is the set of tensors the frozen copies built at version
// were made from; it is emptied when the version moves on.
var frozenSources struct {
	mu      sync.Mutex
	version uint64
	set     map[*Tensor]bool
}

// frozenCache is a frozen convolution's prepared copy, with the batch norm
// folded into it (nil for none) and the frozenVersion it was built at.
// winoOnly marks a copy that holds the Winograd weights alone (see
// frozenPrep).
type frozenCache struct {
	version  uint64
	bn       *BatchNorm2d
	e        *convPrep
	winoOnly bool
}

// MarkStepped tells prepared modules that an optimizer updated params in
// place, as [MarkModified] does, except that the prepared copies of frozen
// layers ([Freeze]) are kept unless one of params is a tensor they were
// made from. nn/optim's Optimizer.Step calls it with the parameters it
// updated.
func MarkStepped(params []*Tensor) {
	paramsVersion.Add(1)
	frozenSources.mu.Lock()
	hit := false
	for _, p := range params {
		if frozenSources.set[p] {
			hit = true
			break
		}
	}
	frozenSources.mu.Unlock()
	if hit {
		frozenVersion.Add(1)
	}
}

// frozenPrep returns the prepared form of conv followed by the eval-mode
// bn (nil for none), for input x, when both are frozen by [Freeze] and
// nothing the convolution reads requires grad, building it on first use;
// nil otherwise, for the caller to run the layers as they are.
//
// A frozen copy is long-lived memory beside the model's own weights, and
// the garbage collector lets the heap grow to twice what is live, so each
// byte of it costs about two of peak memory in a training step. It keeps
// one form of the weights where it can: a layer that x's shape sends
// through Winograd keeps only its Winograd weights (neither the folded
// weights they are made from nor a packed copy); a layer that may run
// through Winograd but does not for x keeps the folded and packed weights
// (the folded ones for a later input that does); the rest keep the packed
// weights and the shape alone. A Winograd-only copy met by an input that
// takes the GEMM is rebuilt in the second form.
func frozenPrep(conv *Conv2d, bn *BatchNorm2d, x *Tensor) *convPrep {
	if !conv.frozen || bn != nil && !bn.frozen || needGrad(conv.Weight, conv.Bias) {
		return nil
	}
	key := convKey{conv: conv, bn: bn}
	v := frozenVersion.Load()
	wino := false
	if winogradShape(conv.Weight.shape, conv.ConvParams) && x.Dim() == 4 {
		g := convGeometry(x, conv.Weight, nil, conv.ConvParams)
		wino = useWinograd(&g)
	}
	if c := conv.frozenCopy.Load(); c != nil && c.version == v && c.bn == bn && c.e.src == key.sources() &&
		(wino || !c.winoOnly) {
		return c.e
	}
	e := foldConvPrep(conv.Weight, conv.Bias, bn, conv.ConvParams)
	e.src = key.sources()
	switch {
	case wino:
		g := convGeometry(x, e.w, nil, e.p)
		e.winograd(&g)
		e.w = &Tensor{shape: e.w.shape}
	case winogradShape(e.w.shape, conv.ConvParams):
		e.pack() // the folded weights stay, for Winograd at a later input
	default:
		e.pack()
		if len(e.packed) > 0 {
			// Only depthwise layers (which have no packed copy) read the
			// folded weights themselves.
			e.w = &Tensor{shape: e.w.shape}
		}
	}
	frozenSources.mu.Lock()
	if frozenSources.set == nil || frozenSources.version != v {
		frozenSources.set, frozenSources.version = map[*Tensor]bool{}, v
	}
	for _, t := range e.src {
		if t != nil {
			frozenSources.set[t] = true
		}
	}
	frozenSources.mu.Unlock()
	conv.frozenCopy.Store(&frozenCache{version: v, bn: bn, e: e, winoOnly: wino})
	return e
}
