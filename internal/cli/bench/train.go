package bench

import (
	"fmt"
	"strings"
	"time"

	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/internal/cli/modelcmd"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/models"
	"github.com/ckptkit/ckpt/nn/optim"
)

// TrainResult is what `ckpt bench --train --json` prints.
type TrainResult struct {
	Arch       string  `json:"arch"`
	Batch      int     `json:"batch"`
	Size       int     `json:"size"`
	Mode       string  `json:"mode"` // "train"
	Strategy   string  `json:"strategy"`
	MedianMS   float64 `json:"median_ms"`
	MinMS      float64 `json:"min_ms"`
	MaxMS      float64 `json:"max_ms"`
	Threads    int     `json:"threads"`
	Iters      int     `json:"iters"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// CPUMS is the process CPU time per timed step (every thread's), which
	// a loaded machine disturbs less than the wall time.
	CPUMS float64 `json:"cpu_ms"`
	// GOGC is the garbage collector's target percentage the steps ran
	// with (nn.SetTrainingGC: nn.TrainingGCPercent unless GOGC or
	// GOMEMLIMIT is set in the environment).
	GOGC    int       `json:"gogc"`
	Kernel  string    `json:"kernel"`
	TimesMS []float64 `json:"times_ms"`
}

// trainer is one model set up for timed training steps: the same step
// scripts/bench_reference.py gives PyTorch.
type trainer struct {
	m      nn.Module
	x      *nn.Tensor
	labels []int
	loss   *nn.CrossEntropyLoss
	opt    *optim.Optimizer
	mem    nn.TrainArena // the steps' activations and gradients, reused
}

// newTrainer puts m in training mode with the parameters the strategy
// trains: every one ("full"), or only the classifier's ("head", as finetune
// --strategy head trains them: the rest frozen by nn.Freeze, so its
// BatchNorms use their running statistics and it runs as inference does).
func newTrainer(o *Options, m nn.Module, spec models.Spec, size int) (*trainer, error) {
	if spec.Name == "" {
		return nil, cmdutil.UsageError("--train times torchvision architectures; %s is an ONNX graph, whose training step is not timed yet", o.Weights)
	}
	m.Train()
	head := strings.TrimSuffix(spec.Classifier, "weight")
	if o.Strategy == "head" {
		freezeExcept(m, "", strings.TrimSuffix(head, "."))
	}
	var params []*nn.Tensor
	classes := 0
	for _, p := range m.NamedParameters() {
		if p.Name == spec.Classifier {
			classes = p.Tensor.Shape()[0]
		}
		train := o.Strategy == "full" || strings.HasPrefix(p.Name, head)
		p.Tensor.SetRequiresGrad(train)
		if train {
			params = append(params, p.Tensor)
		}
	}
	if classes == 0 || len(params) == 0 {
		return nil, fmt.Errorf("bench: %s: no classifier parameter %q", spec.Name, spec.Classifier)
	}
	opt, err := optim.NewSGD(params, optim.LR(0.01), optim.Momentum(0.9))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	labels := make([]int, o.Batch)
	for i := range labels {
		labels[i] = i * 7 % classes
	}
	net := m
	if o.Strategy == "head" {
		// As finetune --strategy head --no-cache runs it: the frozen backbone
		// at inference speed, the classifier trained on its features.
		for _, nm := range nn.NamedModules(m) {
			if lin, ok := nm.Module.(*nn.Linear); ok && nm.Name == strings.TrimSuffix(head, ".") {
				net = nn.FrozenBackbone(m, lin)
			}
		}
	}
	return &trainer{m: net, x: modelcmd.SeededInput(0, o.Batch, size), labels: labels, loss: nn.NewCrossEntropyLoss(), opt: opt}, nil
}

// freezeExcept freezes (nn.Freeze: no gradients, evaluation mode kept)
// every module under mod, at path, that neither is the module keep nor
// contains it: the backbone as finetune --strategy head freezes it.
func freezeExcept(mod nn.Module, path, keep string) {
	if path == keep {
		return
	}
	if path != "" && !strings.HasPrefix(keep, path+".") {
		nn.Freeze(mod)
		return
	}
	for _, c := range mod.NamedChildren() {
		child := c.Name
		if path != "" {
			child = path + "." + c.Name
		}
		freezeExcept(c.Module, child, keep)
	}
}

// step runs one training step: forward, loss, backward, optimizer update.
// A shape error inside the model is returned as an error.
func (t *trainer) step() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bench: training step on input %v failed: %v", t.x.Shape(), r)
		}
	}()
	t.opt.ZeroGrad()
	t.mem.Step(t.x, func(x *nn.Tensor) {
		y := t.m.Forward(x)
		if y.Dim() != 2 {
			err = fmt.Errorf("bench: %T returned %v in training mode, want [batch, classes] logits", t.m, y.Shape())
			return
		}
		t.loss.Forward(y, t.labels).Backward()
	})
	if err != nil {
		return err
	}
	t.opt.Step()
	return nil
}

func trainRun(o *Options, m nn.Module, spec models.Spec, size, threads int) error {
	switch o.Strategy {
	case "full", "head":
	default:
		return cmdutil.UsageError("--strategy %q: want full or head", o.Strategy)
	}
	gogc := nn.SetTrainingGC()
	t, err := newTrainer(o, m, spec, size)
	if err != nil {
		return err
	}
	for range o.Warmup {
		if err := t.step(); err != nil {
			return err
		}
	}
	times := make([]float64, o.Iters)
	cpu0 := cpuSeconds()
	for i := range times {
		start := time.Now()
		if err := t.step(); err != nil {
			return err
		}
		times[i] = float64(time.Since(start).Microseconds()) / 1000
	}
	cpu := (cpuSeconds() - cpu0) * 1000 / float64(o.Iters)
	med, lo, hi := summarize(times)
	r := TrainResult{CPUMS: cpu, GOGC: gogc, Arch: spec.Name, Batch: o.Batch, Size: size, Mode: "train", Strategy: o.Strategy,
		MedianMS: med, MinMS: lo, MaxMS: hi, Threads: threads, Iters: o.Iters, PeakRSSMiB: peakRSSMiB(),
		Kernel: kernelName(), TimesMS: times}
	if o.JSON {
		return writeJSON(o, r)
	}
	_, err = fmt.Fprintf(o.IO.Out, "%s batch %d, %dx%d, train %s, %d threads (%s): median %.1f ms, min %.1f, max %.1f over %d steps, %.0f ms CPU per step, peak RSS %.0f MiB (GOGC %d)\n",
		r.Arch, r.Batch, size, size, r.Strategy, r.Threads, r.Kernel, r.MedianMS, r.MinMS, r.MaxMS, r.Iters, r.CPUMS, r.PeakRSSMiB, r.GOGC)
	return err
}
