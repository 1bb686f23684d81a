// Package run implements `ckpt run`: one forward pass of a torchvision
// architecture with a checkpoint's weights, written to a file.
package run

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/internal/cli/modelcmd"
)

// Options are the inputs of `ckpt run`.
type Options struct {
	IO         *cmdutil.IOStreams
	Arch       string
	Weights    string
	Input      string
	Inputs     []string // every --input (an ONNX graph may take several)
	Output     string
	NumClasses int
	Force      bool
	JSON       bool
	// Load holds --transform-input, --key and --strip-prefix.
	Load modelcmd.LoadOptions
}

// NewCmdRun returns the run command. runF, when not nil, replaces runRun
// (tests of flag parsing).
func NewCmdRun(ios *cmdutil.IOStreams, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: ios}
	cmd := &cobra.Command{
		Use:   "run [--arch NAME] --weights W --input FILE[:KEY] --output OUT",
		Short: "Run a model's forward pass and save the output",
		Long: `Run one forward pass of a torchvision architecture, in eval mode, with the
weights of any checkpoint ckpt reads, and write the output tensor.

The input is a float tensor of shape [batch, 3, H, W]: a .npy array, a tensor
of a .safetensors file (FILE:KEY picks it by name), or an entry of a dict
saved with torch.save (FILE:KEY, e.g. io.pt:input). The output goes to .npy,
.safetensors or .pt (a dict {"output": tensor}) by OUT's extension, written
atomically; an existing OUT is kept unless --force.

Without --arch, the architecture is the registered one whose keys and
shapes the weights match exactly (said on stderr).`,
		Example: `  ckpt run --arch resnet18 --weights resnet18.pth --input batch.npy --output logits.npy
  ckpt run --arch mobilenet_v2 --weights mnv2.safetensors --input io.pt:input --output out.pt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runRun(opts)
		},
	}
	modelcmd.ArchFlag(cmd, &opts.Arch)
	cmd.Flags().StringVar(&opts.Weights, "weights", "", "checkpoint with the model's weights (any format ckpt reads)")
	modelcmd.InputsFlag(cmd, &opts.Input, &opts.Inputs, "input tensor: FILE.npy, FILE.safetensors:KEY, FILE.pt:KEY or FILE.pb; repeated or NAME=FILE for an ONNX graph's inputs")
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "", "where to write the output (.npy, .safetensors or .pt)")
	cmd.Flags().IntVar(&opts.NumClasses, "num-classes", 0, "classifier size (default: read from the weights)")
	cmd.Flags().BoolVar(&opts.Force, "force", false, "replace an existing output file")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print a JSON summary")
	modelcmd.LoadFlags(cmd, &opts.Load)
	return cmd
}

func runRun(o *Options) error {
	if modelcmd.IsONNX(o.Weights) {
		return runONNX(o)
	}
	if len(o.Inputs) > 1 {
		return cmdutil.UsageError("--input given %d times; a torchvision model takes one input", len(o.Inputs))
	}
	if o.Arch != "" {
		if _, err := modelcmd.CheckArch(o.Arch); err != nil {
			return err
		}
	}
	for flag, v := range map[string]string{"--weights": o.Weights, "--input": o.Input, "--output": o.Output} {
		if v == "" {
			return cmdutil.UsageError("%s is required", flag)
		}
	}
	x, err := modelcmd.ReadTensor(o.Input)
	if err != nil {
		return err
	}
	m, err := modelcmd.Load(o.IO, o.Weights, o.Arch, o.NumClasses, o.Load)
	if err != nil {
		return err
	}
	arch := m.Spec.Name
	start := time.Now()
	y, err := modelcmd.Forward(m, x)
	if err != nil {
		return fmt.Errorf("%s: %w", arch, err)
	}
	elapsed := time.Since(start)
	if err := modelcmd.WriteOutput(o.Output, y, o.Force); err != nil {
		return err
	}
	if o.JSON {
		return json.NewEncoder(o.IO.Out).Encode(map[string]any{
			"arch": arch, "input_shape": x.Shape(), "output_shape": y.Shape(),
			"output": o.Output, "forward_ms": float64(elapsed.Microseconds()) / 1000,
		})
	}
	fmt.Fprintf(o.IO.Out, "%s: input %s -> output %s written to %s (forward %.1f ms)\n",
		arch, modelcmd.Shape(x.Shape()), modelcmd.Shape(y.Shape()), o.Output, float64(elapsed.Microseconds())/1000)
	return nil
}
