package models

import (
	"github.com/ckptkit/ckpt/nn"
)

// Inception3 is torchvision.models.Inception3 (inception_v3). Forward returns
// the main logits; ForwardAux also returns the auxiliary head's in training
// mode.
type Inception3 struct {
	nn.Base
	TransformInput bool

	Conv2d1a3x3, Conv2d2a3x3, Conv2d2b3x3 *BasicConv2d
	MaxPool1                              *nn.MaxPool2d
	Conv2d3b1x1, Conv2d4a3x3              *BasicConv2d
	MaxPool2                              *nn.MaxPool2d
	Mixed5b, Mixed5c, Mixed5d             *InceptionA
	Mixed6a                               *InceptionB
	Mixed6b, Mixed6c, Mixed6d, Mixed6e    *InceptionC
	AuxLogits                             *InceptionV3Aux // nil without aux_logits
	Mixed7a                               *InceptionD
	Mixed7b, Mixed7c                      *InceptionE
	AvgPool                               *nn.AdaptiveAvgPool2d
	Dropout                               *nn.Dropout
	FC                                    *nn.Linear
}

// InceptionA is inception_v3's 35x35 block.
type InceptionA struct {
	nn.Base
	Branch1x1, Branch5x5_1, Branch5x5_2                  *BasicConv2d
	Branch3x3dbl_1, Branch3x3dbl_2, Branch3x3dbl_3, Pool *BasicConv2d
}

// InceptionB is inception_v3's first grid reduction (35 to 17).
type InceptionB struct {
	nn.Base
	Branch3x3, Branch3x3dbl_1, Branch3x3dbl_2, Branch3x3dbl_3 *BasicConv2d
}

// InceptionC is inception_v3's 17x17 block with factorised 7x7
// convolutions.
type InceptionC struct {
	nn.Base
	Branch1x1                                                                            *BasicConv2d
	Branch7x7_1, Branch7x7_2, Branch7x7_3                                                *BasicConv2d
	Branch7x7dbl_1, Branch7x7dbl_2, Branch7x7dbl_3, Branch7x7dbl_4, Branch7x7dbl_5, Pool *BasicConv2d
}

// InceptionD is inception_v3's second grid reduction (17 to 8).
type InceptionD struct {
	nn.Base
	Branch3x3_1, Branch3x3_2                                   *BasicConv2d
	Branch7x7x3_1, Branch7x7x3_2, Branch7x7x3_3, Branch7x7x3_4 *BasicConv2d
}

// InceptionE is inception_v3's 8x8 block with split 1x3/3x1 branches.
type InceptionE struct {
	nn.Base
	Branch1x1                               *BasicConv2d
	Branch3x3_1, Branch3x3_2a, Branch3x3_2b *BasicConv2d
	Branch3x3dbl_1, Branch3x3dbl_2          *BasicConv2d
	Branch3x3dbl_3a, Branch3x3dbl_3b, Pool  *BasicConv2d
}

// InceptionV3Aux is inception_v3's auxiliary classifier (torch's
// inception.InceptionAux).
type InceptionV3Aux struct {
	nn.Base
	Conv0, Conv1 *BasicConv2d
	FC           *nn.Linear
}

func init() {
	Register(Spec{Name: "inception_v3", Classifier: "fc.weight", Aux: []string{"AuxLogits."},
		Build: func(cfg Config) (nn.Module, error) { return newInception3(cfg), nil }})
}

type reg struct {
	name string
	ptr  any
}

func registerAll(b *nn.Base, regs ...reg) {
	for _, r := range regs {
		b.RegisterModule(r.name, r.ptr)
	}
}

func k(h, w int) nn.Option   { return nn.KernelSize(h, w) }
func pad(h, w int) nn.Option { return nn.Padding(h, w) }

