package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/internal/testenv"
	"github.com/ckptkit/ckpt/nn"
)

// tensorBatches yields step k's batch x[k % K], y[k % K].
type tensorBatches struct {
	x, y  *nn.Tensor
	steps int
}

func (s tensorBatches) NumBatches() int { return s.steps }

func (s tensorBatches) Epoch(ctx context.Context, _ int) (<-chan Batch, func() error) {
	sh := s.x.Shape()
	per := sh[1] * sh[2] * sh[3] * sh[4]
	out := make(chan Batch)
	go func() {
		defer close(out)
		for k := range s.steps {
			j := k % sh[0]
			labels := make([]int, sh[1])
			for i := range labels {
				labels[i] = int(s.y.Data()[j*sh[1]+i])
			}
			x := nn.New(append([]float32(nil), s.x.Data()[j*per:(j+1)*per]...), sh[1], sh[2], sh[3], sh[4])
			select {
			case out <- Batch{X: x, Labels: labels}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, func() error { return nil }
}

type lossRecorder struct{ losses []float64 }

func (r *lossRecorder) OnBatch(_ *Trainer, _, _ int, loss float64) { r.losses = append(r.losses, loss) }
func (r *lossRecorder) OnEpoch(*Trainer, *EpochStats) error        { return nil }

// TestTorchFidelity trains resnet18 on 32×32 inputs for 100 SGD steps
// (momentum 0.9) with each strategy, from the same initial weights (new
// classifier included) and on the same batches as torch
// (testdata/gen/finetune_fidelity.py, a fresh seed each run), through the
// code path of ckpt finetune (NewModel, Apply, the optimizer and the
// Trainer), and compares every step's loss with torch's.
//
// Tolerance 1e-3 relative, the bound: one forward and backward pass
// agrees with torch to about 1e-6 relative (nn's parity tests), and for head
// 100 steps of SGD with momentum keep the difference near that (measured:
// 3e-7); a wrongly frozen layer or BatchNorm mode moves the loss by percents
// from the first steps. Training BatchNorms on batches of 8 is chaotic here:
// torch drifts from itself past 1e-3 within about ten steps of full, and for
// some seeds after fifty of partial, when its weights differ by float32
// rounding (the script's "_perturbed" runs). So every step is held to 1e-3
// while torch's own drift stays under 1e-4, and to ten times that drift
// after.
// CKPT_FIDELITY_STEPS shortens the run; CKPT_FIDELITY_DIR reuses the
// script's output.
func TestTorchFidelity(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping torch interop in -short mode")
	}
	py := testenv.Python(t)
	steps := 100
	if s, err := strconv.Atoi(os.Getenv("CKPT_FIDELITY_STEPS")); err == nil && s > 0 {
		steps = s
	}
	dir := os.Getenv("CKPT_FIDELITY_DIR") // a directory the script already wrote
	if dir == "" {
		seed := time.Now().UnixNano() % 1000000
		dir = t.TempDir()
		cmd := exec.Command(py, "../testdata/gen/finetune_fidelity.py", "--seed", fmt.Sprint(seed), "--out-dir", dir,
			"--steps", fmt.Sprint(steps), "--distinct", fmt.Sprint(steps))
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("generator failed: %v\n%s", err, b)
		}
		t.Logf("seed %d", seed)
	}
	var ref struct {
		Arch    string               `json:"arch"`
		LR      float64              `json:"lr"`
		Classes int                  `json:"classes"`
		Losses  map[string][]float64 `json:"losses"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "losses.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	bc, err := formats.Open(filepath.Join(dir, "batches.pt"))
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	x, err := nn.FromStored(bc.Tensor("x"))
	if err != nil {
		t.Fatal(err)
	}
	y, err := nn.FromStored(bc.Tensor("y"))
	if err != nil {
		t.Fatal(err)
	}
	classes := make([]string, ref.Classes)
	for i := range classes {
		classes[i] = fmt.Sprint(i)
	}
	for _, st := range []Strategy{Head, Partial, Full} {
		t.Run(string(st), func(t *testing.T) {
			m, err := NewModel(ref.Arch, filepath.Join(dir, "backbone.pt"), ref.Classes)
			if err != nil {
				t.Fatal(err)
			}
			ic, err := formats.Open(filepath.Join(dir, "initial.pt"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.Module.LoadStateDict(ckptSource{ic}, true)
			ic.Close()
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Apply(st, 1); err != nil {
				t.Fatal(err)
			}
			opt, err := newOptimizer(Config{Optimizer: "sgd", LR: ref.LR, Momentum: 0.9, BackboneLRMult: 1}, m, st, m.Module)
			if err != nil {
				t.Fatal(err)
			}
			rec := &lossRecorder{}
			tr := &Trainer{Net: m.Module, Opt: opt, Loss: nn.NewCrossEntropyLoss(), Train: tensorBatches{x, y, steps},
				Classes: classes, Epochs: 1, Callbacks: []Callback{rec}}
			if err := tr.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			want := ref.Losses[string(st)][:min(steps, len(ref.Losses[string(st)]))]
			if len(rec.losses) != len(want) {
				t.Fatalf("got %d steps, want %d", len(rec.losses), len(want))
			}
			// Torch's own drift under a 1e-6 perturbation of its weights
			// (see the script) sets the bound once it passes 1e-4.
			self := ref.Losses[string(st)+"_perturbed"]
			worst, drift, strict := 0.0, 0.0, 0
			for i, w := range want {
				rel := math.Abs(rec.losses[i]-w) / math.Abs(w)
				tol := 1e-3
				if self != nil {
					drift = math.Max(drift, math.Abs(self[i]-w)/math.Abs(w))
					if drift >= 1e-4 {
						tol = math.Max(tol, 10*drift)
					}
				}
				if tol == 1e-3 {
					strict++
					worst = math.Max(worst, rel)
				}
				if rel > tol {
					t.Errorf("step %d: loss %.7g, torch %.7g (relative difference %.2g, bound %.2g)", i+1, rec.losses[i], w, rel, tol)
				}
			}
			t.Logf("%s: %d steps held to 1e-3 (largest difference %.2g), %d to 10x torch's own drift (%.2g at the end)",
				st, strict, worst, len(want)-strict, drift)
		})
	}
}

// TestMetricsMatchTorch fine-tunes a head on PNG images, then has torch
// evaluate best.pt on the validation images with the preprocessing
// config.json records (testdata/gen/finetune_eval_check.py): top-1, top-5,
// the confusion matrix and the count must be torch's exactly, the loss
// within 1e-4 relative (ckpt's pixels are Pillow's, and a forward pass
// agrees with torch to about 1e-5 relative).
func TestMetricsMatchTorch(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping torch interop in -short mode")
	}
	py := testenv.Python(t)
	dir := t.TempDir()
	makeData(t, filepath.Join(dir, "data", "train"), 3, 6)
	makeData(t, filepath.Join(dir, "data", "val"), 3, 4)
	weights, _ := saveWeights(t, dir, "resnet18")
	cfg := baseConfig(filepath.Join(dir, "data"), weights, filepath.Join(dir, "run"))
	cfg.Epochs = 2
	res, err := Finetune(context.Background(), cfg, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "../testdata/gen/finetune_eval_check.py", cfg.Out, filepath.Join(dir, "data", "val")).CombinedOutput()
	if err != nil {
		t.Fatalf("torch evaluation failed: %v\n%s", err, out)
	}
	var want Metrics
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	checkTorchResume(t, py, cfg.Out, cfg.Epochs)
	got := res.Val
	if got.Top1 != want.Top1 || got.Top5 != want.Top5 || got.N != want.N || math.Abs(got.Loss-want.Loss) > 1e-4*want.Loss {
		t.Errorf("metrics.json: top1 %v top5 %v loss %v n %d; torch on best.pt: top1 %v top5 %v loss %v n %d",
			got.Top1, got.Top5, got.Loss, got.N, want.Top1, want.Top5, want.Loss, want.N)
	}
	for i := range want.Confusion {
		for j := range want.Confusion[i] {
			if got.Confusion[i][j] != want.Confusion[i][j] {
				t.Errorf("confusion[%d][%d]: got %d, torch %d", i, j, got.Confusion[i][j], want.Confusion[i][j])
			}
		}
	}
}

// checkTorchResume has torch resume the run's checkpoint.pt: the model
// loads strictly, the optimizer and the schedule load into torch's own, at
// the epoch and learning rate the run ended with.
func checkTorchResume(t *testing.T, py, run string, epochs int) {
	t.Helper()
	out, err := exec.Command(py, "../testdata/gen/finetune_checkpoint_check.py", run).CombinedOutput()
	if err != nil {
		t.Fatalf("torch could not resume checkpoint.pt: %v\n%s", err, out)
	}
	var got struct {
		Epoch           int     `json:"epoch"`
		Keys            int     `json:"keys"`
		MomentumBuffers int     `json:"momentum_buffers"`
		LastEpoch       int     `json:"last_epoch"`
		LR              float64 `json:"lr"`
		LastLR          float64 `json:"last_lr"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var cfg struct {
		LR float64 `json:"lr"`
	}
	b, err := os.ReadFile(filepath.Join(run, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	// Cosine annealing to 0 over the run's epochs, stepped once per epoch:
	// after the last epoch the rate is 0.
	wantLR := cfg.LR * (1 + math.Cos(math.Pi*float64(epochs)/float64(epochs))) / 2
	if got.Epoch != epochs || got.LastEpoch != epochs || got.MomentumBuffers != 2 || math.Abs(got.LR-wantLR) > 1e-12 || got.Keys < 100 {
		t.Errorf("torch resumed epoch %d (schedule at %d), lr %v, %d momentum buffers, %d model keys; want epoch %d, lr %v, 2 buffers (fc.weight, fc.bias)",
			got.Epoch, got.LastEpoch, got.LR, got.MomentumBuffers, got.Keys, epochs, wantLR)
	}
}
