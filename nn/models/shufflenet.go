package models

import (
	"fmt"

	"github.com/ckptkit/ckpt/nn"
)

// ShuffleNetV2 is torchvision.models.ShuffleNetV2 (shufflenet_v2_x0_5,
// x1_0, x1_5, x2_0).
type ShuffleNetV2 struct {
	nn.Base
	Conv1                  *nn.Sequential
	Maxpool                *nn.MaxPool2d
	Stage2, Stage3, Stage4 *nn.Sequential
	Conv5                  *nn.Sequential
	FC                     *nn.Linear
}

// ShuffleBlock is torchvision's shufflenetv2 InvertedResidual: with stride
// 1 it transforms half of the channels (branch2) and keeps the other half;
// with stride 2 both branches transform the whole input. The two halves are
// concatenated and their channels shuffled in two groups.
type ShuffleBlock struct {
	nn.Base
	Branch1, Branch2 *nn.Sequential
	stride           int
}

// shufflenetArch is ShuffleNetV2's stage repeats and the five stage widths.
type shufflenetArch struct {
	repeats [3]int
	widths  [5]int
}

func init() {
	for _, a := range []struct {
		name   string
		widths [5]int
	}{
		{"shufflenet_v2_x0_5", [5]int{24, 48, 96, 192, 1024}},
		{"shufflenet_v2_x1_0", [5]int{24, 116, 232, 464, 1024}},
		{"shufflenet_v2_x1_5", [5]int{24, 176, 352, 704, 1024}},
		{"shufflenet_v2_x2_0", [5]int{24, 244, 488, 976, 2048}},
	} {
		arch := shufflenetArch{[3]int{4, 8, 4}, a.widths}
		Register(Spec{Name: a.name, Classifier: "fc.weight",
			Build: func(cfg Config) (nn.Module, error) { return newShuffleNetV2(cfg, arch) }})
	}
}

func newShuffleNetV2(cfg Config, a shufflenetArch) (*ShuffleNetV2, error) {
	b := cfg.Weights
	seq3 := func(sb *nn.Builder, in, out, k, stride, pad int) *nn.Sequential {
		return nn.NewSequential(
			nn.NewConv2d(sb.Sub("0"), in, out, k, nn.Stride(stride), nn.Padding(pad), nn.NoBias()),
			nn.NewBatchNorm2d(sb.Sub("1"), out),
			nn.NewReLU(true))
	}
	m := &ShuffleNetV2{
		Conv1:   seq3(b.Sub("conv1"), 3, a.widths[0], 3, 2, 1),
		Maxpool: nn.NewMaxPool2d(3, nn.Stride(2), nn.Padding(1)),
	}
	in := a.widths[0]
	stages := [3]**nn.Sequential{&m.Stage2, &m.Stage3, &m.Stage4}
	for i, st := range stages {
		sb := b.Sub(fmt.Sprintf("stage%d", i+2))
		out := a.widths[i+1]
		seq := nn.NewSequential()
		for r := range a.repeats[i] {
			stride := 1
			if r == 0 {
				stride = 2
			}
			blk, err := newShuffleBlock(sb.Sub(fmt.Sprint(r)), in, out, stride)
			if err != nil {
				return nil, err
			}
			seq.Append(blk)
			in = out
		}
		*st = seq
	}
	m.Conv5 = seq3(b.Sub("conv5"), in, a.widths[4], 1, 1, 0)
	m.FC = nn.NewLinear(b.Sub("fc"), a.widths[4], cfg.numClasses(), true)
	m.RegisterModule("conv1", &m.Conv1)
	m.RegisterModule("maxpool", &m.Maxpool)
	m.RegisterModule("stage2", &m.Stage2)
	m.RegisterModule("stage3", &m.Stage3)
	m.RegisterModule("stage4", &m.Stage4)
	m.RegisterModule("conv5", &m.Conv5)
	m.RegisterModule("fc", &m.FC)
	return m, nil
}

