package models

import (
	"fmt"

	"github.com/ckptkit/ckpt/nn"
)

// ResNet is torchvision.models.ResNet: the resnet, resnext and wide_resnet
// families, with BasicBlock or Bottleneck residual blocks.
type ResNet struct {
	nn.Base
	Conv1                          *nn.Conv2d
	BN1                            *nn.BatchNorm2d
	ReLU                           *nn.ReLU
	MaxPool                        *nn.MaxPool2d
	Layer1, Layer2, Layer3, Layer4 *nn.Sequential
	AvgPool                        *nn.AdaptiveAvgPool2d
	FC                             *nn.Linear
}

// BasicBlock is torchvision's two-convolution residual block (resnet18/34).
type BasicBlock struct {
	nn.Base
	Conv1      *nn.Conv2d
	BN1        *nn.BatchNorm2d
	ReLU       *nn.ReLU
	Conv2      *nn.Conv2d
	BN2        *nn.BatchNorm2d
	Downsample *nn.Sequential // nil when the shortcut is the identity
}

// Bottleneck is torchvision's 1x1-3x3-1x1 residual block (resnet50 and
// deeper, resnext, wide_resnet).
type Bottleneck struct {
	nn.Base
	Conv1      *nn.Conv2d
	BN1        *nn.BatchNorm2d
	Conv2      *nn.Conv2d
	BN2        *nn.BatchNorm2d
	Conv3      *nn.Conv2d
	BN3        *nn.BatchNorm2d
	ReLU       *nn.ReLU
	Downsample *nn.Sequential
}

// resnetArch is the ResNet constructor's arguments. Widths are the stem's
// and the four stages' planes (64, 64, 128, 256, 512 in torchvision; the
// parity fixtures use smaller ones).
type resnetArch struct {
	bottleneck    bool
	layers        [4]int
	groups        int
	widthPerGroup int
	widths        [5]int
}

var stdWidths = [5]int{64, 64, 128, 256, 512}

func init() {
	for _, a := range []struct {
		name string
		arch resnetArch
	}{
		{"resnet18", resnetArch{false, [4]int{2, 2, 2, 2}, 1, 64, stdWidths}},
		{"resnet34", resnetArch{false, [4]int{3, 4, 6, 3}, 1, 64, stdWidths}},
		{"resnet50", resnetArch{true, [4]int{3, 4, 6, 3}, 1, 64, stdWidths}},
		{"resnet101", resnetArch{true, [4]int{3, 4, 23, 3}, 1, 64, stdWidths}},
		{"resnet152", resnetArch{true, [4]int{3, 8, 36, 3}, 1, 64, stdWidths}},
		{"resnext50_32x4d", resnetArch{true, [4]int{3, 4, 6, 3}, 32, 4, stdWidths}},
		{"resnext101_32x8d", resnetArch{true, [4]int{3, 4, 23, 3}, 32, 8, stdWidths}},
		{"resnext101_64x4d", resnetArch{true, [4]int{3, 4, 23, 3}, 64, 4, stdWidths}},
		{"wide_resnet50_2", resnetArch{true, [4]int{3, 4, 6, 3}, 1, 128, stdWidths}},
		{"wide_resnet101_2", resnetArch{true, [4]int{3, 4, 23, 3}, 1, 128, stdWidths}},
	} {
		arch := a.arch
		Register(Spec{Name: a.name, Classifier: "fc.weight",
			Build: func(cfg Config) (nn.Module, error) { return newResNet(cfg, arch) }})
	}
}

