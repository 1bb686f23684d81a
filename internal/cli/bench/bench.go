// Package bench implements `ckpt bench`: time a model's forward pass
// in-process, for sizing a deployment.
package bench

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/internal/cli/modelcmd"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/gemm"
	"github.com/ckptkit/ckpt/nn/models"
)

// Options are the inputs of `ckpt bench`.
type Options struct {
	IO      *cmdutil.IOStreams
	Arch    string
	Weights string
	Batch   int
	Size    int
	Iters   int
	Warmup  int
	Threads int
	List    bool
	JSON    bool
	// Load holds --transform-input, --key and --strip-prefix.
	Load modelcmd.LoadOptions

	// Train times training steps instead of forward passes, with the
	// parameters Strategy ("full" or "head") names trained.
	Train    bool
	Strategy string
}

// Result is what `ckpt bench --json` prints.
type Result struct {
	Arch     string    `json:"arch"`
	Batch    int       `json:"batch"`
	Size     int       `json:"size"`
	MedianMS float64   `json:"median_ms"`
	MinMS    float64   `json:"min_ms"`
	MaxMS    float64   `json:"max_ms"`
	Threads  int       `json:"threads"`
	Iters    int       `json:"iters"`
	Kernel   string    `json:"kernel"`
	TimesMS  []float64 `json:"times_ms"`
	// CPUMS is the process CPU time per timed pass (every thread's, 0
	// where getrusage is not read): it moves less than the wall time with
	// other load on a shared machine.
	CPUMS float64 `json:"cpu_ms"`
}

// NewCmdBench returns the bench command. runF, when not nil, replaces
// benchRun (tests of flag parsing).
func NewCmdBench(ios *cmdutil.IOStreams, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: ios}
	cmd := &cobra.Command{
		Use:   "bench --arch NAME [--weights W] [--batch B] [--iters N] [--train [--strategy full|head]]",
		Short: "Time a model's forward pass or training step",
		Long: `Time the eval-mode forward pass of a torchvision architecture in this process:
after --warmup untimed passes, --iters timed ones, reporting the median, the
fastest and the slowest in milliseconds.

Without --weights the model is built with fresh random weights (the time does
not depend on their values). The input is [--batch, 3, S, S] with S the
architecture's crop size unless --size is given. --threads pins the number of
threads the matrix kernels use (default: all cores). With --weights, --arch may
be left out (detected from the weights); without them, googlenet and
inception_v3 run with --transform-input off unless it says on, as
torchvision's builders make them.

With --train it times whole training steps instead, after the warm-up ones:
the forward pass in training mode, cross-entropy against fixed labels, the
backward pass and an SGD step with momentum 0.9. --strategy full trains every
parameter; --strategy head freezes all but the classifier's. The result then
also gives the process's peak resident memory. The steps run in an
nn.TrainArena (activations and most gradients in memory reused from step to
step, outside the Go heap on Linux), and the garbage collector runs with
GOGC=25 during training (nn.SetTrainingGC) unless GOGC or GOMEMLIMIT is set
in the environment: at Go's default of 100 the heap grows to about twice the
weights, their gradients and the optimizer's state between collections.`,
		Example: `  ckpt bench --arch resnet18
  ckpt bench --arch resnet50 --weights resnet50.pth --batch 8 --iters 20 --json
  ckpt bench --arch resnet18 --batch 8 --train --strategy head --json
  ckpt bench --list`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return benchRun(opts)
		},
	}
	modelcmd.ArchFlag(cmd, &opts.Arch)
	cmd.Flags().StringVar(&opts.Weights, "weights", "", "checkpoint to load (default: random weights)")
	cmd.Flags().IntVar(&opts.Batch, "batch", 1, "batch size")
	cmd.Flags().IntVar(&opts.Size, "size", 0, "input height and width (default: the architecture's crop size)")
	cmd.Flags().IntVar(&opts.Iters, "iters", 10, "timed forward passes")
	cmd.Flags().IntVar(&opts.Warmup, "warmup", 2, "untimed forward passes first")
	cmd.Flags().IntVar(&opts.Threads, "threads", 0, "threads for the matrix kernels (default: GOMAXPROCS)")
	cmd.Flags().BoolVar(&opts.List, "list", false, "list the architectures and exit")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the result as JSON")
	modelcmd.LoadFlags(cmd, &opts.Load)
	cmd.Flags().BoolVar(&opts.Train, "train", false, "time training steps (forward, loss, backward, SGD step)")
	cmd.Flags().StringVar(&opts.Strategy, "strategy", "full", "with --train: full (train every parameter) or head (only the classifier)")
	return cmd
}

