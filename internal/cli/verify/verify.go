// Package verify implements `ckpt verify`: prove that weights compute what
// PyTorch computes, by a forward pass compared with a reference output, or
// that two weight files compute the same function.
package verify

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/internal/cli/modelcmd"
	"github.com/ckptkit/ckpt/nn"
	vfy "github.com/ckptkit/ckpt/verify"
)

// Options are the inputs of `ckpt verify`.
type Options struct {
	IO         *cmdutil.IOStreams
	Weights    []string // one file, or two to compare
	Arch       string
	Input      string
	Reference  string
	Atol, Rtol float64
	AtolSet    bool
	Seed       uint64
	Batch      int
	NumClasses int
	JSON       bool
	// Load holds --transform-input, --key and --strip-prefix.
	Load modelcmd.LoadOptions
}

// NewCmdVerify returns the verify command. runF, when not nil, replaces
// verifyRun (tests of flag parsing).
func NewCmdVerify(ios *cmdutil.IOStreams, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: ios}
	cmd := &cobra.Command{
		Use:   "verify WEIGHTS [WEIGHTS_B] [--arch NAME] [--input FILE[:KEY]] [--reference FILE[:KEY]]",
		Short: "Check that weights compute what PyTorch computes",
		Long: `Run a torchvision architecture with the given weights in eval mode and
compare its output with a reference, element by element and by ranking.

With one weights file, --reference gives the output PyTorch computed for
--input, which it requires (for example a dict saved with
torch.save({"input": x, "output": model(x)}, "io.pt"), used as
--input io.pt:input --reference io.pt:output).

With two weights files (any formats: .pt, .safetensors, .onnx...), both run
on the same input and the first one's output is the reference: the proof
that a conversion kept the function, not only the bytes. Without --input,
the input is a deterministic seeded batch of shape [--batch, 3, S, S], S
being the architecture's crop size.

The check passes when every element is within tolerance and every row has
the same top-1 class. The default tolerance is max|err| <= 1e-4 * max(1,
max|reference|); --atol and --rtol set an absolute and a relative one
(|err| <= atol + rtol*|reference|) instead.

Without --arch, the architecture is the registered one whose keys and
shapes the weights match exactly (said on stderr). googlenet and
inception_v3 take --transform-input: when their check fails, the report
says which setting ran, the likely cause.

Exit status: 0 within tolerance, 1 outside it, 2 on bad input.`,
		Example: `  # against the output torch computed
  ckpt verify resnet18.pth --arch resnet18 --input io.pt:input --reference io.pt:output

  # a conversion computes the same function
  ckpt verify resnet18.pth resnet18.safetensors --arch resnet18

  # for scripts
  ckpt verify model.pt --arch mobilenet_v2 --input x.npy --reference y.npy --json`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Weights = args
			opts.AtolSet = cmd.Flags().Changed("atol") || cmd.Flags().Changed("rtol")
			if runF != nil {
				return runF(opts)
			}
			return verifyRun(opts)
		},
	}
	modelcmd.ArchFlag(cmd, &opts.Arch)
	cmd.Flags().StringVar(&opts.Input, "input", "", "input tensor: FILE.npy, FILE.safetensors:KEY or FILE.pt:KEY (default: seeded)")
	cmd.Flags().StringVar(&opts.Reference, "reference", "", "reference output, same forms as --input")
	cmd.Flags().Float64Var(&opts.Atol, "atol", 0, "absolute tolerance (replaces the default scaled 1e-4)")
	cmd.Flags().Float64Var(&opts.Rtol, "rtol", 0, "relative tolerance")
	cmd.Flags().Uint64Var(&opts.Seed, "seed", 0, "seed of the generated input when --input is not given")
	cmd.Flags().IntVar(&opts.Batch, "batch", 2, "batch size of the generated input")
	cmd.Flags().IntVar(&opts.NumClasses, "num-classes", 0, "classifier size (default: read from the weights)")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the report as JSON")
	modelcmd.LoadFlags(cmd, &opts.Load)
	return cmd
}

