package models

import (
	"github.com/ckptkit/ckpt/nn"
)

// BasicConv2d is the convolution, BatchNorm (eps 0.001) and ReLU unit of
// googlenet and inception_v3.
type BasicConv2d struct {
	nn.Base
	Conv *nn.Conv2d
	BN   *nn.BatchNorm2d
}

func newBasicConv2d(b *nn.Builder, in, out int, opts ...nn.Option) *BasicConv2d {
	m := &BasicConv2d{Conv: nn.NewConv2d(b.Sub("conv"), in, out, 1, append(opts, nn.NoBias())...)}
	m.BN = nn.NewBatchNorm2d(b.Sub("bn"), out, nn.Eps(0.001))
	m.RegisterModule("conv", &m.Conv)
	m.RegisterModule("bn", &m.BN)
	return m
}

// Forward runs conv, bn and ReLU.
func (m *BasicConv2d) Forward(x *nn.Tensor) *nn.Tensor {
	return nn.ConvBNAct(m.Conv, m.BN, fnReLU, x, nil)
}

// fnReLU is torch's F.relu as a module, for blocks that call it.
var fnReLU = nn.NewReLU(true)

// String returns the module tree as torch prints it.
func (m *BasicConv2d) String() string { return nn.Repr(m) }

// transformInput rescales x from ImageNet normalisation to the [-1, 1] range
// of the original TensorFlow weights, as torchvision's _transform_input.
func transformInput(x *nn.Tensor) *nn.Tensor {
	mean := [3]float64{0.485, 0.456, 0.406}
	std := [3]float64{0.229, 0.224, 0.225}
	scale, shift := make([]float32, 3), make([]float32, 3)
	for c := range 3 {
		scale[c] = float32(std[c] / 0.5)
		shift[c] = float32((mean[c] - 0.5) / 0.5)
	}
	// x*scale + shift per channel, as two broadcast ops (torch rounds after
	// each).
	s := nn.New(scale, 1, 3, 1, 1)
	t := nn.New(shift, 1, 3, 1, 1)
	return x.Mul(s).Add(t)
}

// GoogLeNet is torchvision.models.GoogLeNet. Forward returns the main
// logits; in training mode with auxiliary heads, ForwardAux returns theirs
// too.
type GoogLeNet struct {
	nn.Base
	TransformInput bool

	Conv1                                                           *BasicConv2d
	MaxPool1                                                        *nn.MaxPool2d
	Conv2, Conv3                                                    *BasicConv2d
	MaxPool2                                                        *nn.MaxPool2d
	Inception3a, Inception3b                                        *Inception
	MaxPool3                                                        *nn.MaxPool2d
	Inception4a, Inception4b, Inception4c, Inception4d, Inception4e *Inception
	MaxPool4                                                        *nn.MaxPool2d
	Inception5a, Inception5b                                        *Inception
	Aux1, Aux2                                                      *InceptionAux // nil without aux_logits
	AvgPool                                                         *nn.AdaptiveAvgPool2d
	Dropout                                                         *nn.Dropout
	FC                                                              *nn.Linear
}

// Inception is googlenet's four-branch block.
type Inception struct {
	nn.Base
	Branch1                   *BasicConv2d
	Branch2, Branch3, Branch4 *nn.Sequential
}

// InceptionAux is googlenet's auxiliary classifier.
type InceptionAux struct {
	nn.Base
	Conv     *BasicConv2d
	FC1, FC2 *nn.Linear
	Dropout  *nn.Dropout
}

func init() {
	Register(Spec{Name: "googlenet", Classifier: "fc.weight", Aux: []string{"aux1.", "aux2."},
		Build: func(cfg Config) (nn.Module, error) { return newGoogLeNet(cfg, googlenetStd), nil }})
}

// googlenetArch holds GoogLeNet's widths: the three stem convolutions and
// the nine inception blocks' (in, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5,
// pool_proj), as torchvision's GoogLeNet.__init__ lists them. The parity
// fixtures use narrower ones.
type googlenetArch struct {
	stem [3]int
	inc  [9][7]int
}

