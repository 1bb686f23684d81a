package nn_test

import (
	"fmt"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/tensor"
)

// SmallCNN is the network of testdata/gen/nn_transfer.py, written the way a
// Go user writes a module: embed nn.Base, register fields in order.
type SmallCNN struct {
	nn.Base
	Features *nn.Sequential
	Avgpool  *nn.AdaptiveAvgPool2d
	FC       *nn.Linear
}

// NewSmallCNN builds the network, taking weights from b (nil: fresh ones).
func NewSmallCNN(b *nn.Builder, classes int) *SmallCNN {
	f := b.Sub("features")
	m := &SmallCNN{
		Features: nn.NewSequential(
			nn.NewConv2d(f.Sub("0"), 3, 8, 3, nn.Padding(1), nn.NoBias()),
			nn.NewBatchNorm2d(f.Sub("1"), 8),
			nn.NewReLU(true),
			nn.NewMaxPool2d(2, nn.Stride(2)),
			nn.NewConv2d(f.Sub("4"), 8, 16, 3, nn.Padding(1), nn.Groups(2)),
			nn.NewBatchNorm2d(f.Sub("5"), 16),
			nn.NewReLU(true),
		),
		Avgpool: nn.NewAdaptiveAvgPool2d(1, 1),
		FC:      nn.NewLinear(b.Sub("fc"), 16, classes, true),
	}
	m.RegisterModule("features", &m.Features)
	m.RegisterModule("avgpool", &m.Avgpool)
	m.RegisterModule("fc", &m.FC)
	return m
}

// Forward classifies x [N, 3, H, W].
func (m *SmallCNN) Forward(x *nn.Tensor) *nn.Tensor {
	return m.FC.Forward(m.Avgpool.Forward(m.Features.Forward(x)).Flatten(1, -1))
}

func (m *SmallCNN) String() string { return nn.Repr(m) }

