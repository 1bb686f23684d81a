// Package finetune implements `ckpt finetune`: transfer learning of a
// torchvision architecture to an image dataset, writing a run directory.
package finetune

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ckptkit/ckpt/data"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/internal/cli/modelcmd"
	"github.com/ckptkit/ckpt/train"
)

// Options are the inputs of `ckpt finetune`.
type Options struct {
	IO       *cmdutil.IOStreams
	Config   train.Config
	Strategy string
	JSON     bool
	// Context, when set, replaces the signal-cancelled context (tests).
	Context context.Context
}

// ExitInterrupted is the exit code after Ctrl-C: the run directory holds
// last.* and a checkpoint to resume from.
const ExitInterrupted = 130

// NewCmdFinetune returns the finetune command. runF, when not nil, replaces
// finetuneRun (tests of flag parsing).
func NewCmdFinetune(ios *cmdutil.IOStreams, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: ios}
	c := &opts.Config
	cmd := &cobra.Command{
		Use:   "finetune --arch NAME --weights W --data DIR --out RUN",
		Short: "Train a pretrained model on a new image dataset (transfer learning)",
		Long: `Fine-tune a torchvision architecture to the classes of an image dataset and
write a run directory.

Data: DIR/<class>/<images> (a seeded split stratified by class holds out
--val-split for validation), DIR/train/ with DIR/val/ (or valid/,
validation/), or a CSV file of path,label rows. JPEG, PNG and WebP images;
grayscale, palette, RGBA and CMYK images become RGB as Pillow's
convert("RGB").

Strategies (--strategy):
  head     the backbone frozen (no gradients, BatchNorms in eval mode), a new
           classifier trained; the backbone runs once per image and the
           classifier trains on cached features (--no-cache to turn off)
  partial  the last --unfreeze K stages and the classifier trained
  full     everything trained, the backbone at --backbone-lr-mult × --lr
  scratch  the architecture freshly initialised (no --weights, except for
           an ONNX backbone, which is its own architecture)
  auto     measures the data's size and how well the pretrained features
           separate its classes (1-NN accuracy against chance), prints the
           cell of the transfer-learning table it picks, and trains that way

Training: --optimizer sgd|adam|adamw, linear warm-up over --warmup epochs
then cosine annealing, once per epoch; --patience N stops after N epochs
without a better validation loss. Augmentation is torchvision's
RandomResizedCrop and RandomHorizontalFlip, then optionally ColorJitter
(--color-jitter B,C,S,H) and TrivialAugmentWide (--trivial-augment), each
as torchvision applies it to a PIL image (--no-augment for none);
evaluation uses the architecture's preprocessing, at --image-size if given.

ONNX backbones: --weights model.onnx without --arch imports the exported
classifier and replaces its last Gemm by a new classifier; every strategy
works. A stage (partial --unfreeze K) is one node that reads parameters
(a Conv, BatchNormalization, Gemm...), counted back from the classifier in
the graph's execution order; a parameter several nodes read belongs to the
stage of the first. full trains every float initializer that
feeds a weight; BatchNormalization nodes train (batch statistics) only if
the export kept them (torch.onnx.export with
training=TrainingMode.PRESERVE, do_constant_folding=False): a default
export folds them into the convolutions, whose weights and biases then
train. Frozen BatchNormalization nodes run in eval mode. scratch
re-initialises the graph as torch initialises new layers of the same
shapes (uniform in ±1/sqrt(fan_in) for Conv and Gemm; BatchNorm 1, 0).
Dropout nodes of an ONNX graph never drop. RUN/ then also holds best.onnx
and last.onnx, the model with every trained initializer (and BatchNorm
statistic) written back, and the preprocessing is ImageNet's at the
graph's input size; --resume works as for other runs, while the .onnx
given to --weights is still there.

RUN/: best.safetensors and best.pt (state_dicts torchvision's builder with
num_classes=N loads strictly; class names and preprocessing in the
metadata of both, for .pt files in archive/extra/ckpt_metadata.json),
last.*, checkpoint.safetensors (--resume RUN
continues), checkpoint.pt (torch.load gives {epoch, model, optimizer,
scheduler} for resuming in PyTorch), optimizer.pt, config.json, summary.csv, metrics.json,
confusion.png, curves.png. Ctrl-C stops after the current batch, saves
last.*, and exits 130.`,
		Example: `  ckpt finetune --arch resnet18 --weights resnet18.pth --data flowers/ --out runs/flowers
  ckpt finetune --arch mobilenet_v3_small --weights w.pt --data ds/ --out run --strategy partial --unfreeze 2 --epochs 20
  ckpt finetune --arch resnet18 --weights w.pt --data ds/ --out run --strategy auto --json
  ckpt finetune --weights resnet18.onnx --data ds/ --out run
  ckpt finetune --resume runs/flowers --epochs 30`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Config.Resume != "" {
				var err error
				if opts, err = resumeOptions(opts, cmd.Flags()); err != nil {
					return err
				}
			} else if opts.Config.Optimizer == "adamw" && !cmd.Flags().Changed("weight-decay") {
				// torch.optim.AdamW's default; SGD's and Adam's is 0.
				opts.Config.WeightDecay = 0.01
			}
			if runF != nil {
				return runF(opts)
			}
			return finetuneRun(opts)
		},
	}
	modelcmd.ArchFlag(cmd, &c.Arch)
	addFlags(cmd.Flags(), opts, false)
	return cmd
}

