package models

import (
	"math"
	"strconv"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/internal/vec"
)

// inference reports whether ops on these tensors record no graph, so that
// their outputs may be overwritten in place.
func inference(ts ...*nn.Tensor) bool {
	if !nn.GradEnabled() {
		return true
	}
	for _, t := range ts {
		if t != nil && t.RequiresGrad() {
			return false
		}
	}
	return true
}

// parallel splits the rows [0, rows) of rowLen elements each into one
// contiguous range per CPU when the work is large enough, and runs f on
// each (nn.ParallelFor).
func parallel(rows, rowLen int, f func(lo, hi int)) { nn.ParallelFor(rows, rows*rowLen, f) }

// bnAffine returns channel ch's eval-mode BatchNorm as an affine map,
// y = x*scale + shift, folding the running statistics and the affine
// parameters (when the layer has them).
func bnAffine(bn *nn.BatchNorm2d, ch int) (scale, shift float32) {
	mean, vr := bn.RunningMean.Data(), bn.RunningVar.Data()
	scale = float32(1 / math.Sqrt(float64(vr[ch])+bn.Eps))
	shift = -mean[ch] * scale
	if bn.Weight != nil {
		w, b := bn.Weight.Data(), bn.Bias.Data()
		scale *= w[ch]
		shift = shift*w[ch] + b[ch]
	}
	return scale, shift
}

func maxPool(x *nn.Tensor, k, s, p int, ceil bool) *nn.Tensor {
	return nn.MaxPool2dFn(x, nn.PoolParams{KernelSize: [2]int{k, k}, Stride: [2]int{s, s},
		Padding: [2]int{p, p}, Dilation: [2]int{1, 1}, CeilMode: ceil})
}

func avgPool(x *nn.Tensor, k, s, p int) *nn.Tensor {
	return nn.AvgPool2dFn(x, nn.PoolParams{KernelSize: [2]int{k, k}, Stride: [2]int{s, s},
		Padding: [2]int{p, p}, Dilation: [2]int{1, 1}}, true)
}

// seqOf returns a Sequential of the layers made by the functions, each given
// the builder of its index ("0", "1", ...).
func seqOf(b *nn.Builder, fs ...func(b *nn.Builder) nn.Module) *nn.Sequential {
	s := nn.NewSequential()
	for i, f := range fs {
		s.Append(f(b.Sub(strconv.Itoa(i))))
	}
	return s
}

// namedSequential is a torch Sequential built from an OrderedDict: children
// with names, run in order.
type namedSequential struct {
	nn.Base
	typeName string
	layers   []nn.Module // as added, for fused fast paths that know the layout
}

func newNamedSequential(typeName string) *namedSequential {
	return &namedSequential{typeName: typeName}
}

func (s *namedSequential) add(name string, m nn.Module) {
	s.layers = append(s.layers, m)
	s.AddModule(name, m)
}

// Forward runs the registered children in order, so that a child replaced
// with SetChild (a new classifier head) is the one that runs.
// A Linear followed by an exact GELU (the transformers' MLPs) runs as one
// nn.LinearGELU.
func (s *namedSequential) Forward(x *nn.Tensor) *nn.Tensor {
	ms := s.Children()
	for i := 0; i < len(ms); i++ {
		if l, ok := ms[i].(*nn.Linear); ok && i+1 < len(ms) {
			if g, ok := ms[i+1].(*nn.GELU); ok && g.Approximate == "none" {
				x = nn.LinearGELU(x, l.Weight, l.Bias)
				i++
				continue
			}
		}
		x = ms[i].Forward(x)
	}
	return x
}

func (s *namedSequential) TypeName() string { return s.typeName }
func (s *namedSequential) String() string   { return nn.Repr(s) }

// addReLU returns relu(a + b) for tensors of one shape, summing into a in
// place when no graph is recorded (regnet's block, whose last convolution
// is inside its transform).
func addReLU(a, b *nn.Tensor) *nn.Tensor {
	if !inference(a, b) {
		return a.Add(b).ReLU()
	}
	ad, bd := a.Data(), b.Data()
	bd = bd[:len(ad)]
	const chunk = 4096
	parallel((len(ad)+chunk-1)/chunk, chunk, func(lo, hi int) {
		vec.AddReLU(ad[lo*chunk:min(hi*chunk, len(ad))], bd[lo*chunk:min(hi*chunk, len(ad))])
	})
	return a
}

// reluInPlace returns relu(x), overwriting x when no graph is recorded.
// x must be a tensor the caller owns (an intermediate result).
func reluInPlace(x *nn.Tensor) *nn.Tensor { return actInPlace(x, actReLU, nn.NewReLU(false)) }