// The transfer-learning walkthrough: load a torch-trained CNN from a .pt
// file, replace its classifier with a 2-class head, freeze the rest, and
// train the head for a few steps.
func Example_transferLearning() {
	ckpt, err := formats.Open("../testdata/nn/small_cnn.pt")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ckpt.Close()
	b := nn.NewBuilder(ckpt) // a formats.Checkpoint is an nn.Source
	net := NewSmallCNN(b, 4)
	if err := b.Err(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("loaded", b.Report().Loaded, "tensors")

	net.RequiresGrad(false)                 // freeze the pretrained network...
	net.FC = nn.NewLinear(nil, 16, 2, true) // ...and give it a new, trainable head
	net.Train()
	net.Features.Eval() // keep the pretrained BatchNorm statistics
	fmt.Println("trainable:", len(net.TrainableParameters()), "of", len(net.Parameters()), "tensors")
	fmt.Println(net.FC)

	nn.ManualSeed(1)
	// Synthetic task: class 1 images are brighter than class 0 images.
	batch := func() (*nn.Tensor, *nn.Tensor) {
		x := nn.RandN(8, 3, 8, 8)
		onehot := nn.Zeros(8, 2)
		for i := range 8 {
			c := i % 2
			onehot.Data()[i*2+c] = 1
			for j := range 3 * 8 * 8 {
				x.Data()[i*192+j] += float32(2*c - 1)
			}
		}
		return x, onehot
	}
	var losses []float32
	for range 30 {
		x, target := batch()
		logp := net.Forward(x).LogSoftmax(1)
		loss := logp.Mul(target).Sum(false).MulScalar(-1.0 / 8) // cross-entropy
		loss.Backward()
		for _, p := range net.TrainableParameters() { // plain SGD, lr 0.5
			d, g := p.Data(), p.Grad().Data()
			for i := range d {
				d[i] -= 0.5 * g[i]
			}
		}
		net.ZeroGrad()
		losses = append(losses, loss.Item())
	}
	fmt.Println("loss fell:", losses[len(losses)-1] < losses[0]/2)
	fmt.Println("backbone untouched:", net.Features.At(0).(*nn.Conv2d).Weight.Grad() == nil)
	// Output:
	// loaded 15 tensors
	// trainable: 2 of 9 tensors
	// Linear(in_features=16, out_features=2, bias=True)
	// loss fell: true
	// backbone untouched: true
}

// Modules print exactly as torch prints them.
func ExampleRepr() {
	net := NewSmallCNN(nil, 4)
	fmt.Println(net)
	// Output:
	// SmallCNN(
	//   (features): Sequential(
	//     (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
	//     (1): BatchNorm2d(8, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
	//     (2): ReLU(inplace=True)
	//     (3): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
	//     (4): Conv2d(8, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=2)
	//     (5): BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
	//     (6): ReLU(inplace=True)
	//   )
	//   (avgpool): AdaptiveAvgPool2d(output_size=(1, 1))
	//   (fc): Linear(in_features=16, out_features=4, bias=True)
	// )
}

// StateDict lists parameters and persistent buffers with torch's keys,
// order and dtypes.
func ExampleBase_StateDict() {
	net := NewSmallCNN(nil, 4)
	for _, e := range net.StateDict()[:7] {
		fmt.Println(e.Name, e.Tensor.DType, e.Tensor.Shape)
	}
	// Output:
	// features.0.weight float32 [8 3 3 3]
	// features.1.weight float32 [8]
	// features.1.bias float32 [8]
	// features.1.running_mean float32 [8]
	// features.1.running_var float32 [8]
	// features.1.num_batches_tracked int64 []
	// features.4.weight float32 [16 4 3 3]
}

// LoadStateDict reports every problem at once, with suggestions for typos.
func ExampleBase_LoadStateDict() {
	src := NewSmallCNN(nil, 4).StateDict()
	for i := range src {
		if src[i].Name == "fc.weight" {
			src[i].Name = "fc.wieght"
		}
	}
	src = append(src, nn.Named{Name: "fc.extra", Tensor: nn.ToStored(nn.Zeros(1))})
	_, err := NewSmallCNN(nil, 4).LoadStateDict(src, true)
	fmt.Println(err)
	// Output:
	// nn: error(s) in loading state_dict: loaded 0 tensors
	// 	missing key(s) in state_dict: "fc.weight".
	// 	  "fc.weight": did you mean "fc.wieght"?
	// 	unexpected key(s) in state_dict: "fc.wieght", "fc.extra".
}

// RequiresGrad(false) freezes a subtree: its parameters get no gradient.
func ExampleBase_RequiresGrad() {
	net := NewSmallCNN(nil, 4)
	net.Features.RequiresGrad(false)
	for _, p := range net.NamedParameters() {
		fmt.Println(p.Name, p.Tensor.RequiresGrad())
	}
	// Output:
	// features.0.weight false
	// features.1.weight false
	// features.1.bias false
	// features.4.weight false
	// features.4.bias false
	// features.5.weight false
	// features.5.bias false
	// fc.weight true
	// fc.bias true
}

// A Builder hands each layer its weights by dotted path.
func ExampleBuilder() {
	src := nn.StateDict{
		{Name: "head.weight", Tensor: nn.ToStored(nn.New([]float32{1, 2, 3, 4, 5, 6}, 2, 3))},
		{Name: "head.bias", Tensor: nn.ToStored(nn.New([]float32{0.5, -0.5}, 2))},
	}
	b := nn.NewBuilder(src)
	fc := nn.NewLinear(b.Sub("head"), 3, 2, true)
	fmt.Println(b.Err(), fc.Weight.Data(), fc.Bias.Data())
	// Output:
	// <nil> [1 2 3 4 5 6] [0.5 -0.5]
}

// FromStored widens half-precision weights exactly.
func ExampleFromStored() {
	h := []byte{0x00, 0x3c, 0x00, 0xc0} // float16 1.0 and -2.0, little-endian
	st, _ := tensor.FromBytes(tensor.Float16, []int64{2}, h)
	t, _ := nn.FromStored(st)
	fmt.Println(t.Shape(), t.Data())
	// Output:
	// [2] [1 -2]
}

// Backward accumulates gradients into leaves that require grad.
func ExampleTensor_Backward() {
	x := nn.New([]float32{1, 2, 3}, 3).SetRequiresGrad(true)
	y := x.Mul(x).Sum(false) // Σx²
	y.Backward()
	fmt.Println(y.Item(), x.Grad().Data())
	// Output:
	// 14 [2 4 6]
}

// NoGrad runs inference without recording a graph.
func ExampleNoGrad() {
	l := nn.NewLinear(nil, 3, 2, true)
	var y *nn.Tensor
	nn.NoGrad(func() { y = l.Forward(nn.Ones(1, 3)) })
	fmt.Println(y.Shape(), y.RequiresGrad())
	// Output:
	// [1 2] false
}

// A training loop keeps one TrainArena and runs each step through it: the
// step's activations and most of its gradients reuse the memory of the
// step before. Read what the step's results hold (here the loss) before
// they are overwritten: the loss, a single value, stays readable after
// Backward; larger results such as the logits are read before it.
func ExampleTrainArena() {
	nn.ManualSeed(1)
	net := nn.NewSequential(
		nn.NewConv2d(nil, 3, 8, 3, nn.Padding(1)),
		nn.NewBatchNorm2d(nil, 8),
		nn.NewReLU(true),
		nn.NewAdaptiveAvgPool2d(1, 1),
		nn.NewFlatten(1, -1),
		nn.NewLinear(nil, 8, 2, true),
	)
	net.Train()
	lossFn := nn.NewCrossEntropyLoss()
	labels := []int{0, 1, 0, 1, 0, 1, 0, 1}
	x := nn.RandN(8, 3, 16, 16)
	for i := range 8 {
		for j := range 3 * 16 * 16 { // class 1 images are brighter
			x.Data()[i*768+j] += float32(2*labels[i] - 1)
		}
	}
	var mem nn.TrainArena
	var losses []float32
	for range 20 {
		net.ZeroGrad()
		mem.Step(x, func(x *nn.Tensor) {
			loss := lossFn.Forward(net.Forward(x), labels)
			loss.Backward()
			losses = append(losses, loss.Item())
		})
		for _, p := range net.Parameters() { // plain SGD, lr 0.1
			d, g := p.Data(), p.Grad().Data()
			for i := range d {
				d[i] -= 0.1 * g[i]
			}
		}
	}
	fmt.Println("loss fell:", losses[len(losses)-1] < losses[0]/2)
	// Output:
	// loss fell: true
}
