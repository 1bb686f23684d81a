package optim_test

import (
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/ckptkit/ckpt/formats/pytorch"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/optim"
	"github.com/ckptkit/ckpt/pickle"
)

// Example_fineTuning is the tutorial's other case: enough data but a problem
// less like the pretraining one, so the whole network trains. The
// pretrained backbone gets a small learning rate and the new classifier a
// large one (two parameter groups), BatchNorm runs in training mode, and at
// the end the model and the optimizer are saved in PyTorch's formats, so
// training can continue in torch with model.load_state_dict(torch.load(...))
// and optimizer.load_state_dict(torch.load(...)).
func Example_fineTuning() {
	nn.ManualSeed(2)
	model := NewSmallCNN(10)
	sd, f, err := openTorch("../../testdata/transfer/backbone.pt")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if _, err := model.LoadStateDict(sd, true); err != nil {
		log.Fatal(err)
	}
	// New task: 4 classes, "which quadrant is bright", unlike the
	// pretraining task's colours and stripes.
	model.Classifier = nn.NewLinear(nil, 16, 4, true)
	model.Train()

	opt, err := optim.NewSGD(model.Features.Parameters(), optim.LR(0.01), optim.Momentum(0.9))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := opt.AddParamGroup(model.Classifier.Parameters(), optim.LR(0.1)); err != nil {
		log.Fatal(err)
	}
	warm, _ := optim.NewLinearLR(opt, 0.1, 1, 5)
	cos, _ := optim.NewCosineAnnealingLR(opt, 35, 0)
	sched, err := optim.NewSequentialLR(opt, []*optim.LRScheduler{warm, cos}, []int{5})
	if err != nil {
		log.Fatal(err)
	}

	conv0 := append([]float32(nil), model.Features.Parameters()[0].Data()...)
	data, labels := quadrants(64, rand.New(rand.NewPCG(7, 8)))
	lossFn := nn.NewCrossEntropyLoss()
	lossFn.LabelSmoothing = 0.05
	first, last := math.NaN(), math.NaN()
	for step := 0; step < 40; step++ {
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
	changed := false
	for i, v := range model.Features.Parameters()[0].Data() {
		changed = changed || v != conv0[i]
	}
	fmt.Println("loss fell:", last < first/2)
	fmt.Println("backbone trained too:", changed)
	fmt.Println("groups:", len(opt.Groups), "final lr:", sched.LastLR())

	// Save both for torch.
	dir, err := os.MkdirTemp("", "finetune")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	mf, err := os.Create(filepath.Join(dir, "model.pt"))
	if err != nil {
		log.Fatal(err)
	}
	named := model.StateDict()
	if _, err := pytorch.Write(mf, named); err != nil {
		log.Fatal(err)
	}
	mf.Close()
	of, err := os.Create(filepath.Join(dir, "optimizer.pt"))
	if err != nil {
		log.Fatal(err)
	}
	if err := optim.WriteTorch(of, opt.StateDict()); err != nil {
		log.Fatal(err)
	}
	of.Close()

	// Read back, as torch.load would.
	for _, name := range []string{"model.pt", "optimizer.pt"} {
		pf, err := pickle.Open(filepath.Join(dir, name))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(name+":", len(pf.Tensors), "tensors")
		pf.Close()
	}
	// Output:
	// loss fell: true
	// backbone trained too: true
	// groups: 2 final lr: [0 0]
	// model.pt: 14 tensors
	// optimizer.pt: 8 tensors
}

// quadrants draws 3x12x12 noise images with one bright 6x6 quadrant (the
// class) in all channels.
func quadrants(n int, r *rand.Rand) (*nn.Tensor, []int) {
	x := make([]float32, n*3*12*12)
	y := make([]int, n)
	for k := range y {
		y[k] = k % 4
		for c := 0; c < 3; c++ {
			for i := 0; i < 12; i++ {
				for j := 0; j < 12; j++ {
					v := 0.5 * r.NormFloat64()
					if (i/6)*2+j/6 == y[k] {
						v += 0.8
					}
					x[((k*3+c)*12+i)*12+j] = float32(v)
				}
			}
		}
	}
	return nn.New(x, n, 3, 12, 12), y
}
