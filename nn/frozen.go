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
type frozenCache struct {
	version uint64
	bn      *BatchNorm2d
	e       *convPrep
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
// bn (nil for none) when both are frozen by [Freeze] and nothing the
// convolution reads requires grad, building it on first use; nil
// otherwise, for the caller to run the layers as they are.
func frozenPrep(conv *Conv2d, bn *BatchNorm2d) *convPrep {
	if !conv.frozen || bn != nil && !bn.frozen || needGrad(conv.Weight, conv.Bias) {
		return nil
	}
	key := convKey{conv: conv, bn: bn}
	v := frozenVersion.Load()
	if c := conv.frozenCopy.Load(); c != nil && c.version == v && c.bn == bn && c.e.src == key.sources() {
		return c.e
	}
	e := newConvPrep(conv.Weight, conv.Bias, bn, conv.ConvParams)
	e.src = key.sources()
	if len(e.packed) > 0 && !winogradShape(e.w.shape, conv.ConvParams) {
		// Only depthwise layers (which have no packed copy) and layers
		// that may run through Winograd (which transforms the folded
		// weights at their first call) read the folded weights
		// themselves; the rest need their shape alone, and a frozen
		// backbone then keeps one copy of its weights besides the
		// model's, not two.
		e.w = &Tensor{shape: e.w.shape}
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
	conv.frozenCopy.Store(&frozenCache{version: v, bn: bn, e: e})
	return e
}
