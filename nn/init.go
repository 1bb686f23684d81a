package nn

import (
	"fmt"
	"math"
)

// Generator is a source of random numbers for the initialisers. Both
// math/rand/v2's and math/rand's *Rand satisfy it, so a seeded generator
// gives reproducible weights:
//
//	g := rand.New(rand.NewPCG(1, 2))
//	nn.KaimingNormal(conv.Weight, 0, nn.FanOut, "relu", g)
//
// A nil Generator means the package generator (see [ManualSeed]). None of
// them reproduces torch's generator: the same seed gives other numbers with
// the same distribution.
type Generator interface {
	Float64() float64
	NormFloat64() float64
}

// FanMode selects which fan Kaiming initialisation preserves the variance
// of: FanIn (torch's mode="fan_in", the forward pass) or FanOut
// ("fan_out", the backward pass).
type FanMode int

const (
	// FanIn preserves the magnitude of activations in the forward pass.
	FanIn FanMode = iota
	// FanOut preserves the magnitude of gradients in the backward pass
	// (torchvision's ResNet convolutions).
	FanOut
)

// String returns torch's name: "fan_in" or "fan_out".
func (m FanMode) String() string {
	if m == FanOut {
		return "fan_out"
	}
	return "fan_in"
}

// CalculateGain returns torch.nn.init.calculate_gain: the recommended scale
// for a nonlinearity ("linear", "conv1d", "conv2d", "conv3d",
// "conv_transpose1d/2d/3d", "sigmoid": 1; "tanh": 5/3; "relu": √2;
// "leaky_relu": √(2/(1+slope²)) with slope param, default 0.01; "selu": 3/4).
// It panics on another name, as torch raises.
func CalculateGain(nonlinearity string, param ...float64) float64 {
	switch nonlinearity {
	case "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid":
		return 1
	case "tanh":
		return 5.0 / 3
	case "relu":
		return math.Sqrt(2)
	case "leaky_relu":
		slope := 0.01
		if len(param) > 0 {
			slope = param[0]
		}
		return math.Sqrt(2 / (1 + slope*slope))
	case "selu":
		return 3.0 / 4
	}
	panic(fmt.Sprintf("nn: unsupported nonlinearity %q", nonlinearity))
}

// FanInAndFanOut returns torch's _calculate_fan_in_and_fan_out for a weight
// of the given shape: [out, in, k...] has fan_in = in·Πk and fan_out =
// out·Πk. Shapes of fewer than two dimensions panic with a *[ShapeError], as
// torch raises.
func FanInAndFanOut(shape []int) (fanIn, fanOut int) {
	if len(shape) < 2 {
		shapeErr("FanInAndFanOut", "fan in and fan out can not be computed for a tensor with fewer than 2 dimensions", shape)
	}
	rf := 1
	for _, d := range shape[2:] {
		rf *= d
	}
	return shape[1] * rf, shape[0] * rf
}

// initFill sets every element of t to draw(g), with the package generator
// (locked for the whole fill) when g is nil. It is not recorded by autograd.
func initFill(t *Tensor, g Generator, draw func(Generator) float64) *Tensor {
	if g == nil {
		rng.Lock()
		defer rng.Unlock()
		g = rng.r
	}
	for i := range t.data {
		t.data[i] = float32(draw(g))
	}
	return t
}

// InitUniform fills t with values uniform in [a, b) (torch.nn.init.uniform_)
// and returns it.
func InitUniform(t *Tensor, a, b float64, g Generator) *Tensor {
	return initFill(t, g, func(g Generator) float64 { return a + (b-a)*g.Float64() })
}

// InitNormal fills t with normal values of the given mean and standard
// deviation (torch.nn.init.normal_) and returns it.
func InitNormal(t *Tensor, mean, std float64, g Generator) *Tensor {
	return initFill(t, g, func(g Generator) float64 { return mean + std*g.NormFloat64() })
}