// addFlags binds the training flags to opts (--arch too with arch).
func addFlags(f *pflag.FlagSet, opts *Options, arch bool) {
	c := &opts.Config
	if arch {
		f.StringVar(&c.Arch, "arch", "", "")
	}
	f.StringVar(&c.Weights, "weights", "", "pretrained weights (any checkpoint ckpt reads)")
	f.StringVar(&c.Data, "data", "", "dataset directory or CSV file")
	f.StringVar(&c.Out, "out", "", "run directory to write")
	f.StringVar(&opts.Strategy, "strategy", "head", "head, partial, full, scratch or auto")
	f.IntVar(&c.Unfreeze, "unfreeze", 1, "partial: number of last stages to train")
	f.Float64Var(&c.BackboneLRMult, "backbone-lr-mult", 1, "full/partial: backbone learning rate as a multiple of --lr")
	f.StringVar(&c.Optimizer, "optimizer", "sgd", "sgd, adam or adamw")
	f.Float64Var(&c.LR, "lr", 0.01, "learning rate")
	f.Float64Var(&c.Momentum, "momentum", 0.9, "SGD momentum")
	f.BoolVar(&c.Nesterov, "nesterov", false, "SGD with Nesterov momentum")
	f.Float64Var(&c.WeightDecay, "weight-decay", 0, "weight decay (adamw: 0.01 unless given, as torch.optim.AdamW)")
	f.Float64Var(&c.LabelSmoothing, "label-smoothing", 0, "label smoothing of the training loss")
	f.IntVar(&c.WarmupEpochs, "warmup", 0, "epochs of linear learning-rate warm-up before the cosine schedule")
	f.IntVar(&c.Epochs, "epochs", 10, "epochs")
	f.IntVar(&c.BatchSize, "batch-size", 32, "batch size")
	f.Uint64Var(&c.Seed, "seed", 0, "seed of the split, shuffling, augmentation and the new classifier")
	f.IntVar(&c.Patience, "patience", 0, "stop after this many epochs without a better validation loss (0: never)")
	f.DurationVar(&c.TimeLimit, "time-limit", 0, "stop training after this long (e.g. 30m), saving last")
	f.Float64Var(&c.ValSplit, "val-split", 0.2, "fraction of each class held out when there is no validation folder")
	f.IntVar(&c.ImageSize, "image-size", 0, "crop size (default: the architecture's); the resize keeps its ratio")
	f.BoolVar(&c.NoAugment, "no-augment", false, "train on the evaluation transform")
	f.StringVar(&c.ColorJitter, "color-jitter", "", "torchvision's ColorJitter B,C,S,H (e.g. 0.4,0.4,0.4,0.1) after the flip")
	f.BoolVar(&c.TrivialAugment, "trivial-augment", false, "torchvision's TrivialAugmentWide after the flip (and ColorJitter)")
	f.BoolVar(&c.SkipBad, "skip-bad", false, "skip and count unreadable images instead of failing")
	f.BoolVar(&c.NoCache, "no-cache", false, "head: run the frozen backbone on every batch instead of caching features")
	f.IntVar(&c.CacheViews, "cache-views", 0, "head: cache this many augmented views per image (0: the evaluation view)")
	f.StringVar(&c.CacheDir, "cache-dir", "", "keep cached features on disk here, reused by later runs")
	f.StringVar(&c.Resume, "resume", "", "continue the run in this directory")
	f.BoolVar(&c.Force, "force", false, "write into a non-empty run directory")
	f.IntVar(&c.Workers, "workers", 0, "image decoding goroutines (default: all cores)")
	f.BoolVar(&opts.JSON, "json", false, "print a summary object on stdout at the end")
}

