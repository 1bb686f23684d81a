package optim_test

import (
	"bytes"
	"fmt"
	"log"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/optim"
	"github.com/ckptkit/ckpt/pickle"
)

// The printed values in these examples are torch 1.13's, rounded.

// quadratic returns Σ(w - target)², whose minimum is at target.
func quadratic(w *nn.Tensor) *nn.Tensor {
	return w.Sub(nn.New([]float32{1, -2}, 2)).Square().Sum(false)
}

func ExampleNewSGD() {
	w := nn.Zeros(2).SetRequiresGrad(true)
	opt, err := optim.NewSGD([]*nn.Tensor{w}, optim.LR(0.1), optim.Momentum(0.9))
	if err != nil {
		log.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		opt.ZeroGrad()
		quadratic(w).Backward()
		opt.Step()
	}
	fmt.Printf("%.4f\n", w.Data())
	// Output: [1.0029 -2.0057]
}

func ExampleNewAdam() {
	w := nn.Zeros(2).SetRequiresGrad(true)
	opt, err := optim.NewAdam([]*nn.Tensor{w}, optim.LR(0.1))
	if err != nil {
		log.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		opt.ZeroGrad()
		quadratic(w).Backward()
		opt.Step()
	}
	fmt.Printf("%.4f\n", w.Data())
	// Output: [1.0000 -1.9999]
}

// ExampleOptimizer_AddParamGroup trains two tensors with different learning
// rates, as torch's per-parameter options
// SGD([{"params": [p]}, {"params": [q], "lr": 0.01}], lr=0.1).
func ExampleOptimizer_AddParamGroup() {
	p := nn.Zeros(2).SetRequiresGrad(true)
	q := nn.Zeros(2).SetRequiresGrad(true)
	opt, err := optim.NewSGD([]*nn.Tensor{p}, optim.LR(0.1))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := opt.AddParamGroup([]*nn.Tensor{q}, optim.LR(0.01)); err != nil {
		log.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		opt.ZeroGrad()
		quadratic(p).Add(quadratic(q)).Backward()
		opt.Step()
	}
	fmt.Printf("%.4f %.4f\n", p.Data(), q.Data())
	// Output: [0.8926 -1.7853] [0.1829 -0.3659]
}

// ExampleNewSequentialLR warms the learning rate up linearly for 3 epochs,
// then anneals it along a cosine for 5.
func ExampleNewSequentialLR() {
	opt, err := optim.NewSGD([]*nn.Tensor{nn.Zeros(1).SetRequiresGrad(true)}, optim.LR(0.1))
	if err != nil {
		log.Fatal(err)
	}
	warm, _ := optim.NewLinearLR(opt, 0.25, 1, 3)
	cos, _ := optim.NewCosineAnnealingLR(opt, 5, 0)
	sched, err := optim.NewSequentialLR(opt, []*optim.LRScheduler{warm, cos}, []int{3})
	if err != nil {
		log.Fatal(err)
	}
	for epoch := 0; epoch <= 8; epoch++ {
		fmt.Printf("%.4f ", sched.LastLR()[0])
		opt.Step() // a training epoch
		sched.Step()
	}
	fmt.Println()
	// Output: 0.0250 0.0500 0.0750 0.1000 0.0905 0.0655 0.0345 0.0095 0.0000
}

func ExampleNewStepLR() {
	opt, _ := optim.NewSGD([]*nn.Tensor{nn.Zeros(1).SetRequiresGrad(true)}, optim.LR(0.1))
	sched, err := optim.NewStepLR(opt, 2, 0.5)
	if err != nil {
		log.Fatal(err)
	}
	for epoch := 0; epoch <= 6; epoch++ {
		fmt.Printf("%.4f ", sched.LastLR()[0])
		opt.Step()
		sched.Step()
	}
	fmt.Println()
	// Output: 0.1000 0.1000 0.0500 0.0500 0.0250 0.0250 0.0125
}

