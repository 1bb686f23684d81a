package models_test

import (
	"fmt"
	"log"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/models"
	"github.com/ckptkit/ckpt/nn/optim"
)

// Load a torchvision architecture from a checkpoint of any format, re-head
// it, freeze the backbone and take a training step: the README's library
// example, run on the quick-start model (testdata/gen/quickstart.py).
func ExampleLoadFile() {
	m, report, err := models.LoadFile("squeezenet1_1", "../../testdata/quickstart/squeezenet1_1.pt", models.Config{})
	if err != nil {
		log.Fatal(err) // a strict load: the error lists every missing, unexpected or mis-shaped key
	}
	fmt.Println("loaded", report.Loaded, "tensors; classes:", m.(*models.SqueezeNet).NumClasses)

	// Inference: eval mode (LoadFile's default), no autograd graph, memory
	// reused from one call to the next.
	x := nn.RandN(1, 3, 96, 96)
	fmt.Println("logits:", nn.Infer(m, x).Shape())

	// Transfer learning: a new 4-class head, the backbone frozen.
	net := m.(*models.SqueezeNet)
	net.Classifier.SetChild("1", nn.NewConv2d(nil, 512, 4, 1))
	net.Features.RequiresGrad(false)
	net.Train()
	opt, err := optim.NewSGD(net.TrainableParameters(), optim.LR(0.01), optim.Momentum(0.9))
	if err != nil {
		log.Fatal(err)
	}
	loss := nn.NewCrossEntropyLoss().Forward(net.Forward(nn.RandN(2, 3, 96, 96)), []int{0, 3})
	loss.Backward()
	opt.Step()
	fmt.Println("trainable tensors:", len(net.TrainableParameters()))
	// Output:
	// loaded 52 tensors; classes: 10
	// logits: [1 10]
	// trainable tensors: 2
}
