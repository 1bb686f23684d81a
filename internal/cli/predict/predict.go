// Package predict implements `ckpt predict`: classify images with a
// torchvision architecture, preprocessing them exactly as torchvision does.
package predict

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ckptkit/ckpt/data/transforms"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/internal/cli/modelcmd"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/models"
	"github.com/ckptkit/ckpt/train"
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
	// Load holds --transform-input, --key and --strip-prefix.
	Load modelcmd.LoadOptions
	// Batch is the number of images per forward pass (0: 16).
	Batch int
	// Preprocess names the architecture whose preprocessing to use instead
	// of the model's own (an ONNX graph has none); Size, Mean and Std set
	// it by hand (Size is the crop; the resize keeps torchvision's 224/256).
	Preprocess string
	Size       int
	Mean, Std  []float64
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
		Use:   "predict IMAGE|DIR... [--arch NAME] --weights W",
		Short: "Classify images with a model",
		Long: `Classify JPEG, PNG or WebP images with a torchvision architecture and print
the top-k classes with their probabilities (softmax of the logits).

Each image is preprocessed exactly as the architecture's torchvision weights
expect (their ImageClassification transform): the shorter side resized with
Pillow's antialiasing resampler, a center crop, scaling to [0, 1] and
per-channel normalization; sizes and interpolation are the architecture's.

A directory stands for the JPEG, PNG and WebP files inside it and its
subdirectories (by extension), in sorted path order; one result is printed
per image as it is classified, and with --json one JSON object per line
({"image", "top": [{"index", "label", "prob"}]}).

Labels are the 1000 ImageNet classes when the classifier has 1000 outputs,
or the lines of --labels (one label per line, in class order), or the class
names a finetune run records in its weights (best.safetensors, best.pt;
for a best.pt or last.pt of an older run, the run's config.json), whose
preprocessing predict
then uses too. Without
--arch, the architecture is the registered one whose keys and shapes the
weights match exactly (said on stderr).

An ONNX model (--weights model.onnx) is its own architecture: give its
preprocessing with --preprocess ARCH (a torchvision architecture's) or with
--size S (center crop S after resizing the shorter side to S*256/224,
bilinear) and optionally --mean and --std (ImageNet's by default). Either
also overrides a checkpoint's own preprocessing.`,
		Example: `  ckpt predict cat.jpg dog.png --arch resnet50 --weights resnet50.pth
  ckpt predict photos/ --weights finetuned.pt --labels classes.txt --json > predictions.jsonl
  ckpt predict photo.webp --arch mobilenet_v3_small --weights finetuned.safetensors --labels classes.txt --topk 3 --json
  ckpt predict cat.jpg --weights resnet18.onnx --preprocess resnet18
  ckpt predict digits/ --weights net.onnx --size 28 --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5`,
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
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print one JSON object per image, one per line")
	cmd.Flags().IntVar(&opts.Batch, "batch", 16, "images per forward pass")
	cmd.Flags().StringVar(&opts.Preprocess, "preprocess", "", "use this torchvision architecture's preprocessing (for an ONNX model, or to override)")
	cmd.Flags().IntVar(&opts.Size, "size", 0, "center-crop size of a hand-set preprocessing (resize: size*256/224, bilinear)")
	cmd.Flags().Float64SliceVar(&opts.Mean, "mean", nil, "per-channel mean with --size (default ImageNet's 0.485,0.456,0.406)")
	cmd.Flags().Float64SliceVar(&opts.Std, "std", nil, "per-channel std with --size (default ImageNet's 0.229,0.224,0.225)")
	modelcmd.LoadFlags(cmd, &opts.Load)
	return cmd
}