func newInception3(cfg Config) *Inception3 {
	b := cfg.Weights
	bc := func(name string, in, out int, opts ...nn.Option) *BasicConv2d {
		return newBasicConv2d(b.Sub(name), in, out, opts...)
	}
	m := &Inception3{TransformInput: cfg.TransformInput.On(false)}
	m.Conv2d1a3x3 = bc("Conv2d_1a_3x3", 3, 32, k(3, 3), nn.Stride(2))
	m.Conv2d2a3x3 = bc("Conv2d_2a_3x3", 32, 32, k(3, 3))
	m.Conv2d2b3x3 = bc("Conv2d_2b_3x3", 32, 64, k(3, 3), nn.Padding(1))
	m.MaxPool1 = nn.NewMaxPool2d(3, nn.Stride(2))
	m.Conv2d3b1x1 = bc("Conv2d_3b_1x1", 64, 80, k(1, 1))
	m.Conv2d4a3x3 = bc("Conv2d_4a_3x3", 80, 192, k(3, 3))
	m.MaxPool2 = nn.NewMaxPool2d(3, nn.Stride(2))
	m.Mixed5b = newInceptionA(b.Sub("Mixed_5b"), 192, 32)
	m.Mixed5c = newInceptionA(b.Sub("Mixed_5c"), 256, 64)
	m.Mixed5d = newInceptionA(b.Sub("Mixed_5d"), 288, 64)
	m.Mixed6a = newInceptionB(b.Sub("Mixed_6a"), 288)
	m.Mixed6b = newInceptionC(b.Sub("Mixed_6b"), 768, 128)
	m.Mixed6c = newInceptionC(b.Sub("Mixed_6c"), 768, 160)
	m.Mixed6d = newInceptionC(b.Sub("Mixed_6d"), 768, 160)
	m.Mixed6e = newInceptionC(b.Sub("Mixed_6e"), 768, 192)
	if cfg.AuxLogits.On(true) {
		m.AuxLogits = newInceptionV3Aux(b.Sub("AuxLogits"), 768, cfg.numClasses())
	}
	m.Mixed7a = newInceptionD(b.Sub("Mixed_7a"), 768)
	m.Mixed7b = newInceptionE(b.Sub("Mixed_7b"), 1280)
	m.Mixed7c = newInceptionE(b.Sub("Mixed_7c"), 2048)
	m.AvgPool = nn.NewAdaptiveAvgPool2d(1, 1)
	m.Dropout = nn.NewDropout(cfg.dropout(0.5), false)
	m.FC = nn.NewLinear(b.Sub("fc"), 2048, cfg.numClasses(), true)
	registerAll(&m.Base,
		reg{"Conv2d_1a_3x3", &m.Conv2d1a3x3}, reg{"Conv2d_2a_3x3", &m.Conv2d2a3x3}, reg{"Conv2d_2b_3x3", &m.Conv2d2b3x3},
		reg{"maxpool1", &m.MaxPool1}, reg{"Conv2d_3b_1x1", &m.Conv2d3b1x1}, reg{"Conv2d_4a_3x3", &m.Conv2d4a3x3},
		reg{"maxpool2", &m.MaxPool2}, reg{"Mixed_5b", &m.Mixed5b}, reg{"Mixed_5c", &m.Mixed5c}, reg{"Mixed_5d", &m.Mixed5d},
		reg{"Mixed_6a", &m.Mixed6a}, reg{"Mixed_6b", &m.Mixed6b}, reg{"Mixed_6c", &m.Mixed6c}, reg{"Mixed_6d", &m.Mixed6d},
		reg{"Mixed_6e", &m.Mixed6e}, reg{"AuxLogits", &m.AuxLogits}, reg{"Mixed_7a", &m.Mixed7a},
		reg{"Mixed_7b", &m.Mixed7b}, reg{"Mixed_7c", &m.Mixed7c}, reg{"avgpool", &m.AvgPool},
		reg{"dropout", &m.Dropout}, reg{"fc", &m.FC})
	return m
}

func newInceptionA(b *nn.Builder, in, poolFeatures int) *InceptionA {
	m := &InceptionA{
		Branch1x1:      newBasicConv2d(b.Sub("branch1x1"), in, 64, k(1, 1)),
		Branch5x5_1:    newBasicConv2d(b.Sub("branch5x5_1"), in, 48, k(1, 1)),
		Branch5x5_2:    newBasicConv2d(b.Sub("branch5x5_2"), 48, 64, k(5, 5), nn.Padding(2)),
		Branch3x3dbl_1: newBasicConv2d(b.Sub("branch3x3dbl_1"), in, 64, k(1, 1)),
		Branch3x3dbl_2: newBasicConv2d(b.Sub("branch3x3dbl_2"), 64, 96, k(3, 3), nn.Padding(1)),
		Branch3x3dbl_3: newBasicConv2d(b.Sub("branch3x3dbl_3"), 96, 96, k(3, 3), nn.Padding(1)),
		Pool:           newBasicConv2d(b.Sub("branch_pool"), in, poolFeatures, k(1, 1)),
	}
	registerAll(&m.Base, reg{"branch1x1", &m.Branch1x1}, reg{"branch5x5_1", &m.Branch5x5_1},
		reg{"branch5x5_2", &m.Branch5x5_2}, reg{"branch3x3dbl_1", &m.Branch3x3dbl_1},
		reg{"branch3x3dbl_2", &m.Branch3x3dbl_2}, reg{"branch3x3dbl_3", &m.Branch3x3dbl_3},
		reg{"branch_pool", &m.Pool})
	return m
}

