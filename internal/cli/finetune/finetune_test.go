package finetune

import (
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/internal/cli/eval"
	"github.com/ckptkit/ckpt/internal/cli/predict"
	"github.com/ckptkit/ckpt/internal/testenv"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/models"
	"github.com/ckptkit/ckpt/train"
)

func TestNewCmdFinetune(t *testing.T) {
	ios, _, _ := clitest.Streams()
	var got *Options
	cmd := NewCmdFinetune(ios, func(o *Options) error { got = o; return nil })
	cmd.SetArgs([]string{"--arch", "resnet18", "--weights", "w.pt", "--data", "d", "--out", "r", "--strategy", "partial",
		"--unfreeze", "2", "--optimizer", "adamw", "--lr", "0.001", "--epochs", "7", "--batch-size", "16", "--seed", "5",
		"--patience", "3", "--time-limit", "10m", "--label-smoothing", "0.1", "--warmup", "2", "--nesterov",
		"--backbone-lr-mult", "0.1", "--image-size", "64", "--cache-views", "4", "--no-augment", "--skip-bad", "--json",
		"--color-jitter", "0.4,0.3,0.2,0.1", "--trivial-augment"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	c := got.Config
	if c.Arch != "resnet18" || c.Weights != "w.pt" || c.Data != "d" || c.Out != "r" || got.Strategy != "partial" ||
		c.Unfreeze != 2 || c.Optimizer != "adamw" || c.LR != 0.001 || c.Epochs != 7 || c.BatchSize != 16 || c.Seed != 5 ||
		c.Patience != 3 || c.TimeLimit.Minutes() != 10 || c.LabelSmoothing != 0.1 || c.WarmupEpochs != 2 || !c.Nesterov ||
		c.BackboneLRMult != 0.1 || c.ImageSize != 64 || c.CacheViews != 4 || !c.NoAugment || !c.SkipBad || !got.JSON ||
		c.ColorJitter != "0.4,0.3,0.2,0.1" || !c.TrivialAugment {
		t.Errorf("options %+v do not match the flags", *got)
	}
}

// TestWeightDecayDefault: --optimizer adamw takes torch.optim.AdamW's
// default weight decay, 0.01, unless --weight-decay is given; sgd and adam
// keep torch's 0.
func TestWeightDecayDefault(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want float64
	}{
		{[]string{"--optimizer", "adamw"}, 0.01},
		{[]string{"--optimizer", "adamw", "--weight-decay", "0"}, 0},
		{[]string{"--optimizer", "adamw", "--weight-decay", "0.05"}, 0.05},
		{[]string{"--optimizer", "adam"}, 0},
		{nil, 0},
	} {
		ios, _, _ := clitest.Streams()
		var got *Options
		cmd := NewCmdFinetune(ios, func(o *Options) error { got = o; return nil })
		cmd.SetArgs(append([]string{"--arch", "resnet18", "--weights", "w.pt", "--data", "d", "--out", "r"}, tt.args...))
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		if got.Config.WeightDecay != tt.want {
			t.Errorf("%v: weight decay %g, want %g", tt.args, got.Config.WeightDecay, tt.want)
		}
	}
}

func TestFinetuneUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		mod  func(o *Options)
		want string
	}{
		{"no arch", func(o *Options) { o.Config.Arch = "" }, "--arch is required"},
		{"no weights", func(o *Options) { o.Config.Weights = "" }, "--weights is required"},
		{"bad strategy", func(o *Options) { o.Strategy = "most" }, "unknown strategy"},
		{"bad split", func(o *Options) { o.Config.ValSplit = 1 }, "--val-split"},
		{"resume and out", func(o *Options) { o.Config.Resume = "a" }, "drop --out"},
		{"onnx scratch without the graph", func(o *Options) { o.Config.Arch, o.Config.Weights, o.Strategy = "", "", "scratch" }, "--arch is required"},
		{"bad jitter", func(o *Options) { o.Config.ColorJitter = "0.4,0.4,0.4" }, "--color-jitter"},
		{"hue too large", func(o *Options) { o.Config.ColorJitter = "0,0,0,0.7" }, "--color-jitter"},
	}
	for _, tt := range tests {
		ios, _, _ := clitest.Streams()
		o := &Options{IO: ios, Strategy: "head", Config: train.Config{Arch: "resnet18", Weights: "w", Data: "d", Out: "r", Epochs: 1, BatchSize: 1, LR: 0.1, ValSplit: 0.2}}
		tt.mod(o)
		err := finetuneRun(o)
		if err == nil || !strings.Contains(err.Error(), tt.want) || cmdutil.ExitCode(err) != cmdutil.ExitInvalid {
			t.Errorf("%s: got %v (exit %d), want a usage error with %q", tt.name, err, cmdutil.ExitCode(err), tt.want)
		}
	}
}