func newResNet(cfg Config, a resnetArch) (*ResNet, error) {
	if !a.bottleneck && (a.groups != 1 || a.widthPerGroup != 64) {
		return nil, fmt.Errorf("models: BasicBlock only supports groups=1 and base_width=64")
	}
	b := cfg.Weights
	m := &ResNet{}
	inplanes := a.widths[0]
	m.Conv1 = nn.NewConv2d(b.Sub("conv1"), 3, inplanes, 7, nn.Stride(2), nn.Padding(3), nn.NoBias())
	m.BN1 = nn.NewBatchNorm2d(b.Sub("bn1"), inplanes)
	m.ReLU = nn.NewReLU(true)
	m.MaxPool = nn.NewMaxPool2d(3, nn.Stride(2), nn.Padding(1))
	expansion := 1
	if a.bottleneck {
		expansion = 4
	}
	layer := func(name string, planes, blocks, stride int) *nn.Sequential {
		lb := b.Sub(name)
		seq := nn.NewSequential()
		for i := range blocks {
			bb := lb.Sub(fmt.Sprint(i))
			s := 1
			var down *nn.Sequential
			if i == 0 {
				s = stride
				if stride != 1 || inplanes != planes*expansion {
					db := bb.Sub("downsample")
					down = nn.NewSequential(
						nn.NewConv2d(db.Sub("0"), inplanes, planes*expansion, 1, nn.Stride(stride), nn.NoBias()),
						nn.NewBatchNorm2d(db.Sub("1"), planes*expansion))
				}
			}
			if a.bottleneck {
				seq.Append(newBottleneck(bb, inplanes, planes, s, a.groups, a.widthPerGroup, down))
			} else {
				seq.Append(newBasicBlock(bb, inplanes, planes, s, down))
			}
			inplanes = planes * expansion
		}
		return seq
	}
	m.Layer1 = layer("layer1", a.widths[1], a.layers[0], 1)
	m.Layer2 = layer("layer2", a.widths[2], a.layers[1], 2)
	m.Layer3 = layer("layer3", a.widths[3], a.layers[2], 2)
	m.Layer4 = layer("layer4", a.widths[4], a.layers[3], 2)
	m.AvgPool = nn.NewAdaptiveAvgPool2d(1, 1)
	m.FC = nn.NewLinear(b.Sub("fc"), a.widths[4]*expansion, cfg.numClasses(), true)
	m.RegisterModule("conv1", &m.Conv1)
	m.RegisterModule("bn1", &m.BN1)
	m.RegisterModule("relu", &m.ReLU)
	m.RegisterModule("maxpool", &m.MaxPool)
	m.RegisterModule("layer1", &m.Layer1)
	m.RegisterModule("layer2", &m.Layer2)
	m.RegisterModule("layer3", &m.Layer3)
	m.RegisterModule("layer4", &m.Layer4)
	m.RegisterModule("avgpool", &m.AvgPool)
	m.RegisterModule("fc", &m.FC)
	return m, nil
}

func newBasicBlock(b *nn.Builder, inplanes, planes, stride int, down *nn.Sequential) *BasicBlock {
	m := &BasicBlock{
		Conv1:      nn.NewConv2d(b.Sub("conv1"), inplanes, planes, 3, nn.Stride(stride), nn.Padding(1), nn.NoBias()),
		BN1:        nn.NewBatchNorm2d(b.Sub("bn1"), planes),
		ReLU:       nn.NewReLU(true),
		Conv2:      nn.NewConv2d(b.Sub("conv2"), planes, planes, 3, nn.Padding(1), nn.NoBias()),
		BN2:        nn.NewBatchNorm2d(b.Sub("bn2"), planes),
		Downsample: down,
	}
	m.RegisterModule("conv1", &m.Conv1)
	m.RegisterModule("bn1", &m.BN1)
	m.RegisterModule("relu", &m.ReLU)
	m.RegisterModule("conv2", &m.Conv2)
	m.RegisterModule("bn2", &m.BN2)
	m.RegisterModule("downsample", &m.Downsample)
	return m
}

