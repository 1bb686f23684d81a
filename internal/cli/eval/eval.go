// Package eval implements `ckpt eval`: top-1, top-5, loss, per-class
// precision, recall and F1, and the confusion matrix of a model's weights on
// a labelled image dataset.
package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ckptkit/ckpt/data"
	"github.com/ckptkit/ckpt/data/transforms"
	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/internal/cli/modelcmd"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/models"
	"github.com/ckptkit/ckpt/train"
)

// Options are the inputs of `ckpt eval`.
type Options struct {
	IO        *cmdutil.IOStreams
	Arch      string
	Weights   string
	Data      string
	ImageSize int
	BatchSize int
	Workers   int
	SkipBad   bool
	JSON      bool
}

// NewCmdEval returns the eval command. runF, when not nil, replaces evalRun
// (tests of flag parsing).
func NewCmdEval(ios *cmdutil.IOStreams, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: ios}
	cmd := &cobra.Command{
		Use:   "eval --arch NAME --weights W --data DIR",
		Short: "Measure a model's accuracy on a labelled image dataset",
		Long: `Evaluate weights on a labelled dataset: top-1, top-5, mean cross-entropy,
per-class precision, recall and F1, and the confusion matrix.

DIR is an ImageFolder (DIR/<class>/<images>), a directory with a val/ (or
valid/, validation/) folder, which is used, or a CSV file of path,label rows.
Weights written by 'ckpt finetune' carry their class names and
preprocessing (best.pt and last.pt of older runs through the run's
config.json), and are
used with them; otherwise classes are the dataset's
sorted folder names and the preprocessing is the architecture's
(--image-size changes the crop, keeping the resize ratio). --json prints the
same object as a run's metrics.json "val". An ONNX model (--weights
model.onnx, no --arch) runs through the importer, with the classes and
preprocessing a finetune run records in its metadata_props, or ImageNet's
preprocessing at its input size.`,
		Example: `  ckpt eval --arch resnet18 --weights runs/flowers/best.safetensors --data flowers/val
  ckpt eval --arch resnet18 --weights w.pt --data ds/ --image-size 64 --json
  ckpt eval --weights runs/onnx/best.onnx --data ds/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return evalRun(opts)
		},
	}
	modelcmd.ArchFlag(cmd, &opts.Arch)
	cmd.Flags().StringVar(&opts.Weights, "weights", "", "the model's weights (any checkpoint ckpt reads)")
	cmd.Flags().StringVar(&opts.Data, "data", "", "dataset directory or CSV file")
	cmd.Flags().IntVar(&opts.ImageSize, "image-size", 0, "crop size (default: the run's or the architecture's)")
	cmd.Flags().IntVar(&opts.BatchSize, "batch-size", 32, "images per forward pass")
	cmd.Flags().IntVar(&opts.Workers, "workers", 0, "image decoding goroutines (default: all cores)")
	cmd.Flags().BoolVar(&opts.SkipBad, "skip-bad", false, "skip and count unreadable images instead of failing")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the metrics as JSON")
	return cmd
}

// runMeta reads the class names and preprocessing 'ckpt finetune' stores in
// a safetensors or .pt file's metadata, or for an older run's best.pt or
// last.pt in the run's config.json (train.RunFileMeta).
func runMeta(path string) (classes []string, pre *data.Preprocess, err error) {
	if classes, p, ok := train.RunFileMeta(path); ok {
		return classes, &p, nil
	}
	c, err := formats.Open(path)
	if err != nil {
		return nil, nil, cmdutil.FileError(path, err)
	}
	defer c.Close()
	md := c.Metadata()
	if s, ok := md["classes"]; ok {
		if err := json.Unmarshal([]byte(s), &classes); err != nil {
			return nil, nil, fmt.Errorf("%s: metadata classes: %w", path, err)
		}
	}
	if s, ok := md["preprocess"]; ok {
		pre = new(data.Preprocess)
		if err := json.Unmarshal([]byte(s), pre); err != nil {
			return nil, nil, fmt.Errorf("%s: metadata preprocess: %w", path, err)
		}
	}
	return classes, pre, nil
}

// onnxMeta reads the class names and preprocessing 'ckpt finetune' stores
// in an ONNX model's metadata_props.
func onnxMeta(m *onnx.Model) (classes []string, pre *data.Preprocess, err error) {
	for _, e := range m.MetadataProps {
		switch e.Key {
		case "classes":
			if err := json.Unmarshal([]byte(e.Value), &classes); err != nil {
				return nil, nil, fmt.Errorf("metadata_props classes: %w", err)
			}
		case "preprocess":
			pre = new(data.Preprocess)
			if err := json.Unmarshal([]byte(e.Value), pre); err != nil {
				return nil, nil, fmt.Errorf("metadata_props preprocess: %w", err)
			}
		}
	}
	return classes, pre, nil
}

func evalRun(o *Options) error {
	if o.Weights == "" || o.Data == "" {
		return cmdutil.UsageError("--weights and --data are required")
	}
	if o.BatchSize < 1 || o.ImageSize < 0 {
		return cmdutil.UsageError("--batch-size must be at least 1 and --image-size not negative")
	}
	var (
		spec    models.Spec
		classes []string
		pre     *data.Preprocess
		m       nn.Module
		err     error
	)
	if modelcmd.IsONNX(o.Weights) && o.Arch == "" {
		g, om, err := modelcmd.LoadGraph(o.Weights)
		if err != nil {
			return err
		}
		defer om.Close()
		if classes, pre, err = onnxMeta(om); err != nil {
			return fmt.Errorf("%s: %w", o.Weights, err)
		}
		if pre == nil {
			p, err := train.ONNXPreprocess(g)
			if err != nil {
				return cmdutil.UsageError("%s: %v", o.Weights, err)
			}
			pre = &data.Preprocess{Resize: p.ResizeSize, Crop: p.CropSize, Interpolation: p.Interpolation, Mean: p.Mean, Std: p.Std}
		}
		m = g
	} else {
		if spec, err = modelcmd.CheckArch(o.Arch); err != nil {
			return err
		}
		if classes, pre, err = runMeta(o.Weights); err != nil {
			return err
		}
	}
	if pre == nil {
		p := spec.Preprocess
		pre = &data.Preprocess{Resize: p.ResizeSize, Crop: p.CropSize, Interpolation: transforms.Interpolation(p.Interpolation), Mean: p.Mean, Std: p.Std}
	}
	*pre = pre.WithImageSize(o.ImageSize)
	ds, err := openEvalData(o.Data)
	if err != nil {
		return err
	}
	if classes != nil {
		if ds, err = ds.Relabel(classes); err != nil {
			return err
		}
	} else {
		classes = ds.Classes
	}
	if m == nil {
		if m, err = modelcmd.LoadModel(o.Arch, o.Weights, 0); err != nil {
			return err
		}
	}
	l := &data.Loader{Data: ds, Transform: data.EvalTransform{P: *pre}, BatchSize: o.BatchSize, Workers: o.Workers, SkipBad: o.SkipBad}
	if outs := modelOutputs(m, spec.Classifier); spec.Classifier != "" && outs != len(classes) {
		return cmdutil.UsageError("the model has %d outputs but the dataset %d classes (%s)", outs, len(classes), o.Data)
	}
	metrics, err := train.Evaluate(context.Background(), m, train.Images{L: l}, classes)
	if err != nil {
		return err
	}
	if n := len(l.Bad()); n > 0 {
		fmt.Fprintf(o.IO.ErrOut, "skipped %s\n", cmdutil.Plural(n, "unreadable image"))
	}
	if o.JSON {
		return cmdutil.WriteJSON(o.IO.Out, metrics)
	}
	w := o.IO.Out
	fmt.Fprintf(w, "%d images, %d classes\ntop-1 %.2f%%  top-5 %.2f%%  loss %.4f\n\n", metrics.N, len(classes), 100*metrics.Top1, 100*metrics.Top5, metrics.Loss)
	width := 5
	for _, c := range classes {
		width = max(width, len(c))
	}
	fmt.Fprintf(w, "%-*s  %9s  %6s  %6s  %7s\n", width, "class", "precision", "recall", "f1", "support")
	for _, pc := range metrics.PerClass {
		fmt.Fprintf(w, "%-*s  %9.4f  %6.4f  %6.4f  %7d\n", width, pc.Class, pc.Precision, pc.Recall, pc.F1, pc.Support)
	}
	fmt.Fprintf(w, "\nconfusion (rows: true class, columns: predicted):\n")
	for i, row := range metrics.Confusion {
		fmt.Fprintf(w, "%-*s", width, classes[i])
		for _, v := range row {
			fmt.Fprintf(w, " %5d", v)
		}
		fmt.Fprintln(w)
	}
	return nil
}

// openEvalData reads a dataset to evaluate on: a CSV file, the validation
// folder of a train/val layout, or an ImageFolder.
func openEvalData(path string) (*data.Dataset, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return data.ReadCSV(path)
	}
	for _, v := range data.ValDirs {
		if st, err := os.Stat(filepath.Join(path, v)); err == nil && st.IsDir() {
			if _, err := os.Stat(filepath.Join(path, "train")); err == nil {
				return data.ImageFolder(filepath.Join(path, v))
			}
		}
	}
	return data.ImageFolder(path)
}

// modelOutputs is the number of classes of m's classifier weight.
func modelOutputs(m nn.Module, classifier string) int {
	for _, p := range m.NamedParameters() {
		if p.Name == classifier {
			return p.Tensor.Shape()[0]
		}
	}
	return -1
}