var googlenetStd = googlenetArch{
	stem: [3]int{64, 64, 192},
	inc: [9][7]int{
		{192, 64, 96, 128, 16, 32, 32}, {256, 128, 128, 192, 32, 96, 64},
		{480, 192, 96, 208, 16, 48, 64}, {512, 160, 112, 224, 24, 64, 64}, {512, 128, 128, 256, 24, 64, 64},
		{512, 112, 144, 288, 32, 64, 64}, {528, 256, 160, 320, 32, 128, 128},
		{832, 256, 160, 320, 32, 128, 128}, {832, 384, 192, 384, 48, 128, 128},
	},
}

func newGoogLeNet(cfg Config, a googlenetArch) *GoogLeNet {
	b := cfg.Weights
	nc := cfg.numClasses()
	inc := func(name string, i int) *Inception {
		c := a.inc[i]
		return newInception(b.Sub(name), c[0], c[1], c[2], c[3], c[4], c[5], c[6])
	}
	out := func(i int) int { return a.inc[i][1] + a.inc[i][3] + a.inc[i][5] + a.inc[i][6] }
	m := &GoogLeNet{TransformInput: cfg.TransformInput.On(false)}
	m.Conv1 = newBasicConv2d(b.Sub("conv1"), 3, a.stem[0], nn.KernelSize(7), nn.Stride(2), nn.Padding(3))
	m.MaxPool1 = nn.NewMaxPool2d(3, nn.Stride(2), nn.CeilMode())
	m.Conv2 = newBasicConv2d(b.Sub("conv2"), a.stem[0], a.stem[1], nn.KernelSize(1))
	m.Conv3 = newBasicConv2d(b.Sub("conv3"), a.stem[1], a.stem[2], nn.KernelSize(3), nn.Padding(1))
	m.MaxPool2 = nn.NewMaxPool2d(3, nn.Stride(2), nn.CeilMode())
	m.Inception3a = inc("inception3a", 0)
	m.Inception3b = inc("inception3b", 1)
	m.MaxPool3 = nn.NewMaxPool2d(3, nn.Stride(2), nn.CeilMode())
	m.Inception4a = inc("inception4a", 2)
	m.Inception4b = inc("inception4b", 3)
	m.Inception4c = inc("inception4c", 4)
	m.Inception4d = inc("inception4d", 5)
	m.Inception4e = inc("inception4e", 6)
	m.MaxPool4 = nn.NewMaxPool2d(2, nn.Stride(2), nn.CeilMode())
	m.Inception5a = inc("inception5a", 7)
	m.Inception5b = inc("inception5b", 8)
	if cfg.AuxLogits.On(true) {
		m.Aux1 = newInceptionAux(b.Sub("aux1"), out(2), nc, cfg.dropout(0.7))
		m.Aux2 = newInceptionAux(b.Sub("aux2"), out(5), nc, cfg.dropout(0.7))
	}
	m.AvgPool = nn.NewAdaptiveAvgPool2d(1, 1)
	m.Dropout = nn.NewDropout(cfg.dropout(0.2), false)
	m.FC = nn.NewLinear(b.Sub("fc"), out(8), nc, true)
	for _, r := range []struct {
		name string
		ptr  any
	}{
		{"conv1", &m.Conv1}, {"maxpool1", &m.MaxPool1}, {"conv2", &m.Conv2}, {"conv3", &m.Conv3},
		{"maxpool2", &m.MaxPool2}, {"inception3a", &m.Inception3a}, {"inception3b", &m.Inception3b},
		{"maxpool3", &m.MaxPool3}, {"inception4a", &m.Inception4a}, {"inception4b", &m.Inception4b},
		{"inception4c", &m.Inception4c}, {"inception4d", &m.Inception4d}, {"inception4e", &m.Inception4e},
		{"maxpool4", &m.MaxPool4}, {"inception5a", &m.Inception5a}, {"inception5b", &m.Inception5b},
		{"aux1", &m.Aux1}, {"aux2", &m.Aux2}, {"avgpool", &m.AvgPool}, {"dropout", &m.Dropout}, {"fc", &m.FC},
	} {
		m.RegisterModule(r.name, r.ptr)
	}
	return m
}