// InitTruncNormal fills t with values from the normal distribution
// N(mean, std²) restricted to [a, b] (torch.nn.init.trunc_normal_, whose
// defaults are 0, 1, -2, 2) and returns it. Like torch it inverts the normal
// CDF of a uniform draw between the CDFs of a and b, then clamps to [a, b];
// the method is accurate when [a, b] holds a fair share of the mass (torch
// warns when mean is more than 2 std outside it).
func InitTruncNormal(t *Tensor, mean, std, a, b float64, g Generator) *Tensor {
	cdf := func(x float64) float64 { return (1 + math.Erf(x/math.Sqrt2)) / 2 }
	l, u := cdf((a-mean)/std), cdf((b-mean)/std)
	return initFill(t, g, func(g Generator) float64 {
		p := 2*l - 1 + (2*u-2*l)*g.Float64()
		x := math.Erfinv(p)*std*math.Sqrt2 + mean
		return math.Min(math.Max(x, a), b)
	})
}

// InitConstant sets every element of t to v (torch.nn.init.constant_) and
// returns it.
func InitConstant(t *Tensor, v float64) *Tensor {
	for i := range t.data {
		t.data[i] = float32(v)
	}
	return t
}

// InitZeros sets t to zeros (torch.nn.init.zeros_) and returns it.
func InitZeros(t *Tensor) *Tensor { return InitConstant(t, 0) }

// InitOnes sets t to ones (torch.nn.init.ones_) and returns it.
func InitOnes(t *Tensor) *Tensor { return InitConstant(t, 1) }

// kaimingStd is gain/√fan for torch's kaiming initialisers.
func kaimingStd(shape []int, a float64, mode FanMode, nonlinearity string) float64 {
	fanIn, fanOut := FanInAndFanOut(shape)
	fan := fanIn
	if mode == FanOut {
		fan = fanOut
	}
	return CalculateGain(nonlinearity, a) / math.Sqrt(float64(fan))
}

// KaimingUniform fills t with He et al.'s uniform initialisation
// (torch.nn.init.kaiming_uniform_): U(-bound, bound) with bound =
// gain·√(3/fan), gain = CalculateGain(nonlinearity, a) and fan the fan_in or
// fan_out of t's shape. a is the negative slope of a following leaky_relu
// (torch's defaults: a=0, FanIn, "leaky_relu"; torch's layers use a=√5).
func KaimingUniform(t *Tensor, a float64, mode FanMode, nonlinearity string, g Generator) *Tensor {
	bound := math.Sqrt(3) * kaimingStd(t.shape, a, mode, nonlinearity)
	return InitUniform(t, -bound, bound, g)
}

// KaimingNormal fills t with He et al.'s normal initialisation
// (torch.nn.init.kaiming_normal_): N(0, std²) with std = gain/√fan.
// torchvision's ResNet, VGG and MobileNet convolutions use
// KaimingNormal(w, 0, FanOut, "relu", g).
func KaimingNormal(t *Tensor, a float64, mode FanMode, nonlinearity string, g Generator) *Tensor {
	return InitNormal(t, 0, kaimingStd(t.shape, a, mode, nonlinearity), g)
}

// XavierUniform fills t with Glorot's uniform initialisation
// (torch.nn.init.xavier_uniform_): U(-a, a) with a =
// gain·√(6/(fan_in+fan_out)).
func XavierUniform(t *Tensor, gain float64, g Generator) *Tensor {
	fanIn, fanOut := FanInAndFanOut(t.shape)
	bound := gain * math.Sqrt(6/float64(fanIn+fanOut))
	return InitUniform(t, -bound, bound, g)
}

// XavierNormal fills t with Glorot's normal initialisation
// (torch.nn.init.xavier_normal_): N(0, std²) with std =
// gain·√(2/(fan_in+fan_out)).
func XavierNormal(t *Tensor, gain float64, g Generator) *Tensor {
	fanIn, fanOut := FanInAndFanOut(t.shape)
	return InitNormal(t, 0, gain*math.Sqrt(2/float64(fanIn+fanOut)), g)
}
