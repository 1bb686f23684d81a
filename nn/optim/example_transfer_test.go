package optim_test

import (
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/optim"
	"github.com/ckptkit/ckpt/pickle"
)

// SmallCNN is the walkthrough's model, written as one writes a torch
// nn.Module: a convolutional backbone (features) and a classifier, registered
// in the order torch's __init__ assigns them, so parameter names, state_dict
// keys and the printed tree are torch's. testdata/gen/transfer_fixture.py
// defines the same class in Python.
type SmallCNN struct {
	nn.Base
	Features   *nn.Sequential
	Flatten    *nn.Flatten
	Classifier *nn.Linear
}

func NewSmallCNN(numClasses int) *SmallCNN {
	m := &SmallCNN{
		Features: nn.NewSequential(
			nn.NewConv2d(nil, 3, 8, 3, nn.Padding(1), nn.NoBias()),
			nn.NewBatchNorm2d(nil, 8),
			nn.NewReLU(true),
			nn.NewMaxPool2d(2, nn.Stride(2)),
			nn.NewConv2d(nil, 8, 16, 3, nn.Padding(1), nn.NoBias()),
			nn.NewBatchNorm2d(nil, 16),
			nn.NewReLU(true),
			nn.NewAdaptiveAvgPool2d(1, 1),
		),
		Flatten:    nn.NewFlatten(1, -1),
		Classifier: nn.NewLinear(nil, 16, numClasses, true),
	}
	m.RegisterModule("features", &m.Features)
	m.RegisterModule("flatten", &m.Flatten)
	m.RegisterModule("classifier", &m.Classifier)
	return m
}

// Forward runs the module: calling the model on data is its forward pass.
func (m *SmallCNN) Forward(x *nn.Tensor) *nn.Tensor {
	return m.Classifier.Forward(m.Flatten.Forward(m.Features.Forward(x)))
}

func (m *SmallCNN) String() string { return nn.Repr(m) }

// openTorch opens a file written by torch.save and lists its tensors by
// name. Their bytes are read lazily: the caller closes the file after use.
func openTorch(path string) (nn.StateDict, *pickle.File, error) {
	f, err := pickle.Open(path)
	if err != nil {
		return nil, nil, err
	}
	return f.Tensors, f, nil
}

// stripes draws the walkthrough's new task: 3x12x12 images whose class is
// their pattern (0 horizontal stripes, 1 vertical stripes, 2 checkerboard),
// drawn in a random colour channel over noise.
func stripes(n int, r *rand.Rand) (*nn.Tensor, []int) {
	x := make([]float32, n*3*12*12)
	y := make([]int, n)
	for k := range y {
		y[k] = k % 3
		ch := r.IntN(3)
		for c := 0; c < 3; c++ {
			for i := 0; i < 12; i++ {
				for j := 0; j < 12; j++ {
					v := 0.3 * r.NormFloat64()
					on := [3]bool{(i/2)%2 == 1, (j/2)%2 == 1, (i/2+j/2)%2 == 1}[y[k]]
					if c == ch && on {
						v++
					}
					x[((k*3+c)*12+i)*12+j] = float32(v)
				}
			}
		}
	}
	return nn.New(x, n, 3, 12, 12), y
}

// snapshot copies the values of tensors.
func snapshot(ts []nn.NamedTensor) [][]float32 {
	out := make([][]float32, len(ts))
	for i, t := range ts {
		out[i] = append([]float32(nil), t.Tensor.Data()...)
	}
	return out
}

func unchanged(before [][]float32, ts []nn.NamedTensor) bool {
	for i, t := range ts {
		for j, v := range t.Tensor.Data() {
			if v != before[i][j] {
				return false
			}
		}
	}
	return true
}