// ExampleReadStateDict resumes training from an optimizer state that
// torch.save(optimizer.state_dict(), "sgd_state.pt") wrote
// (testdata/gen/optim_cases.py).
func ExampleReadStateDict() {
	f, err := pickle.Open("../../testdata/optim/sgd_state.pt")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	sd, err := optim.ReadStateDict(f, "")
	if err != nil {
		log.Fatal(err)
	}
	params := []*nn.Tensor{nn.Zeros(3, 4), nn.Zeros(3), nn.Zeros(5)} // the model's parameters
	opt, err := optim.NewSGD(params, optim.LR(1))
	if err != nil {
		log.Fatal(err)
	}
	if err := opt.LoadStateDict(sd); err != nil {
		log.Fatal(err)
	}
	g := opt.Groups[0]
	fmt.Println("lr", g.LR, "momentum", g.Momentum, "weight_decay", g.WeightDecay)
	back := opt.StateDict()
	fmt.Println("params", back.ParamGroups[0]["params"], "state keys", len(back.State[0]))
	// Output:
	// lr 0.05 momentum 0.9 weight_decay 0.001
	// params [0 1 2] state keys 1
}

// ExampleNewAdamW: the decoupled weight decay pulls the minimum of the
// quadratic towards zero.
func ExampleNewAdamW() {
	w := nn.Zeros(2).SetRequiresGrad(true)
	opt, err := optim.NewAdamW([]*nn.Tensor{w}, optim.LR(0.1), optim.WeightDecay(0.1))
	if err != nil {
		log.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		opt.ZeroGrad()
		quadratic(w).Backward()
		opt.Step()
	}
	fmt.Printf("%.4f\n", w.Data())
	// Output: [0.9862 -1.9264]
}

func ExampleNewMultiStepLR() {
	opt, _ := optim.NewSGD([]*nn.Tensor{nn.Zeros(1).SetRequiresGrad(true)}, optim.LR(0.1))
	sched, err := optim.NewMultiStepLR(opt, []int{2, 5}, 0.1)
	if err != nil {
		log.Fatal(err)
	}
	for epoch := 0; epoch <= 6; epoch++ {
		fmt.Printf("%.4f ", sched.LastLR()[0])
		opt.Step()
		sched.Step()
	}
	fmt.Println()
	// Output: 0.1000 0.1000 0.0100 0.0100 0.0100 0.0010 0.0010
}

// ExampleNewCosineAnnealingLR follows torch past T_max: the recursive
// formula climbs back up over the next T_max epochs.
func ExampleNewCosineAnnealingLR() {
	opt, _ := optim.NewSGD([]*nn.Tensor{nn.Zeros(1).SetRequiresGrad(true)}, optim.LR(0.1))
	sched, err := optim.NewCosineAnnealingLR(opt, 4, 0.01)
	if err != nil {
		log.Fatal(err)
	}
	for epoch := 0; epoch <= 8; epoch++ {
		fmt.Printf("%.4f ", sched.LastLR()[0])
		opt.Step()
		sched.Step()
	}
	fmt.Println()
	// Output: 0.1000 0.0868 0.0550 0.0232 0.0100 0.0232 0.0550 0.0868 0.1000
}

// ExampleWriteTorch saves an optimizer's state as torch.save does, for
// torch's optimizer.load_state_dict(torch.load(path)); read back with
// package pickle, it has torch's nested layout.
func ExampleWriteTorch() {
	w := nn.Zeros(2).SetRequiresGrad(true)
	opt, err := optim.NewAdam([]*nn.Tensor{w}, optim.LR(0.01))
	if err != nil {
		log.Fatal(err)
	}
	quadratic(w).Backward()
	opt.Step()

	var buf bytes.Buffer // an *os.File in practice
	if err := optim.WriteTorch(&buf, opt.StateDict()); err != nil {
		log.Fatal(err)
	}
	f, err := pickle.Load(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range f.Tensors {
		fmt.Println(t.Name, t.Tensor.Shape)
	}
	for _, m := range f.Meta[:3] {
		fmt.Println(m.Path, m.Value)
	}
	// Output:
	// state.0.step []
	// state.0.exp_avg [2]
	// state.0.exp_avg_sq [2]
	// param_groups.0.lr 0.01
	// param_groups.0.betas.0 0.9
	// param_groups.0.betas.1 0.999
}