func newShuffleBlock(b *nn.Builder, in, out, stride int) (*ShuffleBlock, error) {
	bf := out / 2
	if stride == 1 && in != bf<<1 {
		return nil, fmt.Errorf("models: shufflenet: stride 1 needs in = out (got %d, %d)", in, out)
	}
	m := &ShuffleBlock{stride: stride, Branch1: nn.NewSequential()}
	if stride > 1 {
		b1 := b.Sub("branch1")
		m.Branch1 = nn.NewSequential(
			nn.NewConv2d(b1.Sub("0"), in, in, 3, nn.Stride(stride), nn.Padding(1), nn.Groups(in), nn.NoBias()),
			nn.NewBatchNorm2d(b1.Sub("1"), in),
			nn.NewConv2d(b1.Sub("2"), in, bf, 1, nn.NoBias()),
			nn.NewBatchNorm2d(b1.Sub("3"), bf),
			nn.NewReLU(true))
	}
	b2 := b.Sub("branch2")
	first := bf
	if stride > 1 {
		first = in
	}
	m.Branch2 = nn.NewSequential(
		nn.NewConv2d(b2.Sub("0"), first, bf, 1, nn.NoBias()),
		nn.NewBatchNorm2d(b2.Sub("1"), bf),
		nn.NewReLU(true),
		nn.NewConv2d(b2.Sub("3"), bf, bf, 3, nn.Stride(stride), nn.Padding(1), nn.Groups(bf), nn.NoBias()),
		nn.NewBatchNorm2d(b2.Sub("4"), bf),
		nn.NewConv2d(b2.Sub("5"), bf, bf, 1, nn.NoBias()),
		nn.NewBatchNorm2d(b2.Sub("6"), bf),
		nn.NewReLU(true))
	m.RegisterModule("branch1", &m.Branch1)
	m.RegisterModule("branch2", &m.Branch2)
	return m, nil
}

// Forward runs the block.
func (m *ShuffleBlock) Forward(x *nn.Tensor) *nn.Tensor {
	var a, c *nn.Tensor
	if m.stride == 1 {
		h := x.Chunk(2, 1)
		a, c = h[0], m.Branch2.Forward(h[1])
	} else {
		a, c = m.Branch1.Forward(x), m.Branch2.Forward(x)
	}
	if !inference(a, c) {
		return nn.Cat([]*nn.Tensor{a, c}, 1).ChannelShuffle(2)
	}
	// cat then shuffle in two groups: output channel 2i is a's channel i,
	// 2i+1 is c's.
	n, ch := a.Size(0), a.Size(1)
	hw := a.Numel() / (n * ch)
	shape := append([]int(nil), a.Shape()...)
	shape[1] = 2 * ch
	out := nn.NewResult(shape, a, c)
	od, ad, cd := out.Data(), a.Data(), c.Data()
	for i := range n {
		for j := range ch {
			src := (i*ch + j) * hw
			dst := (i*2*ch + 2*j) * hw
			copy(od[dst:dst+hw], ad[src:src+hw])
			copy(od[dst+hw:dst+2*hw], cd[src:src+hw])
		}
	}
	return out
}

// TypeName returns torchvision's class name.
func (m *ShuffleBlock) TypeName() string { return "InvertedResidual" }

// Forward computes the class logits of x [N, 3, H, W].
func (m *ShuffleNetV2) Forward(x *nn.Tensor) *nn.Tensor {
	x = m.Maxpool.Forward(m.Conv1.Forward(x))
	x = m.Stage4.Forward(m.Stage3.Forward(m.Stage2.Forward(x)))
	x = m.Conv5.Forward(x)
	x = nn.AdaptiveAvgPool2dFn(x, 1, 1).Flatten(1, -1)
	return m.FC.Forward(x)
}

func (m *ShuffleNetV2) String() string { return nn.Repr(m) }
func (m *ShuffleBlock) String() string { return nn.Repr(m) }