func newInceptionB(b *nn.Builder, in int) *InceptionB {
	m := &InceptionB{
		Branch3x3:      newBasicConv2d(b.Sub("branch3x3"), in, 384, k(3, 3), nn.Stride(2)),
		Branch3x3dbl_1: newBasicConv2d(b.Sub("branch3x3dbl_1"), in, 64, k(1, 1)),
		Branch3x3dbl_2: newBasicConv2d(b.Sub("branch3x3dbl_2"), 64, 96, k(3, 3), nn.Padding(1)),
		Branch3x3dbl_3: newBasicConv2d(b.Sub("branch3x3dbl_3"), 96, 96, k(3, 3), nn.Stride(2)),
	}
	registerAll(&m.Base, reg{"branch3x3", &m.Branch3x3}, reg{"branch3x3dbl_1", &m.Branch3x3dbl_1},
		reg{"branch3x3dbl_2", &m.Branch3x3dbl_2}, reg{"branch3x3dbl_3", &m.Branch3x3dbl_3})
	return m
}

func newInceptionC(b *nn.Builder, in, c7 int) *InceptionC {
	m := &InceptionC{
		Branch1x1:      newBasicConv2d(b.Sub("branch1x1"), in, 192, k(1, 1)),
		Branch7x7_1:    newBasicConv2d(b.Sub("branch7x7_1"), in, c7, k(1, 1)),
		Branch7x7_2:    newBasicConv2d(b.Sub("branch7x7_2"), c7, c7, k(1, 7), pad(0, 3)),
		Branch7x7_3:    newBasicConv2d(b.Sub("branch7x7_3"), c7, 192, k(7, 1), pad(3, 0)),
		Branch7x7dbl_1: newBasicConv2d(b.Sub("branch7x7dbl_1"), in, c7, k(1, 1)),
		Branch7x7dbl_2: newBasicConv2d(b.Sub("branch7x7dbl_2"), c7, c7, k(7, 1), pad(3, 0)),
		Branch7x7dbl_3: newBasicConv2d(b.Sub("branch7x7dbl_3"), c7, c7, k(1, 7), pad(0, 3)),
		Branch7x7dbl_4: newBasicConv2d(b.Sub("branch7x7dbl_4"), c7, c7, k(7, 1), pad(3, 0)),
		Branch7x7dbl_5: newBasicConv2d(b.Sub("branch7x7dbl_5"), c7, 192, k(1, 7), pad(0, 3)),
		Pool:           newBasicConv2d(b.Sub("branch_pool"), in, 192, k(1, 1)),
	}
	registerAll(&m.Base, reg{"branch1x1", &m.Branch1x1}, reg{"branch7x7_1", &m.Branch7x7_1},
		reg{"branch7x7_2", &m.Branch7x7_2}, reg{"branch7x7_3", &m.Branch7x7_3},
		reg{"branch7x7dbl_1", &m.Branch7x7dbl_1}, reg{"branch7x7dbl_2", &m.Branch7x7dbl_2},
		reg{"branch7x7dbl_3", &m.Branch7x7dbl_3}, reg{"branch7x7dbl_4", &m.Branch7x7dbl_4},
		reg{"branch7x7dbl_5", &m.Branch7x7dbl_5}, reg{"branch_pool", &m.Pool})
	return m
}

func newInceptionD(b *nn.Builder, in int) *InceptionD {
	m := &InceptionD{
		Branch3x3_1:   newBasicConv2d(b.Sub("branch3x3_1"), in, 192, k(1, 1)),
		Branch3x3_2:   newBasicConv2d(b.Sub("branch3x3_2"), 192, 320, k(3, 3), nn.Stride(2)),
		Branch7x7x3_1: newBasicConv2d(b.Sub("branch7x7x3_1"), in, 192, k(1, 1)),
		Branch7x7x3_2: newBasicConv2d(b.Sub("branch7x7x3_2"), 192, 192, k(1, 7), pad(0, 3)),
		Branch7x7x3_3: newBasicConv2d(b.Sub("branch7x7x3_3"), 192, 192, k(7, 1), pad(3, 0)),
		Branch7x7x3_4: newBasicConv2d(b.Sub("branch7x7x3_4"), 192, 192, k(3, 3), nn.Stride(2)),
	}
	registerAll(&m.Base, reg{"branch3x3_1", &m.Branch3x3_1}, reg{"branch3x3_2", &m.Branch3x3_2},
		reg{"branch7x7x3_1", &m.Branch7x7x3_1}, reg{"branch7x7x3_2", &m.Branch7x7x3_2},
		reg{"branch7x7x3_3", &m.Branch7x7x3_3}, reg{"branch7x7x3_4", &m.Branch7x7x3_4})
	return m
}

