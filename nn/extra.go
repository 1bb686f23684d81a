package nn

import "fmt"

// ChannelShuffle is torch.nn.ChannelShuffle, the module form of
// [Tensor.ChannelShuffle].
type ChannelShuffle struct {
	Base
	Groups int
}

// NewChannelShuffle returns a ChannelShuffle module.
func NewChannelShuffle(groups int) *ChannelShuffle { return &ChannelShuffle{Groups: groups} }

// Forward shuffles the channels of x.
func (m *ChannelShuffle) Forward(x *Tensor) *Tensor { return x.ChannelShuffle(m.Groups) }

// ExtraRepr prints "groups=N".
func (m *ChannelShuffle) ExtraRepr() string { return fmt.Sprintf("groups=%d", m.Groups) }

// String returns torch's repr of the module.
func (m *ChannelShuffle) String() string { return Repr(m) }

// StochasticDepth is torchvision.ops.StochasticDepth, the module form of
// [Tensor.StochasticDepth]; it is active only in training mode.
type StochasticDepth struct {
	Base
	P    float64
	Mode string
}

// NewStochasticDepth returns a StochasticDepth module; mode is "row" or
// "batch".
func NewStochasticDepth(p float64, mode string) *StochasticDepth {
	return &StochasticDepth{P: p, Mode: mode}
}

// Forward drops rows of x with probability P in training mode.
func (m *StochasticDepth) Forward(x *Tensor) *Tensor {
	return x.StochasticDepth(m.P, m.Mode, m.Training())
}

// String prints torchvision's "StochasticDepth(p=0.2, mode=row)".
func (m *StochasticDepth) String() string {
	return fmt.Sprintf("StochasticDepth(p=%s, mode=%s)", pyFloat(m.P), m.Mode)
}

// ExtraRepr makes nested printing match torchvision, which overrides __repr__.
func (m *StochasticDepth) ExtraRepr() string {
	return fmt.Sprintf("p=%s, mode=%s", pyFloat(m.P), m.Mode)
}
