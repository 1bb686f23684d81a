// Package predict implements `ckpt predict`: classify images with a
// torchvision architecture, preprocessing them exactly as torchvision does.
package predict

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ckptkit/ckpt/data/transforms"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/internal/cli/modelcmd"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/models"
)

// Options are the inputs of `ckpt predict`.
type Options struct {
	IO         *cmdutil.IOStreams
	Images     []string
	Arch       string
	Weights    string
	TopK       int
	Labels     string
	NumClasses int
	JSON       bool
}

// Class is one ranked class of an image.
type Class struct {
	Index int     `json:"index"`
	Label string  `json:"label"`
	Prob  float64 `json:"prob"`
}

// Prediction is the top-k classes of one image.
type Prediction struct {
	Image string  `json:"image"`
	Top   []Class `json:"top"`
}

// NewCmdPredict returns the predict command. runF, when not nil, replaces
// predictRun (tests of flag parsing).
func NewCmdPredict(ios *cmdutil.IOStreams, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: ios}
	cmd := &cobra.Command{
		Use:   "predict IMAGE... --arch NAME --weights W",
		Short: "Classify images with a model",
		Long: `Classify JPEG, PNG or WebP images with a torchvision architecture and print
the top-k classes with their probabilities (softmax of the logits).

Each image is preprocessed exactly as the architecture's torchvision weights
expect (their ImageClassification transform): the shorter side resized with
Pillow's antialiasing resampler, a center crop, scaling to [0, 1] and
per-channel normalization; sizes and interpolation are the architecture's.

Labels are the 1000 ImageNet classes when the classifier has 1000 outputs,
or the lines of --labels (one label per line, in class order).`,
		Example: `  ckpt predict cat.jpg dog.png --arch resnet50 --weights resnet50.pth
  ckpt predict photo.webp --arch mobilenet_v3_small --weights finetuned.safetensors --labels classes.txt --topk 3 --json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Images = args
			if runF != nil {
				return runF(opts)
			}
			return predictRun(opts)
		},
	}
	modelcmd.ArchFlag(cmd, &opts.Arch)
	cmd.Flags().StringVar(&opts.Weights, "weights", "", "checkpoint with the model's weights (any format ckpt reads)")
	cmd.Flags().IntVar(&opts.TopK, "topk", 5, "number of classes to print per image")
	cmd.Flags().StringVar(&opts.Labels, "labels", "", "file with one class label per line (default: ImageNet's 1000 classes)")
	cmd.Flags().IntVar(&opts.NumClasses, "num-classes", 0, "classifier size (default: read from the weights)")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the predictions as JSON")
	return cmd
}

func readLabels(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var labels []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			labels = append(labels, l)
		}
	}
	return labels, sc.Err()
}

func predictRun(o *Options) error {
	spec, err := modelcmd.CheckArch(o.Arch)
	if err != nil {
		return err
	}
	if o.Weights == "" {
		return cmdutil.UsageError("--weights is required")
	}
	if o.TopK < 1 {
		return cmdutil.UsageError("--topk must be at least 1")
	}
	pre := spec.Preprocess
	size := 3 * pre.CropSize * pre.CropSize
	batch := make([]float32, 0, len(o.Images)*size)
	for _, path := range o.Images {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		img, _, err := transforms.Decode(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		x, err := pre.Apply(img)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		batch = append(batch, x...)
	}
	m, err := modelcmd.LoadModel(o.Arch, o.Weights, o.NumClasses)
	if err != nil {
		return err
	}
	y, err := modelcmd.Forward(m, nn.New(batch, len(o.Images), 3, pre.CropSize, pre.CropSize))
	if err != nil {
		return err
	}
	if len(y.Shape()) != 2 {
		return fmt.Errorf("%s output has shape %s, want [images, classes]", o.Arch, modelcmd.Shape(y.Shape()))
	}
	classes := y.Shape()[1]
	labels := models.ImageNetClasses()
	if o.Labels != "" {
		if labels, err = readLabels(o.Labels); err != nil {
			return err
		}
		if len(labels) != classes {
			return fmt.Errorf("%s has %d labels, the model %d classes", o.Labels, len(labels), classes)
		}
	} else if classes != len(labels) {
		labels = nil
	}
	preds := make([]Prediction, len(o.Images))
	for i, path := range o.Images {
		row := y.Data()[i*classes : (i+1)*classes]
		probs := softmax(row)
		p := Prediction{Image: path}
		for _, c := range nn.TopK(row, o.TopK) {
			label := fmt.Sprintf("class %d", c)
			if labels != nil {
				label = labels[c]
			}
			p.Top = append(p.Top, Class{Index: c, Label: label, Prob: probs[c]})
		}
		preds[i] = p
	}
	if o.JSON {
		return json.NewEncoder(o.IO.Out).Encode(preds)
	}
	for _, p := range preds {
		fmt.Fprintf(o.IO.Out, "%s\n", p.Image)
		for _, c := range p.Top {
			fmt.Fprintf(o.IO.Out, "  %6.2f%%  %4d  %s\n", 100*c.Prob, c.Index, c.Label)
		}
	}
	return nil
}

// softmax in float64, shifted by the maximum for stability.
func softmax(v []float32) []float64 {
	mx := math.Inf(-1)
	for _, x := range v {
		mx = math.Max(mx, float64(x))
	}
	out := make([]float64, len(v))
	sum := 0.0
	for i, x := range v {
		out[i] = math.Exp(float64(x) - mx)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}
