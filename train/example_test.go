package train_test

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"log"
	"os"
	"path/filepath"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/models"
	"github.com/ckptkit/ckpt/train"
)

// Example_finetune transfers a resnet18 to a two-class image folder with the
// head strategy: the frozen backbone runs once per image, the new classifier
// trains on the cached features, and the run directory is written.
func Example_finetune() {
	dir, err := os.MkdirTemp("", "finetune-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// A dataset: DIR/<class>/<image>, dark images and bright ones.
	for c, level := range map[string]uint8{"dark": 40, "bright": 210} {
		os.MkdirAll(filepath.Join(dir, "data", c), 0o755)
		for i := range 6 {
			img := image.NewGray(image.Rect(0, 0, 20, 20))
			for p := range img.Pix {
				img.Pix[p] = level + uint8((p*7+i*13)%30)
			}
			f, _ := os.Create(filepath.Join(dir, "data", c, fmt.Sprintf("%d.png", i)))
			png.Encode(f, img)
			f.Close()
		}
	}
	// "Pretrained" weights: here a seeded random resnet18, saved as a
	// checkpoint would be.
	nn.ManualSeed(1)
	m, _ := models.Build("resnet18", models.Config{})
	ck := &formats.Checkpoint{}
	for _, t := range m.StateDict() {
		ck.Tensors = append(ck.Tensors, formats.Named{Name: t.Name, Tensor: t.Tensor})
	}
	weights := filepath.Join(dir, "resnet18.safetensors")
	if _, err := formats.Save(weights, ck, formats.SaveOptions{}); err != nil {
		log.Fatal(err)
	}

	res, err := train.Finetune(context.Background(), train.Config{
		Arch: "resnet18", Weights: weights, Data: filepath.Join(dir, "data"), Out: filepath.Join(dir, "run"),
		Strategy: train.Head, Epochs: 3, BatchSize: 4, LR: 0.05, Momentum: 0.9,
		ValSplit: 0.25, ImageSize: 16, NoAugment: true, Seed: 7,
	}, train.Hooks{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("classes:", res.Classes)
	fmt.Println("strategy:", res.Strategy, "cached features:", res.Cached)
	fmt.Println("epochs:", res.Epochs, "validation images:", res.Val.N)
	for _, f := range []string{"best.safetensors", "best.pt", "metrics.json", "confusion.png"} {
		_, err := os.Stat(filepath.Join(dir, "run", f))
		fmt.Println(f, err == nil)
	}
	// Output:
	// classes: [bright dark]
	// strategy: head cached features: true
	// epochs: 3 validation images: 4
	// best.safetensors true
	// best.pt true
	// metrics.json true
	// confusion.png true
}