func makeData(t testing.TB, dir string, classes, per int) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	for k := range classes {
		for i := range per {
			img := image.NewNRGBA(image.Rect(0, 0, 18, 18))
			for p := 0; p < len(img.Pix); p += 4 {
				for c := range 3 {
					v := r.IntN(120)
					if c == k {
						v += 130
					}
					img.Pix[p+c] = uint8(v)
				}
				img.Pix[p+3] = 255
			}
			path := filepath.Join(dir, "class"+string(rune('0'+k)), string(rune('a'+i))+".png")
			os.MkdirAll(filepath.Dir(path), 0o755)
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			png.Encode(f, img)
			f.Close()
		}
	}
}

func saveWeights(t testing.TB, path, arch string) {
	t.Helper()
	nn.ManualSeed(3)
	m, err := models.Build(arch, models.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := &formats.Checkpoint{}
	for _, n := range m.StateDict() {
		c.Tensors = append(c.Tensors, formats.Named{Name: n.Name, Tensor: n.Tensor})
	}
	if _, err := formats.Save(path, c, formats.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestFinetuneThenEval trains a head on cached features, then evaluates
// best.safetensors with `ckpt eval`, which runs the whole model on the
// images: both must report the same validation results; `ckpt predict` with
// the same weights must get the same images right, by the class names and
// preprocessing the weights record.
func TestFinetuneThenEval(t *testing.T) {
	dir := t.TempDir()
	makeData(t, filepath.Join(dir, "data", "train"), 3, 5)
	makeData(t, filepath.Join(dir, "data", "val"), 3, 3)
	weights := filepath.Join(dir, "w.safetensors")
	saveWeights(t, weights, "resnet18")
	run := filepath.Join(dir, "run")
	ios, stdout, stderr := clitest.Streams()
	cmd := NewCmdFinetune(ios, nil)
	cmd.SetArgs([]string{"--arch", "resnet18", "--weights", weights, "--data", filepath.Join(dir, "data"), "--out", run,
		"--epochs", "3", "--batch-size", "4", "--lr", "0.05", "--image-size", "16", "--json", "--workers", "2"})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var res train.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout)
	}
	if res.Epochs != 3 || !res.Cached || res.Val == nil || res.Val.N != 9 {
		t.Fatalf("result: got %d epochs, cached %v, val %+v; want 3, true, 9 images", res.Epochs, res.Cached, res.Val)
	}
	lines := 0
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(l, "epoch ") {
			lines++
		}
	}
	if lines != 3 {
		t.Errorf("stderr: got %d epoch lines, want 3:\n%s", lines, stderr)
	}

	ios, stdout, stderr = clitest.Streams()
	ev := eval.NewCmdEval(ios, nil)
	ev.SetArgs([]string{"--arch", "resnet18", "--weights", filepath.Join(run, "best.safetensors"), "--data", filepath.Join(dir, "data"), "--json"})
	if err := ev.Execute(); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var got train.Metrics
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	var want struct {
		Val train.Metrics `json:"val"`
	}
	b, _ := os.ReadFile(filepath.Join(run, "metrics.json"))
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	// The cached features went through the same layers as eval's full
	// forward pass; only the summation order of batched products may
	// differ, so losses agree to float32 rounding.
	if got.Top1 != want.Val.Top1 || got.Top5 != want.Val.Top5 || got.N != want.Val.N ||
		math.Abs(got.Loss-want.Val.Loss) > 1e-5*math.Max(1, want.Val.Loss) {
		t.Errorf("eval: got top1 %v top5 %v loss %v n %d; metrics.json top1 %v top5 %v loss %v n %d",
			got.Top1, got.Top5, got.Loss, got.N, want.Val.Top1, want.Val.Top5, want.Val.Loss, want.Val.N)
	}
	for i := range got.Confusion {
		for j := range got.Confusion[i] {
			if got.Confusion[i][j] != want.Val.Confusion[i][j] {
				t.Errorf("confusion[%d][%d]: got %d, want %d", i, j, got.Confusion[i][j], want.Val.Confusion[i][j])
			}
		}
	}
	predictAgrees(t, filepath.Join(run, "best.safetensors"), filepath.Join(dir, "data", "val"), want.Val, "--arch", "resnet18")
	// best.pt carries the classes and the preprocessing in its own
	// metadata record, so a copy alone in another directory (no
	// config.json beside it) needs no flags either.
	predictAgrees(t, filepath.Join(run, "best.pt"), filepath.Join(dir, "data", "val"), want.Val, "--arch", "resnet18")
	alone := filepath.Join(dir, "alone", "best.pt")
	copyFile(t, filepath.Join(run, "best.pt"), alone)
	predictAgrees(t, alone, filepath.Join(dir, "data", "val"), want.Val, "--arch", "resnet18")
	// A best.pt of a run written before .pt files carried metadata: the
	// run's config.json has them.
	old := filepath.Join(dir, "old", "best.pt")
	c, err := formats.Open(filepath.Join(run, "best.pt"))
	if err != nil {
		t.Fatal(err)
	}
	c.Meta = nil
	_, err = formats.Save(old, c, formats.SaveOptions{})
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	if c, err := formats.Open(old); err != nil || len(c.Meta) != 0 {
		t.Fatalf("old-style best.pt: metadata %v, %v; want none", c.Meta, err)
	} else {
		c.Close()
	}
	copyFile(t, filepath.Join(run, "config.json"), filepath.Join(dir, "old", "config.json"))
	predictAgrees(t, old, filepath.Join(dir, "data", "val"), want.Val, "--arch", "resnet18")
	ios, stdout, stderr = clitest.Streams()
	ev = eval.NewCmdEval(ios, nil)
	for _, weights := range []string{filepath.Join(run, "best.pt"), alone, old} {
		ios, stdout, stderr = clitest.Streams()
		ev = eval.NewCmdEval(ios, nil)
		ev.SetArgs([]string{"--arch", "resnet18", "--weights", weights, "--data", filepath.Join(dir, "data"), "--json"})
		if err := ev.Execute(); err != nil {
			t.Fatalf("eval %s: %v\n%s", weights, err, stderr)
		}
		var pt train.Metrics
		if err := json.Unmarshal(stdout.Bytes(), &pt); err != nil {
			t.Fatal(err)
		}
		if pt.Top1 != want.Val.Top1 || math.Abs(pt.Loss-want.Val.Loss) > 1e-5*math.Max(1, want.Val.Loss) || !slices.Equal(pt.Classes, want.Val.Classes) {
			t.Errorf("eval %s: got top1 %v loss %v classes %v; metrics.json top1 %v loss %v classes %v",
				weights, pt.Top1, pt.Loss, pt.Classes, want.Val.Top1, want.Val.Loss, want.Val.Classes)
		}
	}
}