func newInception(b *nn.Builder, in, c1, c3r, c3, c5r, c5, pp int) *Inception {
	m := &Inception{Branch1: newBasicConv2d(b.Sub("branch1"), in, c1, nn.KernelSize(1))}
	b2, b3, b4 := b.Sub("branch2"), b.Sub("branch3"), b.Sub("branch4")
	m.Branch2 = nn.NewSequential(
		newBasicConv2d(b2.Sub("0"), in, c3r, nn.KernelSize(1)),
		newBasicConv2d(b2.Sub("1"), c3r, c3, nn.KernelSize(3), nn.Padding(1)))
	// kernel_size=3 instead of 5 is torchvision's known deviation from the
	// paper (pytorch/vision#906), which its weights depend on.
	m.Branch3 = nn.NewSequential(
		newBasicConv2d(b3.Sub("0"), in, c5r, nn.KernelSize(1)),
		newBasicConv2d(b3.Sub("1"), c5r, c5, nn.KernelSize(3), nn.Padding(1)))
	m.Branch4 = nn.NewSequential(
		nn.NewMaxPool2d(3, nn.Stride(1), nn.Padding(1), nn.CeilMode()),
		newBasicConv2d(b4.Sub("1"), in, pp, nn.KernelSize(1)))
	m.RegisterModule("branch1", &m.Branch1)
	m.RegisterModule("branch2", &m.Branch2)
	m.RegisterModule("branch3", &m.Branch3)
	m.RegisterModule("branch4", &m.Branch4)
	return m
}

func newInceptionAux(b *nn.Builder, in, nc int, p float64) *InceptionAux {
	m := &InceptionAux{
		Conv:    newBasicConv2d(b.Sub("conv"), in, 128, nn.KernelSize(1)),
		FC1:     nn.NewLinear(b.Sub("fc1"), 2048, 1024, true),
		FC2:     nn.NewLinear(b.Sub("fc2"), 1024, nc, true),
		Dropout: nn.NewDropout(p, false),
	}
	m.RegisterModule("conv", &m.Conv)
	m.RegisterModule("fc1", &m.FC1)
	m.RegisterModule("fc2", &m.FC2)
	m.RegisterModule("dropout", &m.Dropout)
	return m
}

// Forward concatenates the four branches.
func (m *Inception) Forward(x *nn.Tensor) *nn.Tensor {
	return nn.Cat([]*nn.Tensor{m.Branch1.Forward(x), m.Branch2.Forward(x), m.Branch3.Forward(x), m.Branch4.Forward(x)}, 1)
}

// Forward computes the auxiliary logits.
func (m *InceptionAux) Forward(x *nn.Tensor) *nn.Tensor {
	x = nn.AdaptiveAvgPool2dFn(x, 4, 4)
	x = m.Conv.Forward(x).Flatten(1, -1)
	x = m.FC1.Forward(x).ReLU()
	return m.FC2.Forward(m.Dropout.Forward(x))
}

// Forward computes the class logits of x [N, 3, H, W].
func (m *GoogLeNet) Forward(x *nn.Tensor) *nn.Tensor {
	out, _, _ := m.ForwardAux(x)
	return out
}

// ForwardAux returns the main logits and, in training mode with auxiliary
// heads, aux2's and aux1's logits (nil otherwise), in torchvision's order
// (GoogLeNetOutputs(logits, aux_logits2, aux_logits1)).
func (m *GoogLeNet) ForwardAux(x *nn.Tensor) (out, aux2, aux1 *nn.Tensor) {
	if m.TransformInput {
		x = transformInput(x)
	}
	x = m.MaxPool1.Forward(m.Conv1.Forward(x))
	x = m.MaxPool2.Forward(m.Conv3.Forward(m.Conv2.Forward(x)))
	x = m.MaxPool3.Forward(m.Inception3b.Forward(m.Inception3a.Forward(x)))
	x = m.Inception4a.Forward(x)
	training := m.Training()
	if m.Aux1 != nil && training {
		aux1 = m.Aux1.Forward(x)
	}
	x = m.Inception4d.Forward(m.Inception4c.Forward(m.Inception4b.Forward(x)))
	if m.Aux2 != nil && training {
		aux2 = m.Aux2.Forward(x)
	}
	x = m.MaxPool4.Forward(m.Inception4e.Forward(x))
	x = m.Inception5b.Forward(m.Inception5a.Forward(x))
	x = m.AvgPool.Forward(x).Flatten(1, -1)
	return m.FC.Forward(m.Dropout.Forward(x)), aux2, aux1
}

// String returns the module tree as torch prints it.
func (m *GoogLeNet) String() string { return nn.Repr(m) }

// String returns the module tree as torch prints it.
func (m *Inception) String() string { return nn.Repr(m) }

// String returns the module tree as torch prints it.
func (m *InceptionAux) String() string { return nn.Repr(m) }