func newInceptionE(b *nn.Builder, in int) *InceptionE {
	m := &InceptionE{
		Branch1x1:       newBasicConv2d(b.Sub("branch1x1"), in, 320, k(1, 1)),
		Branch3x3_1:     newBasicConv2d(b.Sub("branch3x3_1"), in, 384, k(1, 1)),
		Branch3x3_2a:    newBasicConv2d(b.Sub("branch3x3_2a"), 384, 384, k(1, 3), pad(0, 1)),
		Branch3x3_2b:    newBasicConv2d(b.Sub("branch3x3_2b"), 384, 384, k(3, 1), pad(1, 0)),
		Branch3x3dbl_1:  newBasicConv2d(b.Sub("branch3x3dbl_1"), in, 448, k(1, 1)),
		Branch3x3dbl_2:  newBasicConv2d(b.Sub("branch3x3dbl_2"), 448, 384, k(3, 3), nn.Padding(1)),
		Branch3x3dbl_3a: newBasicConv2d(b.Sub("branch3x3dbl_3a"), 384, 384, k(1, 3), pad(0, 1)),
		Branch3x3dbl_3b: newBasicConv2d(b.Sub("branch3x3dbl_3b"), 384, 384, k(3, 1), pad(1, 0)),
		Pool:            newBasicConv2d(b.Sub("branch_pool"), in, 192, k(1, 1)),
	}
	registerAll(&m.Base, reg{"branch1x1", &m.Branch1x1}, reg{"branch3x3_1", &m.Branch3x3_1},
		reg{"branch3x3_2a", &m.Branch3x3_2a}, reg{"branch3x3_2b", &m.Branch3x3_2b},
		reg{"branch3x3dbl_1", &m.Branch3x3dbl_1}, reg{"branch3x3dbl_2", &m.Branch3x3dbl_2},
		reg{"branch3x3dbl_3a", &m.Branch3x3dbl_3a}, reg{"branch3x3dbl_3b", &m.Branch3x3dbl_3b},
		reg{"branch_pool", &m.Pool})
	return m
}

func newInceptionV3Aux(b *nn.Builder, in, nc int) *InceptionV3Aux {
	m := &InceptionV3Aux{
		Conv0: newBasicConv2d(b.Sub("conv0"), in, 128, k(1, 1)),
		Conv1: newBasicConv2d(b.Sub("conv1"), 128, 768, k(5, 5)),
		FC:    nn.NewLinear(b.Sub("fc"), 768, nc, true),
	}
	registerAll(&m.Base, reg{"conv0", &m.Conv0}, reg{"conv1", &m.Conv1}, reg{"fc", &m.FC})
	return m
}

func cat(ts ...*nn.Tensor) *nn.Tensor { return nn.Cat(ts, 1) }

// Forward concatenates the branches.
func (m *InceptionA) Forward(x *nn.Tensor) *nn.Tensor {
	b5 := m.Branch5x5_2.Forward(m.Branch5x5_1.Forward(x))
	b3 := m.Branch3x3dbl_3.Forward(m.Branch3x3dbl_2.Forward(m.Branch3x3dbl_1.Forward(x)))
	bp := m.Pool.Forward(avgPool(x, 3, 1, 1))
	return cat(m.Branch1x1.Forward(x), b5, b3, bp)
}

// Forward concatenates the branches.
func (m *InceptionB) Forward(x *nn.Tensor) *nn.Tensor {
	b3 := m.Branch3x3.Forward(x)
	bd := m.Branch3x3dbl_3.Forward(m.Branch3x3dbl_2.Forward(m.Branch3x3dbl_1.Forward(x)))
	return cat(b3, bd, maxPool(x, 3, 2, 0, false))
}