// copyFile copies src to dst, making dst's directory.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// predictAgrees runs `ckpt predict --json` with a run's weights on every
// image of valDir (an ImageFolder of the run's classes) and checks that it
// needs neither labels nor preprocessing flags: each label printed is the
// class name the weights record for its index, the images whose top label
// is their folder's name are as many as val (the run's metrics.json)
// counts right, and the mean -log of the probability predict gives each
// image's own class is val's loss (to float32 rounding: the same model on
// the same preprocessed images).
func predictAgrees(t *testing.T, weights, valDir string, val train.Metrics, flags ...string) {
	t.Helper()
	ios, stdout, stderr := clitest.Streams()
	cmd := predict.NewCmdPredict(ios, nil)
	k := strconv.Itoa(len(val.Classes))
	cmd.SetArgs(append([]string{valDir, "--weights", weights, "--topk", k, "--json"}, flags...))
	if err := cmd.Execute(); err != nil {
		t.Fatalf("predict %s: %v\n%s", weights, err, stderr)
	}
	right, n, loss := 0, 0, 0.0
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var p predict.Prediction
		if err := json.Unmarshal([]byte(line), &p); err != nil || len(p.Top) != len(val.Classes) {
			t.Fatalf("predict --json line %q: %v", line, err)
		}
		truth := filepath.Base(filepath.Dir(p.Image))
		for rank, c := range p.Top {
			if c.Index < 0 || c.Index >= len(val.Classes) || c.Label != val.Classes[c.Index] {
				t.Fatalf("%s: got class %d %q, want one of the run's classes %v by its index", p.Image, c.Index, c.Label, val.Classes)
			}
			if c.Label == truth {
				loss -= math.Log(c.Prob)
				if rank == 0 {
					right++
				}
			}
		}
		n++
	}
	if n != val.N || right != int(math.Round(val.Top1*float64(val.N))) {
		t.Errorf("predict with %s: %d of %d images right, want metrics.json's top-1 %v of %d", filepath.Base(weights), right, n, val.Top1, val.N)
	}
	if loss /= float64(max(1, n)); math.Abs(loss-val.Loss) > 1e-5*math.Max(1, val.Loss) {
		t.Errorf("predict with %s: mean loss %v over its probabilities, want metrics.json's %v", filepath.Base(weights), loss, val.Loss)
	}
}

