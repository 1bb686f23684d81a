package models_test

import (
	"fmt"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/models"
)

// Build an architecture with a 10-class head for fine-tuning, and look at
// what its weights expect as input.
func ExampleBuild() {
	m, err := models.Build("resnet18", models.Config{NumClasses: 10})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.(*models.ResNet).FC)
	spec, _ := models.Lookup("resnet18")
	fmt.Printf("%+v\n", spec.Preprocess)
	fmt.Println(models.ImageNetClasses()[:3])
	// Output:
	// Linear(in_features=512, out_features=10, bias=True)
	// {ResizeSize:256 CropSize:224 Interpolation:bilinear Mean:[0.485 0.456 0.406] Std:[0.229 0.224 0.225]}
	// [tench goldfish great white shark]
}

// Load weights from any checkpoint file (a torch.save'd state_dict, a
// training checkpoint, safetensors, ONNX) and run the model.
func ExampleLoadFile() {
	m, report, err := models.LoadFile("resnet50", "resnet50.pth", models.Config{})
	if err != nil {
		fmt.Println(err) // the full load report: missing, unexpected, mis-shaped keys
		return
	}
	fmt.Println(report.Loaded, "tensors loaded")
	x := nn.Zeros(1, 3, 224, 224) // a preprocessed image
	nn.NoGrad(func() {
		logits := m.Forward(x)
		fmt.Println(logits.Shape())
	})
}

func ExampleLookup() {
	_, err := models.Lookup("resnet5")
	fmt.Println(err)
	// Output:
	// models: unknown architecture "resnet5" (did you mean resnet50?)
}
