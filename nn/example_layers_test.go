package nn_test

import (
	"fmt"

	"github.com/ckptkit/ckpt/nn"
)

// Layers print as torch prints them (TestReprMatchesTorch compares the two)
// and map [N, C, H, W] inputs to torch's output shapes.
func ExampleNewConv2d() {
	conv := nn.NewConv2d(nil, 3, 64, 7, nn.Stride(2), nn.Padding(3), nn.NoBias())
	fmt.Println(conv)
	dw := nn.NewConv2d(nil, 32, 32, 3, nn.Padding(1), nn.Groups(32)) // depthwise
	fmt.Println(dw)
	var y *nn.Tensor
	nn.NoGrad(func() { y = conv.Forward(nn.Zeros(1, 3, 224, 224)) })
	fmt.Println(y.Shape())
	// Output:
	// Conv2d(3, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)
	// Conv2d(32, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=32)
	// [1 64 112 112]
}

func ExampleNewBatchNorm2d() {
	bn := nn.NewBatchNorm2d(nil, 64)
	fmt.Println(bn)
	for _, b := range bn.NamedBuffers() {
		fmt.Println(b.Name, b.Tensor.Shape())
	}
	sd := bn.StateDict()
	fmt.Println(sd[len(sd)-1].Name, sd[len(sd)-1].Tensor.DType)
	// Output:
	// BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
	// running_mean [64]
	// running_var [64]
	// num_batches_tracked int64
}

func ExampleNewLinear() {
	fc := nn.NewLinear(nil, 512, 1000, true)
	fmt.Println(fc)
	for _, p := range fc.NamedParameters() {
		fmt.Println(p.Name, p.Tensor.Shape(), p.Tensor.RequiresGrad())
	}
	// Output:
	// Linear(in_features=512, out_features=1000, bias=True)
	// weight [1000 512] true
	// bias [1000] true
}

func ExampleNewSequential() {
	block := nn.NewSequential(
		nn.NewConv2d(nil, 3, 8, 3, nn.Padding(1)),
		nn.NewReLU(true),
		nn.NewMaxPool2d(2, nn.Stride(2)),
		nn.NewAdaptiveAvgPool2d(1, 1),
		nn.NewFlatten(1, -1),
		nn.NewDropout(0.2, false),
		nn.NewLinear(nil, 8, 10, true),
	)
	fmt.Println(block)
	block.Eval()
	var y *nn.Tensor
	nn.NoGrad(func() { y = block.Forward(nn.Zeros(2, 3, 32, 32)) })
	fmt.Println(y.Shape())
	// Output:
	// Sequential(
	//   (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
	//   (1): ReLU(inplace=True)
	//   (2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
	//   (3): AdaptiveAvgPool2d(output_size=(1, 1))
	//   (4): Flatten(start_dim=1, end_dim=-1)
	//   (5): Dropout(p=0.2, inplace=False)
	//   (6): Linear(in_features=8, out_features=10, bias=True)
	// )
	// [2 10]
}

// Activations compute torch's definitions element by element.
func ExampleNewReLU6() {
	x := nn.New([]float32{-2, 0.5, 3, 8}, 4)
	fmt.Println(nn.NewReLU6(false).Forward(x).Data())
	fmt.Println(x.ReLU().Data())
	// Output:
	// [0 0.5 3 6]
	// [0 0.5 3 8]
}

// Add broadcasts as torch does: [2, 3] + [3] adds the row to each row.
func ExampleTensor_Add() {
	a := nn.New([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	b := nn.New([]float32{10, 20, 30}, 3)
	fmt.Println(a.Add(b).Data())
	// Output:
	// [11 22 33 14 25 36]
}

func ExampleTensor_MatMul() {
	a := nn.New([]float32{1, 2, 3, 4}, 2, 2)
	id := nn.New([]float32{1, 0, 0, 1}, 2, 2)
	fmt.Println(a.MatMul(id).Data(), a.MatMul(id).Shape())
	// Output:
	// [1 2 3 4] [2 2]
}

func ExampleCat() {
	a := nn.New([]float32{1, 2}, 1, 2)
	b := nn.New([]float32{3, 4, 5, 6}, 2, 2)
	c := nn.Cat([]*nn.Tensor{a, b}, 0)
	fmt.Println(c.Shape(), c.Data())
	// Output:
	// [3 2] [1 2 3 4 5 6]
}

func ExampleTensor_Mean() {
	x := nn.New([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	fmt.Println(x.Mean(false, 1).Data(), x.Sum(true, 0).Shape())
	// Output:
	// [2 5] [1 3]
}

func ExampleTensor_Permute() {
	x := nn.New([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	t := x.Permute(1, 0)
	fmt.Println(t.Shape(), t.Data())
	// Output:
	// [3 2] [1 4 2 5 3 6]
}

// ChannelShuffle interleaves the channels of its groups (ShuffleNet).
func ExampleNewChannelShuffle() {
	x := nn.New([]float32{0, 1, 2, 3}, 1, 4, 1, 1)
	fmt.Println(nn.NewChannelShuffle(2).Forward(x).Data())
	// Output:
	// [0 2 1 3]
}