// Forward concatenates the branches.
func (m *InceptionC) Forward(x *nn.Tensor) *nn.Tensor {
	b7 := m.Branch7x7_3.Forward(m.Branch7x7_2.Forward(m.Branch7x7_1.Forward(x)))
	bd := m.Branch7x7dbl_1.Forward(x)
	for _, c := range []*BasicConv2d{m.Branch7x7dbl_2, m.Branch7x7dbl_3, m.Branch7x7dbl_4, m.Branch7x7dbl_5} {
		bd = c.Forward(bd)
	}
	bp := m.Pool.Forward(avgPool(x, 3, 1, 1))
	return cat(m.Branch1x1.Forward(x), b7, bd, bp)
}

// Forward concatenates the branches.
func (m *InceptionD) Forward(x *nn.Tensor) *nn.Tensor {
	b3 := m.Branch3x3_2.Forward(m.Branch3x3_1.Forward(x))
	b7 := m.Branch7x7x3_1.Forward(x)
	for _, c := range []*BasicConv2d{m.Branch7x7x3_2, m.Branch7x7x3_3, m.Branch7x7x3_4} {
		b7 = c.Forward(b7)
	}
	return cat(b3, b7, maxPool(x, 3, 2, 0, false))
}

// Forward concatenates the branches.
func (m *InceptionE) Forward(x *nn.Tensor) *nn.Tensor {
	b3 := m.Branch3x3_1.Forward(x)
	b3 = cat(m.Branch3x3_2a.Forward(b3), m.Branch3x3_2b.Forward(b3))
	bd := m.Branch3x3dbl_2.Forward(m.Branch3x3dbl_1.Forward(x))
	bd = cat(m.Branch3x3dbl_3a.Forward(bd), m.Branch3x3dbl_3b.Forward(bd))
	bp := m.Pool.Forward(avgPool(x, 3, 1, 1))
	return cat(m.Branch1x1.Forward(x), b3, bd, bp)
}

// Forward computes the auxiliary logits.
func (m *InceptionV3Aux) Forward(x *nn.Tensor) *nn.Tensor {
	x = avgPool(x, 5, 3, 0)
	x = m.Conv1.Forward(m.Conv0.Forward(x))
	x = nn.AdaptiveAvgPool2dFn(x, 1, 1).Flatten(1, -1)
	return m.FC.Forward(x)
}

// Forward computes the class logits of x [N, 3, H, W] (H, W >= 75).
func (m *Inception3) Forward(x *nn.Tensor) *nn.Tensor {
	out, _ := m.ForwardAux(x)
	return out
}

// ForwardAux returns the main logits and, in training mode with the
// auxiliary head, its logits (nil otherwise).
func (m *Inception3) ForwardAux(x *nn.Tensor) (out, aux *nn.Tensor) {
	if m.TransformInput {
		x = transformInput(x)
	}
	x = m.Conv2d2b3x3.Forward(m.Conv2d2a3x3.Forward(m.Conv2d1a3x3.Forward(x)))
	x = m.MaxPool1.Forward(x)
	x = m.MaxPool2.Forward(m.Conv2d4a3x3.Forward(m.Conv2d3b1x1.Forward(x)))
	x = m.Mixed5d.Forward(m.Mixed5c.Forward(m.Mixed5b.Forward(x)))
	x = m.Mixed6a.Forward(x)
	x = m.Mixed6e.Forward(m.Mixed6d.Forward(m.Mixed6c.Forward(m.Mixed6b.Forward(x))))
	if m.AuxLogits != nil && m.Training() {
		aux = m.AuxLogits.Forward(x)
	}
	x = m.Mixed7c.Forward(m.Mixed7b.Forward(m.Mixed7a.Forward(x)))
	x = m.Dropout.Forward(m.AvgPool.Forward(x)).Flatten(1, -1)
	return m.FC.Forward(x), aux
}

// String returns the module tree as torch prints it.
func (m *Inception3) String() string { return nn.Repr(m) }

// String returns the module tree as torch prints it.
func (m *InceptionA) String() string { return nn.Repr(m) }

// String returns the module tree as torch prints it.
func (m *InceptionB) String() string { return nn.Repr(m) }

// String returns the module tree as torch prints it.
func (m *InceptionC) String() string { return nn.Repr(m) }

// String returns the module tree as torch prints it.
func (m *InceptionD) String() string { return nn.Repr(m) }

// String returns the module tree as torch prints it.
func (m *InceptionE) String() string { return nn.Repr(m) }

// String returns the module tree as torch prints it.
func (m *InceptionV3Aux) String() string { return nn.Repr(m) }

// TypeName returns torch's class name, InceptionAux.
func (m *InceptionV3Aux) TypeName() string { return "InceptionAux" }