// resumeOptions returns the options of the run being resumed (its
// config.json) with the flags given on this command line applied over them.
func resumeOptions(o *Options, given *pflag.FlagSet) (*Options, error) {
	path := filepath.Join(o.Config.Resume, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, cmdutil.FileError(path, err)
	}
	r := &Options{IO: o.IO, JSON: o.JSON, Context: o.Context}
	fs := pflag.NewFlagSet("resume", pflag.ContinueOnError)
	addFlags(fs, r, true) // defaults first, then the run's values, then the flags given
	if err := json.Unmarshal(b, &r.Config); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.Strategy = string(r.Config.Strategy)
	var setErr error
	given.Visit(func(f *pflag.Flag) {
		if err := fs.Set(f.Name, f.Value.String()); err != nil && setErr == nil {
			setErr = cmdutil.UsageError("--%s: %v", f.Name, err)
		}
	})
	if r.Config.Out != "" && r.Config.Out != r.Config.Resume {
		return nil, cmdutil.UsageError("--resume writes into the run it continues; drop --out")
	}
	return r, setErr
}

func finetuneRun(o *Options) error {
	c := &o.Config
	st, err := train.ParseStrategy(o.Strategy)
	if err != nil {
		return cmdutil.UsageError("%v", err)
	}
	c.Strategy = st
	if c.Resume != "" {
		if c.Out != "" && c.Out != c.Resume {
			return cmdutil.UsageError("--resume writes into the run it continues; drop --out")
		}
		c.Out = c.Resume
	}
	if !train.IsONNX(c.Weights) || c.Arch != "" && c.Arch != train.ONNXArch {
		if _, err := modelcmd.CheckArch(c.Arch); err != nil {
			return err
		}
	}
	switch {
	case c.Data == "":
		return cmdutil.UsageError("--data is required")
	case c.Out == "":
		return cmdutil.UsageError("--out is required")
	case c.Weights == "" && st != train.Scratch:
		return cmdutil.UsageError("--weights is required for --strategy %s (or use --strategy scratch)", st)
	case c.Epochs < 1 || c.BatchSize < 1:
		return cmdutil.UsageError("--epochs and --batch-size must be at least 1")
	case c.LR <= 0:
		return cmdutil.UsageError("--lr must be positive")
	case c.ValSplit < 0 || c.ValSplit >= 1:
		return cmdutil.UsageError("--val-split must be in [0, 1)")
	case c.LabelSmoothing < 0 || c.LabelSmoothing > 1:
		return cmdutil.UsageError("--label-smoothing must be in [0, 1]")
	case c.CacheViews < 0 || c.ImageSize < 0 || c.Patience < 0 || c.WarmupEpochs < 0:
		return cmdutil.UsageError("--cache-views, --image-size, --patience and --warmup cannot be negative")
	}
	if c.ColorJitter != "" {
		if _, err := data.ParseColorJitter(c.ColorJitter); err != nil {
			return cmdutil.UsageError("--color-jitter: %v", err)
		}
	}
	ctx := o.Context
	if ctx == nil {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	p := newPrinter(o.IO, c.BatchSize)
	res, err := train.Finetune(ctx, *c, train.Hooks{Log: p.log, Batch: p.batch, EpochEnd: p.epoch})
	p.clear()
	var intr *train.Interrupted
	if errors.As(err, &intr) {
		return &cmdutil.ExitError{Code: ExitInterrupted, Err: &interruption{intr, c.Out}}
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		// Stopped before the first batch (reading the data, extracting
		// features): there is no new state to save.
		return &cmdutil.ExitError{Code: ExitInterrupted, Err: fmt.Errorf("interrupted before training started; nothing saved")}
	}
	if err != nil {
		return err
	}
	if res.Skipped > 0 {
		fmt.Fprintf(o.IO.ErrOut, "skipped %s\n", cmdutil.Plural(res.Skipped, "unreadable image"))
	}
	if o.JSON {
		return cmdutil.WriteJSON(o.IO.Out, res)
	}
	if res.Val != nil {
		fmt.Fprintf(o.IO.Out, "best epoch %d: val top-1 %.2f%%, top-5 %.2f%%, loss %.4f (%d images); %s in %.1fs\n",
			res.BestEpoch, 100*res.Val.Top1, 100*res.Val.Top5, res.Val.Loss, res.Val.N, c.Out, res.Seconds)
	} else {
		fmt.Fprintf(o.IO.Out, "trained %d epochs without validation; %s in %.1fs\n", res.Epochs, c.Out, res.Seconds)
	}
	return nil
}

// interruption is a run stopped by Ctrl-C, reported on one line with how to
// continue it.
type interruption struct {
	*train.Interrupted
	out string
}

func (e *interruption) Error() string {
	return fmt.Sprintf("interrupted in epoch %d after batch %d: saved %s/last.*; continue with --resume %s",
		e.Epoch+1, e.Batch, e.out, e.out)
}

func (e *interruption) Unwrap() error { return e.Interrupted }

// printer shows progress: a redrawn line on a terminal, one line per epoch
// otherwise, notes on stderr.
type printer struct {
	ios   *cmdutil.IOStreams
	mu    sync.Mutex
	start time.Time
	last  time.Time
	drawn bool
	phase string
	n     int
	size  int // images per batch
}

func newPrinter(ios *cmdutil.IOStreams, batch int) *printer { return &printer{ios: ios, size: batch} }

func (p *printer) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.ios.ErrOut, "\r\x1b[K")
		p.drawn = false
	}
}