func verifyRun(o *Options) error {
	if o.Arch != "" {
		if _, err := modelcmd.CheckArch(o.Arch); err != nil {
			return err
		}
	}
	if len(o.Weights) == 1 && o.Reference == "" {
		return cmdutil.UsageError("give --reference (the output PyTorch computed), or a second weights file to compare with")
	}
	if len(o.Weights) == 2 && o.Reference != "" {
		return cmdutil.UsageError("--reference is for one weights file; with two, the first one's output is the reference")
	}
	if o.Reference != "" && o.Input == "" {
		return cmdutil.UsageError("--reference needs --input: give the input the reference output was computed from")
	}
	if o.Batch < 1 {
		return cmdutil.UsageError("--batch must be at least 1")
	}
	ms := make([]*modelcmd.Model, len(o.Weights))
	arch := o.Arch
	for i, w := range o.Weights {
		m, err := modelcmd.Load(o.IO, w, arch, o.NumClasses, o.Load)
		if err != nil {
			return err
		}
		ms[i] = m
		if m.Spec.Name != "" {
			arch = m.Spec.Name
		}
	}
	var x *nn.Tensor
	var err error
	if o.Input != "" {
		if x, err = modelcmd.ReadTensor(o.Input); err != nil {
			return err
		}
	} else {
		i := slices.IndexFunc(ms, func(m *modelcmd.Model) bool { return m.Spec.Name != "" })
		if i < 0 {
			return cmdutil.UsageError("an ONNX graph has no architecture to make an input for: give --input (or --arch)")
		}
		x = modelcmd.SeededInput(o.Seed, o.Batch, modelcmd.InputSize(ms[i].Spec))
	}
	outputs := make([]*nn.Tensor, len(o.Weights))
	for i, w := range o.Weights {
		if outputs[i], err = modelcmd.Forward(ms[i], x); err != nil {
			return fmt.Errorf("%s: %w", w, err)
		}
	}
	got, ref := outputs[0], (*nn.Tensor)(nil)
	if len(outputs) == 2 {
		got, ref = outputs[1], outputs[0]
	} else if ref, err = modelcmd.ReadTensor(o.Reference); err != nil {
		return err
	}
	if !modelcmd.SameShape(got.Shape(), ref.Shape()) {
		return fmt.Errorf("output shape %s differs from the reference's %s", modelcmd.Shape(got.Shape()), modelcmd.Shape(ref.Shape()))
	}
	tol := vfy.DefaultTolerance
	if o.AtolSet {
		tol = vfy.Tolerance{Atol: o.Atol, Rtol: o.Rtol}
	}
	rep, err := vfy.Compare(got.Data(), ref.Data(), got.Shape(), tol)
	if err != nil {
		return err
	}
	if o.JSON {
		b, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		var fields map[string]any
		if err := json.Unmarshal(b, &fields); err != nil {
			return err
		}
		fields["arch"] = arch
		if h := ms[0].Hint(); h != "" && !rep.OK {
			fields["hint"] = h
		}
		if err := json.NewEncoder(o.IO.Out).Encode(fields); err != nil {
			return err
		}
	} else {
		against := o.Reference
		if len(o.Weights) == 2 {
			against = o.Weights[0]
		}
		name := arch
		if name == "" {
			name = "ONNX graph"
		}
		fmt.Fprintf(o.IO.Out, "verify %s: %s against %s, input %s\n", name, o.Weights[len(o.Weights)-1], against, modelcmd.Shape(x.Shape()))
		if err := rep.WriteText(o.IO.Out); err != nil {
			return err
		}
		if h := ms[0].Hint(); h != "" && !rep.OK {
			fmt.Fprintf(o.IO.Out, "hint           %s\n", h)
		}
	}
	if !rep.OK {
		return cmdutil.ErrDifference
	}
	return nil
}