// preprocessing returns the transform predict applies: --preprocess's
// architecture's, a hand-set one from --size/--mean/--std, or the model's.
func preprocessing(o *Options, m *modelcmd.Model) (transforms.ImageClassification, error) {
	if o.Preprocess != "" && o.Size > 0 {
		return transforms.ImageClassification{}, cmdutil.UsageError("give --preprocess or --size, not both")
	}
	if (o.Mean != nil || o.Std != nil) && o.Size == 0 {
		return transforms.ImageClassification{}, cmdutil.UsageError("--mean and --std go with --size")
	}
	switch {
	case o.Preprocess != "":
		s, err := modelcmd.CheckArch(o.Preprocess)
		if err != nil {
			return transforms.ImageClassification{}, err
		}
		return s.Preprocess, nil
	case o.Size > 0:
		p := transforms.ImageClassification{
			ResizeSize: o.Size * 256 / 224, CropSize: o.Size, Interpolation: transforms.Bilinear,
			Mean: [3]float32{0.485, 0.456, 0.406}, Std: [3]float32{0.229, 0.224, 0.225},
		}
		for _, f := range []struct {
			name string
			v    []float64
			dst  *[3]float32
		}{{"--mean", o.Mean, &p.Mean}, {"--std", o.Std, &p.Std}} {
			if f.v == nil {
				continue
			}
			if len(f.v) != 3 {
				return p, cmdutil.UsageError("%s takes 3 values (R,G,B), got %d", f.name, len(f.v))
			}
			for i, x := range f.v {
				if f.name == "--std" && !(x > 0) {
					return p, cmdutil.UsageError("--std values must be positive, got %v", x)
				}
				f.dst[i] = float32(x)
			}
		}
		return p, nil
	case o.Size < 0:
		return transforms.ImageClassification{}, cmdutil.UsageError("--size must be positive")
	case m.Meta["preprocess"] != "":
		return recordedPreprocess(o.Weights, m.Meta["preprocess"])
	case m.Spec.Name == "":
		return transforms.ImageClassification{}, cmdutil.UsageError("%s is an ONNX graph, which records no preprocessing: give --preprocess ARCH or --size S", o.Weights)
	}
	return m.Spec.Preprocess, nil
}

// recordedPreprocess decodes the preprocessing a finetune run stores in
// its weights' metadata: {"resize", "crop", "interpolation", "mean", "std"}.
func recordedPreprocess(path, text string) (transforms.ImageClassification, error) {
	var r struct {
		Resize        int        `json:"resize"`
		Crop          int        `json:"crop"`
		Interpolation string     `json:"interpolation"`
		Mean          [3]float32 `json:"mean"`
		Std           [3]float32 `json:"std"`
	}
	if err := json.Unmarshal([]byte(text), &r); err != nil {
		return transforms.ImageClassification{}, cmdutil.FileError(path, fmt.Errorf("metadata \"preprocess\": %w", err))
	}
	p := transforms.ImageClassification{ResizeSize: r.Resize, CropSize: r.Crop,
		Interpolation: transforms.Interpolation(r.Interpolation), Mean: r.Mean, Std: r.Std}
	if p.ResizeSize <= 0 || p.CropSize <= 0 || p.CropSize > 4096 || p.ResizeSize > 4096 || !(p.Std[0] > 0 && p.Std[1] > 0 && p.Std[2] > 0) {
		return p, cmdutil.FileError(path, fmt.Errorf("metadata \"preprocess\" %s is not a usable transform", text))
	}
	return p, nil
}

