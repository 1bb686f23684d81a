package nn

import "fmt"

// Option configures a convolution or pooling layer, mirroring torch's keyword
// arguments: nn.NewConv2d(b, 3, 64, 7, nn.Stride(2), nn.Padding(3), nn.NoBias()).
// Each constructor documents the options it reads; others are ignored.
type Option func(*options)

type options struct {
	kernel         []int
	stride         []int
	padding        []int
	dilation       []int
	groups         int
	noBias         bool
	ceilMode       bool
	excludePad     bool
	momentum       *float64
	eps            float64
	noAffine       bool
	noRunningStats bool
}

func collect(opts []Option) options {
	o := options{groups: 1}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// KernelSize sets a (possibly non-square) kernel, overriding the constructor's
// square kernel argument: nn.KernelSize(1, 7).
func KernelSize(v ...int) Option { return func(o *options) { o.kernel = v } }

// Stride sets the stride: one value for both dimensions or (height, width).
func Stride(v ...int) Option { return func(o *options) { o.stride = v } }

// Padding sets the implicit zero padding on each side (one value or two).
func Padding(v ...int) Option { return func(o *options) { o.padding = v } }

// Dilation sets the spacing between kernel elements (one value or two).
func Dilation(v ...int) Option { return func(o *options) { o.dilation = v } }

// Groups sets the number of convolution groups (in_channels for depthwise).
func Groups(g int) Option { return func(o *options) { o.groups = g } }

// NoBias omits a layer's bias (torch's bias=False).
func NoBias() Option { return func(o *options) { o.noBias = true } }

// CeilMode makes pooling round the output size up (ceil_mode=True).
func CeilMode() Option { return func(o *options) { o.ceilMode = true } }

// ExcludePad makes AvgPool2d divide by the number of real (unpadded)
// elements (count_include_pad=False).
func ExcludePad() Option { return func(o *options) { o.excludePad = true } }

// Momentum sets BatchNorm's running-statistics momentum (torch default 0.1).
func Momentum(m float64) Option { return func(o *options) { o.momentum = &m } }

// CumulativeAverage makes BatchNorm average running statistics over all
// batches seen (torch's momentum=None).
func CumulativeAverage() Option {
	return func(o *options) { o.momentum = new(float64); *o.momentum = -1 }
}

// Eps sets a normalisation layer's epsilon.
func Eps(e float64) Option { return func(o *options) { o.eps = e } }

// NoAffine omits a normalisation layer's weight and bias (affine=False,
// elementwise_affine=False).
func NoAffine() Option { return func(o *options) { o.noAffine = true } }

// NoRunningStats makes BatchNorm always use batch statistics and keep no
// running buffers (track_running_stats=False).
func NoRunningStats() Option { return func(o *options) { o.noRunningStats = true } }

// pair expands a one- or two-value size argument, with def when absent.
func pair(name string, v []int, def int) [2]int {
	switch len(v) {
	case 0:
		return [2]int{def, def}
	case 1:
		return [2]int{v[0], v[0]}
	case 2:
		return [2]int{v[0], v[1]}
	}
	panic(fmt.Sprintf("nn: %s takes one or two values, got %v", name, v))
}