func benchRun(o *Options) error {
	if o.List {
		_, err := fmt.Fprintln(o.IO.Out, strings.Join(models.Names(), "\n"))
		return err
	}
	var spec models.Spec
	var err error
	if o.Arch != "" || o.Weights == "" {
		if spec, err = modelcmd.CheckArch(o.Arch); err != nil {
			return err
		}
	}
	if o.Batch < 1 || o.Iters < 1 || o.Warmup < 0 || o.Size < 0 || o.Threads < 0 {
		return cmdutil.UsageError("--batch and --iters must be positive, --warmup, --size and --threads not negative")
	}
	if o.Threads > 0 {
		gemm.SetThreads(o.Threads)
	}
	threads := gemm.Threads()
	if threads == 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	m, spec, err := benchModel(o, spec)
	if err != nil {
		return err
	}
	size := o.Size
	if size == 0 {
		size = modelcmd.InputSize(spec)
	}
	if o.Train {
		return trainRun(o, m, spec, size, threads)
	}
	m.Eval()
	if err := nn.Prepare(m); err != nil { // the inference engine's folded, packed weights
		return err
	}
	x := modelcmd.SeededInput(0, o.Batch, size)
	for range o.Warmup {
		if _, err := modelcmd.Forward(m, x); err != nil {
			return err
		}
	}
	times := make([]float64, o.Iters)
	cpu0 := cpuSeconds()
	for i := range times {
		start := time.Now()
		if _, err := modelcmd.Forward(m, x); err != nil {
			return err
		}
		times[i] = float64(time.Since(start).Microseconds()) / 1000
	}
	median, lo, hi := summarize(times)
	r := Result{Arch: modelName(spec, o.Weights), Batch: o.Batch, Size: size, MedianMS: median, MinMS: lo, MaxMS: hi,
		Threads: threads, Iters: o.Iters, Kernel: kernelName(), TimesMS: times,
		CPUMS: (cpuSeconds() - cpu0) * 1000 / float64(max(o.Iters, 1))}
	if o.JSON {
		return writeJSON(o, r)
	}
	_, err = fmt.Fprintf(o.IO.Out, "%s batch %d, %dx%d, %s (%s): median %.1f ms, min %.1f, max %.1f over %s\n",
		r.Arch, r.Batch, size, size, cmdutil.Plural(r.Threads, "thread"), r.Kernel, r.MedianMS, r.MinMS, r.MaxMS, cmdutil.Plural(r.Iters, "run"))
	return err
}

// benchModel loads the model from --weights (detecting the architecture
// when --arch is empty), or builds spec's architecture with fresh random
// weights.
func benchModel(o *Options, spec models.Spec) (nn.Module, models.Spec, error) {
	if o.Weights != "" {
		lm, err := modelcmd.Load(o.IO, o.Weights, o.Arch, 0, o.Load)
		if err != nil {
			return nil, spec, err
		}
		return lm.Module, lm.Spec, nil
	}
	cfg := models.Config{}
	switch o.Load.TransformInput {
	case "on":
		cfg.TransformInput = models.Yes
	case "off", "":
		cfg.TransformInput = models.No
	default:
		return nil, spec, cmdutil.UsageError("--transform-input %q: want on or off", o.Load.TransformInput)
	}
	m, err := models.Build(spec.Name, cfg)
	return m, spec, err
}

// modelName names the benchmarked model: its architecture, or the weights
// file's name for an ONNX graph, which has none.
func modelName(spec models.Spec, weights string) string {
	if spec.Name != "" {
		return spec.Name
	}
	return filepath.Base(weights)
}

// summarize returns the median, minimum and maximum of times.
func summarize(times []float64) (median, lo, hi float64) {
	sorted := slices.Clone(times)
	slices.Sort(sorted)
	median = sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	return median, sorted[0], sorted[len(sorted)-1]
}

func kernelName() string { return gemm.Kernel() }

func writeJSON(o *Options, v any) error { return json.NewEncoder(o.IO.Out).Encode(v) }