func newBottleneck(b *nn.Builder, inplanes, planes, stride, groups, baseWidth int, down *nn.Sequential) *Bottleneck {
	width := planes * baseWidth / 64 * groups
	m := &Bottleneck{
		Conv1:      nn.NewConv2d(b.Sub("conv1"), inplanes, width, 1, nn.NoBias()),
		BN1:        nn.NewBatchNorm2d(b.Sub("bn1"), width),
		Conv2:      nn.NewConv2d(b.Sub("conv2"), width, width, 3, nn.Stride(stride), nn.Padding(1), nn.Groups(groups), nn.NoBias()),
		BN2:        nn.NewBatchNorm2d(b.Sub("bn2"), width),
		Conv3:      nn.NewConv2d(b.Sub("conv3"), width, planes*4, 1, nn.NoBias()),
		BN3:        nn.NewBatchNorm2d(b.Sub("bn3"), planes*4),
		ReLU:       nn.NewReLU(true),
		Downsample: down,
	}
	m.RegisterModule("conv1", &m.Conv1)
	m.RegisterModule("bn1", &m.BN1)
	m.RegisterModule("conv2", &m.Conv2)
	m.RegisterModule("bn2", &m.BN2)
	m.RegisterModule("conv3", &m.Conv3)
	m.RegisterModule("bn3", &m.BN3)
	m.RegisterModule("relu", &m.ReLU)
	m.RegisterModule("downsample", &m.Downsample)
	return m
}

// Forward computes the class logits of x [N, 3, H, W].
//
// Inside an inference call every intermediate result is given back to the
// call's arena (nn.Release) once read for the last time, so that a pass
// works in a few buffers instead of holding all its activations; outside
// one, Release does nothing.
func (m *ResNet) Forward(x *nn.Tensor) *nn.Tensor {
	stem := nn.ConvBNAct(m.Conv1, m.BN1, m.ReLU, x, nil)
	x = m.MaxPool.Forward(stem)
	releaseUnless(stem, x)
	for _, l := range []*nn.Sequential{m.Layer1, m.Layer2, m.Layer3, m.Layer4} {
		y := l.Forward(x)
		releaseUnless(x, y)
		x = y
	}
	y := m.AvgPool.Forward(x)
	releaseUnless(x, y)
	return m.FC.Forward(y.Flatten(1, -1))
}

// Forward runs the block.
func (m *BasicBlock) Forward(x *nn.Tensor) *nn.Tensor {
	identity := x
	if m.Downsample != nil {
		identity = m.Downsample.Forward(x)
	}
	out := nn.ConvBNAct(m.Conv1, m.BN1, m.ReLU, x, nil)
	y := nn.ConvBNAct(m.Conv2, m.BN2, m.ReLU, out, identity)
	releaseLocal(out, identity, x, y)
	return y
}

// Forward runs the block.
func (m *Bottleneck) Forward(x *nn.Tensor) *nn.Tensor {
	identity := x
	if m.Downsample != nil {
		identity = m.Downsample.Forward(x)
	}
	out := nn.ConvBNAct(m.Conv1, m.BN1, m.ReLU, x, nil)
	mid := nn.ConvBNAct(m.Conv2, m.BN2, m.ReLU, out, nil)
	nn.Release(out)
	y := nn.ConvBNAct(m.Conv3, m.BN3, m.ReLU, mid, identity)
	releaseLocal(mid, identity, x, y)
	return y
}

// releaseLocal gives a block's intermediate results back to an inference
// call's arena: out, and identity when it is not the block's input x;
// neither when y, the block's result, is in its memory (an op that worked
// in place).
func releaseLocal(out, identity, x, y *nn.Tensor) {
	releaseUnless(out, y)
	if !sameMemory(identity, x) {
		releaseUnless(identity, y)
	}
}

// releaseUnless releases t (nn.Release) unless keep shares its memory.
func releaseUnless(t, keep *nn.Tensor) {
	if !sameMemory(t, keep) {
		nn.Release(t)
	}
}

// sameMemory reports whether a and b start at the same element.
func sameMemory(a, b *nn.Tensor) bool {
	da, db := a.Data(), b.Data()
	return len(da) > 0 && len(db) > 0 && &da[0] == &db[0]
}

// String returns the module tree as torch prints it.
func (m *ResNet) String() string { return nn.Repr(m) }

// String returns the module tree as torch prints it.
func (m *BasicBlock) String() string { return nn.Repr(m) }

// String returns the module tree as torch prints it.
func (m *Bottleneck) String() string { return nn.Repr(m) }