// Example_transferLearning tells the story of a transfer-learning tutorial in
// Go: build a model as an nn.Module, load weights that PyTorch pretrained,
// check that it computes what torch computes, replace the classifier for a
// new problem, freeze the backbone, and train only the classifier.
//
// The pretrained file is testdata/transfer/backbone.pt, written by
// testdata/gen/transfer_fixture.py with torch.save(model.state_dict()) after
// training the same SmallCNN on a 10-class synthetic task.
func Example_transferLearning() {
	nn.ManualSeed(1)

	// 1. The model: print it as torch prints it, list its modules and
	// parameters (name, shape, requires_grad).
	model := NewSmallCNN(10)
	fmt.Println(model)
	torchRepr, err := os.ReadFile("../../testdata/transfer/repr.txt") // print(model) in torch
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("prints as torch:", model.String()+"\n" == string(torchRepr))
	fmt.Println("modules:", len(nn.Modules(model)))
	for _, p := range model.NamedParameters()[:2] {
		fmt.Println("parameter:", p.Name, p.Tensor.Shape(), "requires_grad:", p.Tensor.RequiresGrad())
	}

	// 2. Pretrained weights: torch.save(model.state_dict()) read by package
	// pickle, loaded strictly (every key must match).
	sd, f, err := openTorch("../../testdata/transfer/backbone.pt")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	report, err := model.LoadStateDict(sd, true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("loaded tensors:", report.Loaded)

	// The forward pass (calling the model on data) gives torch's logits.
	probe, pf, err := openTorch("../../testdata/transfer/probe.pt")
	if err != nil {
		log.Fatal(err)
	}
	defer pf.Close()
	x, _ := nn.FromStored(probe.Tensor("input"))
	want, _ := nn.FromStored(probe.Tensor("logits"))
	model.Eval()
	var got *nn.Tensor
	nn.NoGrad(func() { got = model.Forward(x) })
	fmt.Println("matches torch:", nn.AllClose(got, want, 1e-4, 1e-4))

	// 3. A new problem with 3 classes, similar to the pretraining one, and
	// little data: keep the backbone, freeze it, and train a new classifier.
	model.Classifier = nn.NewLinear(nil, 16, 3, true)
	nn.Freeze(model.Features) // no gradients; BatchNorm keeps its running statistics
	model.Train()             // the classifier trains, the frozen features stay in eval mode
	fmt.Println(model.Classifier)
	fmt.Println("trainable:", len(model.TrainableParameters()), "tensors")

	frozen := append(model.Features.NamedParameters(), model.Features.NamedBuffers()...)
	before := snapshot(frozen)

	opt, err := optim.NewSGD(model.TrainableParameters(), optim.LR(0.1), optim.Momentum(0.9))
	if err != nil {
		log.Fatal(err)
	}
	sched, err := optim.NewCosineAnnealingLR(opt, 30, 0.001)
	if err != nil {
		log.Fatal(err)
	}
	lossFn := nn.NewCrossEntropyLoss()
	data, labels := stripes(60, rand.New(rand.NewPCG(3, 4)))
	first, last := math.NaN(), math.NaN()
	for step := 0; step < 30; step++ {
		opt.ZeroGrad()
		loss := lossFn.Forward(model.Forward(data), labels)
		loss.Backward()
		opt.Step()
		sched.Step()
		if step == 0 {
			first = float64(loss.Item())
		}
		last = float64(loss.Item())
	}
	fmt.Println("loss fell:", last < first/2)
	fmt.Println("frozen params unchanged:", unchanged(before, frozen))
	fmt.Println("backbone has gradients:", model.Features.Parameters()[0].Grad() != nil)

	// The classifier now separates new images of the three patterns.
	test, testLabels := stripes(30, rand.New(rand.NewPCG(5, 6)))
	var logits *nn.Tensor
	nn.NoGrad(func() { logits = model.Forward(test) })
	correct := 0
	for i, y := range testLabels {
		best := 0
		for c := 1; c < 3; c++ {
			if logits.At(i, c) > logits.At(i, best) {
				best = c
			}
		}
		if best == y {
			correct++
		}
	}
	fmt.Println("test accuracy above 90%:", correct*10 > 9*len(testLabels))

	// The optimizer's state is torch's: a momentum buffer per trained tensor.
	st := opt.StateDict()
	fmt.Println("optimizer state:", len(st.State), "tensors, lr", fmt.Sprintf("%.4f", st.ParamGroups[0]["lr"]))

	// Output:
	// SmallCNN(
	//   (features): Sequential(
	//     (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
	//     (1): BatchNorm2d(8, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
	//     (2): ReLU(inplace=True)
	//     (3): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
	//     (4): Conv2d(8, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
	//     (5): BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
	//     (6): ReLU(inplace=True)
	//     (7): AdaptiveAvgPool2d(output_size=(1, 1))
	//   )
	//   (flatten): Flatten(start_dim=1, end_dim=-1)
	//   (classifier): Linear(in_features=16, out_features=10, bias=True)
	// )
	// prints as torch: true
	// modules: 12
	// parameter: features.0.weight [8 3 3 3] requires_grad: true
	// parameter: features.1.weight [8] requires_grad: true
	// loaded tensors: 14
	// matches torch: true
	// Linear(in_features=16, out_features=3, bias=True)
	// trainable: 2 tensors
	// loss fell: true
	// frozen params unchanged: true
	// backbone has gradients: false
	// test accuracy above 90%: true
	// optimizer state: 2 tensors, lr 0.0010
}