func TestFinetuneInterrupted(t *testing.T) {
	dir := t.TempDir()
	makeData(t, filepath.Join(dir, "data"), 2, 5)
	weights := filepath.Join(dir, "w.safetensors")
	saveWeights(t, weights, "resnet18")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Ctrl-C before the first batch
	ios, _, stderr := clitest.Streams()
	o := &Options{IO: ios, Strategy: "full", Context: ctx, Config: train.Config{Arch: "resnet18", Weights: weights,
		Data: filepath.Join(dir, "data"), Out: filepath.Join(dir, "run"), Epochs: 2, BatchSize: 4, LR: 0.01, ValSplit: 0.2, ImageSize: 16}}
	err := finetuneRun(o)
	var intr *train.Interrupted
	if !errors.As(err, &intr) || cmdutil.ExitCode(err) != ExitInterrupted {
		t.Fatalf("got %v (exit %d), want an interruption, exit %d", err, cmdutil.ExitCode(err), ExitInterrupted)
	}
	if _, err := os.Stat(filepath.Join(dir, "run", "last.safetensors")); err != nil {
		t.Errorf("after Ctrl-C: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "--resume "+o.Config.Out) || strings.Contains(msg, "\n") || strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("got error %q and stderr %q, want one line with the resume hint", msg, stderr)
	}
	// head extracts features before training: Ctrl-C there is an
	// interruption too, with nothing to resume.
	o.Strategy, o.Config.Out = "head", filepath.Join(dir, "run-head")
	err = finetuneRun(o)
	if cmdutil.ExitCode(err) != ExitInterrupted || err == nil || !strings.Contains(err.Error(), "before training") {
		t.Errorf("head, Ctrl-C while extracting features: got %v (exit %d), want an interruption before training, exit %d", err, cmdutil.ExitCode(err), ExitInterrupted)
	}
}

func TestResumeTakesTheRunsConfig(t *testing.T) {
	run := t.TempDir()
	cfg := train.Config{Arch: "mobilenet_v2", Weights: "w.pt", Data: "ds", Strategy: train.Partial, Unfreeze: 3, LR: 0.02, Epochs: 10, BatchSize: 8, Seed: 9}
	b, _ := json.Marshal(train.RunConfig{Config: cfg})
	os.WriteFile(filepath.Join(run, "config.json"), b, 0o644)
	ios, _, _ := clitest.Streams()
	var got *Options
	cmd := NewCmdFinetune(ios, func(o *Options) error { got = o; return nil })
	cmd.SetArgs([]string{"--resume", run, "--epochs", "30"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	c := got.Config
	if c.Arch != "mobilenet_v2" || c.Weights != "w.pt" || got.Strategy != "partial" || c.Unfreeze != 3 || c.LR != 0.02 ||
		c.BatchSize != 8 || c.Seed != 9 || c.Epochs != 30 || c.Resume != run {
		t.Errorf("resumed options %+v: want the run's config with --epochs 30", c)
	}
	cmd = NewCmdFinetune(ios, func(o *Options) error { return nil })
	cmd.SetArgs([]string{"--resume", filepath.Join(run, "none")})
	if err := cmd.Execute(); err == nil || cmdutil.ExitCode(err) != cmdutil.ExitInvalid {
		t.Errorf("resume of a directory without config.json: got %v, want exit 2", err)
	}
}

// TestFinetuneONNXFullThenEval trains every parameter of an ONNX backbone
// that kept its BatchNorms (testdata/gen/finetune_onnx_backbone.py
// --keep-bn) from the command line, then evaluates RUN/best.onnx with
// `ckpt eval`: the trained convolutions and BatchNorm statistics written
// back must give metrics.json's results (to float32 rounding of the loss:
// the run evaluated the same graph with the same weights), and `ckpt
// predict` on best.onnx must name the run's classes and get as many right.
func TestFinetuneONNXFullThenEval(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping torch interop in -short mode")
	}
	py := testenv.Python(t)
	dir := t.TempDir()
	backbone := filepath.Join(dir, "bn.onnx")
	if out, err := exec.Command(py, "../../../testdata/gen/finetune_onnx_backbone.py", backbone, "--keep-bn").CombinedOutput(); err != nil {
		t.Fatalf("generator: %v\n%s", err, out)
	}
	makeData(t, filepath.Join(dir, "data", "train"), 3, 4)
	makeData(t, filepath.Join(dir, "data", "val"), 3, 2)
	run := filepath.Join(dir, "run")
	ios, stdout, stderr := clitest.Streams()
	cmd := NewCmdFinetune(ios, nil)
	cmd.SetArgs([]string{"--weights", backbone, "--data", filepath.Join(dir, "data"), "--out", run, "--strategy", "full",
		"--backbone-lr-mult", "0.1", "--epochs", "2", "--batch-size", "6", "--lr", "0.01", "--no-augment", "--json", "--workers", "2"})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var res train.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout)
	}
	if res.Arch != train.ONNXArch || res.Strategy != train.Full || res.Cached || res.Val == nil || res.Val.N != 6 {
		t.Fatalf("result: got arch %q strategy %s cached %v val %+v; want onnx, full on images, 6 validation images", res.Arch, res.Strategy, res.Cached, res.Val)
	}
	ios, stdout, stderr = clitest.Streams()
	ev := eval.NewCmdEval(ios, nil)
	ev.SetArgs([]string{"--weights", filepath.Join(run, "best.onnx"), "--data", filepath.Join(dir, "data"), "--json"})
	if err := ev.Execute(); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var got train.Metrics
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	var want struct {
		Val train.Metrics `json:"val"`
	}
	b, _ := os.ReadFile(filepath.Join(run, "metrics.json"))
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if got.Top1 != want.Val.Top1 || got.N != want.Val.N || math.Abs(got.Loss-want.Val.Loss) > 1e-5*math.Max(1, want.Val.Loss) {
		t.Errorf("eval of best.onnx: got top1 %v loss %v n %d; metrics.json top1 %v loss %v n %d",
			got.Top1, got.Loss, got.N, want.Val.Top1, want.Val.Loss, want.Val.N)
	}
	predictAgrees(t, filepath.Join(run, "best.onnx"), filepath.Join(dir, "data", "val"), want.Val)
}

// TestProgress draws the training progress line on a terminal: the first
// batch shows its loss but no rate yet (nothing has been timed), a later one
// the images per second and the epoch's ETA; off a terminal nothing is
// drawn.
func TestProgress(t *testing.T) {
	ios, _, stderr := clitest.Streams()
	ios.ErrIsTerminal = true
	p := newPrinter(ios, 4)
	p.batch("train", 0, 1, 5, 1.25)
	if got := stderr.String(); !strings.Contains(got, "epoch 1  batch 1/5  loss 1.2500") || strings.Contains(got, "images/s") {
		t.Errorf("first batch: got %q, want its loss and no rate", got)
	}
	time.Sleep(20 * time.Millisecond)
	stderr.Reset()
	p.batch("train", 0, 5, 5, 0.5)
	if got := stderr.String(); !strings.Contains(got, "batch 5/5  loss 0.5000") || !strings.Contains(got, " images/s  ETA 0s") {
		t.Errorf("last batch: got %q, want the rate and ETA", got)
	}
	ios, _, stderr = clitest.Streams()
	p = newPrinter(ios, 4)
	p.batch("train", 0, 1, 5, 1)
	if stderr.Len() != 0 {
		t.Errorf("off a terminal: got %q, want nothing", stderr)
	}
}