// recordedLabels returns the class names a finetune run stores in its
// weights' metadata ("classes", a JSON list), or nil.
func recordedLabels(m *modelcmd.Model) []string {
	var classes []string
	if json.Unmarshal([]byte(m.Meta["classes"]), &classes) != nil {
		return nil
	}
	return classes
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

// imageExts are the extensions a directory's images are recognized by.
var imageExts = []string{".jpg", ".jpeg", ".png", ".webp"}

// expand returns the images args name: files as given, directories replaced
// by the images under them in sorted path order.
func expand(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil || !st.IsDir() {
			out = append(out, a) // opening it reports the error
			continue
		}
		n := len(out)
		err = filepath.WalkDir(a, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && slices.Contains(imageExts, strings.ToLower(filepath.Ext(path))) {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		slices.Sort(out[n:]) // by path: "a.jpg" before "a/b.jpg", which WalkDir visits first
		if len(out) == n {
			return nil, cmdutil.UsageError("%s: no JPEG, PNG or WebP image in the directory (by extension: %s)", a, strings.Join(imageExts, ", "))
		}
	}
	return out, nil
}

func predictRun(o *Options) error {
	if o.Arch != "" {
		if _, err := modelcmd.CheckArch(o.Arch); err != nil {
			return err
		}
	}
	if o.Weights == "" {
		return cmdutil.UsageError("--weights is required")
	}
	if o.TopK < 1 {
		return cmdutil.UsageError("--topk must be at least 1")
	}
	if o.Batch == 0 {
		o.Batch = 16
	}
	if o.Batch < 1 {
		return cmdutil.UsageError("--batch must be at least 1")
	}
	images, err := expand(o.Images)
	if err != nil {
		return err
	}
	var labels []string
	if o.Labels != "" {
		if labels, err = readLabels(o.Labels); err != nil {
			return err
		}
	}
	m, err := modelcmd.Load(o.IO, o.Weights, o.Arch, o.NumClasses, o.Load)
	if err != nil {
		return err
	}
	if classes, rp, ok := train.RunFileMeta(o.Weights); ok && m.Meta["classes"] == "" && m.Meta["preprocess"] == "" {
		// A best.pt or last.pt of a run written before .pt files carried
		// metadata: what its safetensors records, from the run's
		// config.json.
		if m.Meta == nil {
			m.Meta = map[string]string{}
		}
		cj, _ := json.Marshal(classes)
		pj, _ := json.Marshal(rp)
		m.Meta["classes"], m.Meta["preprocess"] = string(cj), string(pj)
	}
	pre, err := preprocessing(o, m)
	if err != nil {
		return err
	}
	if labels == nil {
		labels = recordedLabels(m)
	}
	enc := json.NewEncoder(o.IO.Out)
	for start := 0; start < len(images); start += o.Batch {
		paths := images[start:min(start+o.Batch, len(images))]
		preds, err := classify(o, m, pre, paths, labels)
		if err != nil {
			return err
		}
		for _, p := range preds {
			if o.JSON {
				if err := enc.Encode(p); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(o.IO.Out, "%s\n", p.Image)
			for _, c := range p.Top {
				fmt.Fprintf(o.IO.Out, "  %6.2f%%  %4d  %s\n", 100*c.Prob, c.Index, c.Label)
			}
		}
	}
	return nil
}

// classify runs one batch of images through m and returns their top-k.
func classify(o *Options, m *modelcmd.Model, pre transforms.ImageClassification, paths, labels []string) ([]Prediction, error) {
	size := 3 * pre.CropSize * pre.CropSize
	batch := make([]float32, 0, len(paths)*size)
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		img, _, err := transforms.Decode(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		x, err := pre.Apply(img)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		batch = append(batch, x...)
	}
	y, err := modelcmd.Forward(m, nn.New(batch, len(paths), 3, pre.CropSize, pre.CropSize))
	if err != nil {
		return nil, err
	}
	if len(y.Shape()) != 2 {
		return nil, fmt.Errorf("%s output has shape %s, want [images, classes]", m.Spec.Name, modelcmd.Shape(y.Shape()))
	}
	classes := y.Shape()[1]
	switch {
	case o.Labels != "":
		if len(labels) != classes {
			return nil, fmt.Errorf("%s has %s, the model %s", o.Labels, cmdutil.Plural(len(labels), "label"), cmdutil.Plural(classes, "class"))
		}
	case labels != nil: // recorded in the weights by finetune
		if len(labels) != classes {
			return nil, fmt.Errorf("%s records %s, the model has %s", o.Weights, cmdutil.Plural(len(labels), "class name"), cmdutil.Plural(classes, "class"))
		}
	default:
		if labels = models.ImageNetClasses(); classes != len(labels) {
			labels = nil
		}
	}
	preds := make([]Prediction, len(paths))
	for i, path := range paths {
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
	return preds, nil
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