func (p *printer) log(line string) {
	p.clear()
	fmt.Fprintln(p.ios.ErrOut, line)
}

func (p *printer) batch(phase string, epoch, done, total int, loss float64) {
	if !p.ios.ErrIsTerminal {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if phase != p.phase || done <= 1 {
		p.phase, p.start, p.n = phase, now, 0
	}
	p.n = done
	if now.Sub(p.last) < 100*time.Millisecond && done < total {
		return
	}
	p.last = now
	s := fmt.Sprintf("%s %d/%d", phase, done, total)
	if phase == "train" {
		s = fmt.Sprintf("epoch %d  batch %d/%d  loss %.4f", epoch+1, done, total, loss)
		// The clock starts when the first batch is done: the rate is that
		// of the batches since, none yet at the first.
		if el := now.Sub(p.start).Seconds(); done > 1 && el > 0 {
			rate := float64(done-1) / el
			eta := time.Duration(float64(total-done) / rate * float64(time.Second))
			s += fmt.Sprintf("  %.0f images/s  ETA %s", rate*float64(p.size), eta.Round(time.Second))
		}
	}
	fmt.Fprintf(p.ios.ErrOut, "\r\x1b[K%s", s)
	p.drawn = true
}

func (p *printer) epoch(s *train.EpochStats, epochs int) {
	line := fmt.Sprintf("epoch %d/%d  lr %.3g  train loss %.4f top-1 %.2f%%", s.Epoch, epochs, s.LR, s.TrainLoss, 100*s.TrainTop1)
	if s.Val != nil {
		line += fmt.Sprintf("  val loss %.4f top-1 %.2f%% top-5 %.2f%%", s.ValLoss, 100*s.ValTop1, 100*s.ValTop5)
	}
	line += fmt.Sprintf("  %.1fs  %.0f images/s", s.Seconds, float64(s.Images)/math.Max(s.Seconds, 1e-9))
	if s.TrainSeconds > 0 {
		// The share of the training loop spent waiting for the loader.
		line += fmt.Sprintf("  data wait %.1f%%", 100*s.DataWait/s.TrainSeconds)
	}
	p.log(line)
}
