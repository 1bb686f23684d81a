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
