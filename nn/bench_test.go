package nn

import "testing"

// resnet18Convs are the distinct convolutions of torchvision's resnet18 at
// batch 1 on a 224×224 input, plus MobileNetV2-style depthwise and pointwise
// layers.
var resnet18Convs = []struct {
	name                string
	cin, cout, k, s, hw int
	groups              int
}{
	{"conv1_7x7s2", 3, 64, 7, 2, 224, 1},
	{"layer1_3x3", 64, 64, 3, 1, 56, 1},
	{"layer2_3x3s2", 64, 128, 3, 2, 56, 1},
	{"layer2_3x3", 128, 128, 3, 1, 28, 1},
	{"layer2_ds1x1s2", 64, 128, 1, 2, 56, 1},
	{"layer3_3x3s2", 128, 256, 3, 2, 28, 1},
	{"layer3_3x3", 256, 256, 3, 1, 14, 1},
	{"layer4_3x3s2", 256, 512, 3, 2, 14, 1},
	{"layer4_3x3", 512, 512, 3, 1, 7, 1},
	{"mbv2_dw3x3", 144, 144, 3, 1, 56, 144},
	{"mbv2_pw1x1", 144, 24, 1, 1, 56, 1},
}

// BenchmarkConv2d times eval-mode forward passes (NoGrad) and reports
// GFLOP/s, counting 2·multiply-adds.
func BenchmarkConv2d(b *testing.B) {
	for _, c := range resnet18Convs {
		b.Run(c.name, func(b *testing.B) {
			m := NewConv2d(nil, c.cin, c.cout, c.k, Stride(c.s), Padding(c.k/2), Groups(c.groups), NoBias())
			m.Eval()
			x := RandN(1, c.cin, c.hw, c.hw)
			var y *Tensor
			NoGrad(func() { y = m.Forward(x) })
			flops := 2.0 * float64(y.Numel()) * float64(c.cin/c.groups*c.k*c.k)
			b.ReportAllocs()
			b.ResetTimer()
			NoGrad(func() {
				for range b.N {
					m.Forward(x)
				}
			})
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkConvBlock times conv-bn-relu of resnet18's layer1 in eval mode.
func BenchmarkConvBlock(b *testing.B) {
	conv := NewConv2d(nil, 64, 64, 3, Padding(1), NoBias())
	bn := NewBatchNorm2d(nil, 64)
	seq := NewSequential(conv, bn, NewReLU(true))
	seq.Eval()
	x := RandN(1, 64, 56, 56)
	b.ReportAllocs()
	NoGrad(func() {
		for range b.N {
			seq.Forward(x)
		}
	})
}

// BenchmarkConv2dTrain times forward and backward of a layer2 convolution.
func BenchmarkConv2dTrain(b *testing.B) {
	m := NewConv2d(nil, 128, 128, 3, Padding(1), NoBias())
	x := RandN(4, 128, 28, 28).SetRequiresGrad(true)
	for range b.N {
		m.Forward(x).Sum(false).Backward()
	}
}

// basicBlock is torchvision's BasicBlock, for BenchmarkResNet18.
type basicBlock struct {
	Base
	Conv1, Conv2 *Conv2d
	BN1, BN2     *BatchNorm2d
	Down         *Sequential
}

func newBasicBlock(in, out, stride int) *basicBlock {
	b := &basicBlock{
		Conv1: NewConv2d(nil, in, out, 3, Stride(stride), Padding(1), NoBias()),
		BN1:   NewBatchNorm2d(nil, out),
		Conv2: NewConv2d(nil, out, out, 3, Padding(1), NoBias()),
		BN2:   NewBatchNorm2d(nil, out),
	}
	if stride != 1 || in != out {
		b.Down = NewSequential(NewConv2d(nil, in, out, 1, Stride(stride), NoBias()), NewBatchNorm2d(nil, out))
	}
	b.RegisterModule("conv1", &b.Conv1)
	b.RegisterModule("bn1", &b.BN1)
	b.RegisterModule("conv2", &b.Conv2)
	b.RegisterModule("bn2", &b.BN2)
	b.RegisterModule("downsample", &b.Down)
	return b
}

func (b *basicBlock) Forward(x *Tensor) *Tensor {
	y := b.BN2.Forward(b.Conv2.Forward(b.BN1.Forward(b.Conv1.Forward(x)).ReLU()))
	id := x
	if b.Down != nil {
		id = b.Down.Forward(x)
	}
	return y.Add(id).ReLU()
}

// newResNet18 builds torchvision's resnet18 from this package's layers.
func newResNet18() *Sequential {
	s := NewSequential(NewConv2d(nil, 3, 64, 7, Stride(2), Padding(3), NoBias()), NewBatchNorm2d(nil, 64),
		NewReLU(true), NewMaxPool2d(3, Stride(2), Padding(1)))
	in := 64
	for i, out := range []int{64, 128, 256, 512} {
		stride := 2
		if i == 0 {
			stride = 1
		}
		s.Append(newBasicBlock(in, out, stride))
		s.Append(newBasicBlock(out, out, 1))
		in = out
	}
	s.Append(NewAdaptiveAvgPool2d(1, 1))
	s.Append(NewFlatten(1, -1))
	s.Append(NewLinear(nil, 512, 1000, true))
	return s
}

// BenchmarkResNet18 times an eval-mode forward pass of resnet18 at batch 1
// (1.82 GFLOPs of multiply-adds ×2).
func BenchmarkResNet18(b *testing.B) {
	m := newResNet18()
	m.Eval()
	x := RandN(1, 3, 224, 224)
	NoGrad(func() { m.Forward(x) })
	b.ReportAllocs()
	b.ResetTimer()
	NoGrad(func() {
		for range b.N {
			m.Forward(x)
		}
	})
	b.ReportMetric(3.64e9*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}
