package nn

import (
	"fmt"
	"strconv"
)

// Sequential runs its children in order, each on the previous one's output.
// Children are named "0", "1", ... as in torch.
type Sequential struct {
	Base
	layers []Module
}

// NewSequential returns a Sequential of the given modules.
func NewSequential(ms ...Module) *Sequential {
	s := &Sequential{}
	for _, m := range ms {
		s.Append(m)
	}
	return s
}

// Append adds m as the next numbered child.
func (s *Sequential) Append(m Module) {
	i := len(s.layers)
	s.layers = append(s.layers, m)
	// The registered child reads and writes the list Forward runs, so a
	// child replaced by name (SetChild, AddModule, LoadStateDict's callers
	// re-heading a model) is the one that runs.
	s.addChildFunc(strconv.Itoa(i), func() Module { return s.layers[i] }, func(n Module) bool { s.layers[i] = n; return true })
}

// Len returns the number of children.
func (s *Sequential) Len() int { return len(s.layers) }

// At returns child i (negative counts from the end).
func (s *Sequential) At(i int) Module {
	if i < 0 {
		i += len(s.layers)
	}
	return s.layers[i]
}

// Set replaces child i (negative counts from the end), as torch's
// seq[i] = module; it panics if i is out of range.
func (s *Sequential) Set(i int, m Module) {
	if i < 0 {
		i += len(s.layers)
	}
	if i < 0 || i >= len(s.layers) {
		panic(fmt.Sprintf("nn: Sequential.Set: index %d out of range for %d layers", i, len(s.layers)))
	}
	s.SetChild(strconv.Itoa(i), m)
}

// Forward runs the children in order.
//
// When no graph is recorded it fuses as [Sequential.ForwardOwned] says, x
// itself never being overwritten.
func (s *Sequential) Forward(x *Tensor) *Tensor {
	y, _ := s.ForwardOwned(x, false)
	return y
}

// String returns torch's repr of the module.
func (s *Sequential) String() string { return Repr(s) }

// ModuleList holds numbered children without a forward of its own
// (torch.nn.ModuleList); its owner iterates over it.
type ModuleList struct {
	Sequential
}

// NewModuleList returns a ModuleList of the given modules.
func NewModuleList(ms ...Module) *ModuleList {
	l := &ModuleList{}
	for _, m := range ms {
		l.Append(m)
	}
	return l
}

// Forward panics: a ModuleList is not callable, as in torch.
func (l *ModuleList) Forward(x *Tensor) *Tensor {
	panic("nn: ModuleList has no Forward; iterate over its modules")
}

// ForwardOwned panics, as Forward does.
func (l *ModuleList) ForwardOwned(x *Tensor, owned bool) (*Tensor, bool) { return l.Forward(x), false }

// TypeName returns "ModuleList".
func (l *ModuleList) TypeName() string { return "ModuleList" }

// String returns torch's repr of the module.
func (l *ModuleList) String() string { return Repr(l) }

// Identity returns its input.
type Identity struct{ Base }

// NewIdentity returns an Identity module.
func NewIdentity() *Identity { return &Identity{} }

// Forward returns x.
func (m *Identity) Forward(x *Tensor) *Tensor { return x }

// String returns torch's repr of the module.
func (m *Identity) String() string { return Repr(m) }

// Flatten merges dimensions StartDim..EndDim (torch.nn.Flatten, defaults 1
// and -1).
type Flatten struct {
	Base
	StartDim, EndDim int
}

// NewFlatten returns a Flatten module.
func NewFlatten(start, end int) *Flatten { return &Flatten{StartDim: start, EndDim: end} }

// Forward flattens x.
func (m *Flatten) Forward(x *Tensor) *Tensor { return x.Flatten(m.StartDim, m.EndDim) }

// ExtraRepr prints "start_dim=.., end_dim=..".
func (m *Flatten) ExtraRepr() string {
	return fmt.Sprintf("start_dim=%d, end_dim=%d", m.StartDim, m.EndDim)
}

// String returns torch's repr of the module.
func (m *Flatten) String() string { return Repr(m) }

// Dropout zeroes each element with probability P in training mode and scales
// the rest by 1/(1-P); in eval mode it is the identity. Draws come from the
// package generator (see [ManualSeed]), not torch's.
type Dropout struct {
	Base
	P       float64
	Inplace bool
}

// NewDropout returns a Dropout module.
func NewDropout(p float64, inplace bool) *Dropout { return &Dropout{P: p, Inplace: inplace} }

// Forward applies dropout when training.
func (m *Dropout) Forward(x *Tensor) *Tensor { return x.Dropout(m.P, m.Training()) }

// ExtraRepr prints "p=.., inplace=..".
func (m *Dropout) ExtraRepr() string {
	return "p=" + pyFloat(m.P) + ", inplace=" + pyBool(m.Inplace)
}

// String returns torch's repr of the module.
func (m *Dropout) String() string { return Repr(m) }

// Dropout is the functional form of the Dropout module.
func (t *Tensor) Dropout(p float64, training bool) *Tensor {
	if p < 0 || p > 1 {
		panic(fmt.Sprintf("nn: dropout probability has to be between 0 and 1, but got %v", p))
	}
	if !training || p == 0 {
		return t
	}
	mask := Zeros(t.shape...)
	if p < 1 {
		scale := float32(1 / (1 - p))
		rng.Lock()
		for i := range mask.data {
			if rng.r.Float64() >= p {
				mask.data[i] = scale
			}
		}
		rng.Unlock()
	}
	return t.Mul(mask)
}
