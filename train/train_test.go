package train

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/models"
	"github.com/ckptkit/ckpt/nn/optim"
)

// makeData writes DIR/<class>/<i>.png: class k's images are noise with
// channel k raised, so a classifier can learn them in a few epochs.
func makeData(t testing.TB, dir string, classes, per int) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	for k := range classes {
		for i := range per {
			img := image.NewNRGBA(image.Rect(0, 0, 20+i%3, 20))
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
			path := filepath.Join(dir, "c"+string(rune('a'+k)), string(rune('a'+i))+".png")
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

// saveWeights writes a freshly initialised arch's state_dict (1000
// classes, as pretrained weights have) to a safetensors file.
func saveWeights(t testing.TB, dir, arch string) (string, nn.StateDict) {
	t.Helper()
	nn.ManualSeed(3)
	m, err := models.Build(arch, models.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Non-trivial running statistics, so that a change shows.
	for _, b := range m.NamedBuffers() {
		for i := range b.Tensor.Data() {
			b.Tensor.Data()[i] += 0.1 * float32(i%7)
		}
	}
	sd := m.StateDict()
	c := &formats.Checkpoint{}
	for _, n := range sd {
		c.Tensors = append(c.Tensors, formats.Named{Name: n.Name, Tensor: n.Tensor})
	}
	path := filepath.Join(dir, arch+".safetensors")
	if _, err := formats.Save(path, c, formats.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return path, sd
}

func readState(t testing.TB, path string) map[string][]float32 {
	t.Helper()
	c, err := formats.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := map[string][]float32{}
	for _, n := range c.Tensors {
		x, err := nn.FromStored(n.Tensor)
		if err != nil {
			t.Fatal(err)
		}
		out[n.Name] = slices.Clone(x.Data())
	}
	return out
}

func baseConfig(dataDir, weights, out string) Config {
	return Config{Arch: "resnet18", Weights: weights, Data: dataDir, Out: out, Epochs: 3, BatchSize: 4,
		LR: 0.05, Momentum: 0.9, ValSplit: 0.25, ImageSize: 16, NoAugment: true, Seed: 1, Workers: 2}
}

func TestFinetuneHeadCached(t *testing.T) {
	dir := t.TempDir()
	makeData(t, filepath.Join(dir, "data"), 3, 8)
	weights, orig := saveWeights(t, dir, "resnet18")
	cfg := baseConfig(filepath.Join(dir, "data"), weights, filepath.Join(dir, "run"))
	cfg.CacheDir = filepath.Join(dir, "cache")
	var lines []string
	res, err := Finetune(context.Background(), cfg, Hooks{Log: func(s string) { lines = append(lines, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Cached || res.Epochs != 3 || res.Strategy != Head {
		t.Errorf("got cached %v, %d epochs, strategy %s; want true, 3, head", res.Cached, res.Epochs, res.Strategy)
	}
	for _, f := range []string{"best.safetensors", "best.pt", "last.safetensors", "last.pt", "checkpoint.safetensors",
		"optimizer.pt", "config.json", "summary.csv", "metrics.json", "confusion.png", "curves.png"} {
		if _, err := os.Stat(filepath.Join(cfg.Out, f)); err != nil {
			t.Errorf("run directory: %v", err)
		}
	}
	for _, f := range []string{"confusion.png", "curves.png"} {
		pf, err := os.Open(filepath.Join(cfg.Out, f))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(pf)
		pf.Close()
		if err != nil || img.Bounds().Dx() < 100 || img.Bounds().Dy() < 100 {
			t.Errorf("%s: got %v, want a PNG picture", f, err)
		}
	}
	// The backbone, BatchNorm statistics included, is the pretrained one.
	best := readState(t, filepath.Join(cfg.Out, "best.safetensors"))
	for _, n := range orig {
		if strings.HasPrefix(n.Name, "fc.") {
			continue
		}
		x, _ := nn.FromStored(n.Tensor)
		if !slices.Equal(best[n.Name], x.Data()) {
			t.Errorf("head strategy changed backbone tensor %s", n.Name)
		}
	}
	if got := len(best["fc.weight"]); got != 3*512 {
		t.Errorf("fc.weight: got %d values, want 3×512", got)
	}
	// torchvision's builder with num_classes=3 loads it strictly.
	m, err := models.Build("resnet18", models.Config{NumClasses: 3})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := formats.Open(filepath.Join(cfg.Out, "best.pt"))
	defer c.Close()
	if _, err := m.LoadStateDict(ckptSource{c}, true); err != nil {
		t.Errorf("strict load of best.pt: %v", err)
	}
	var metrics struct {
		Val     Metrics  `json:"val"`
		Classes []string `json:"classes"`
	}
	b, _ := os.ReadFile(filepath.Join(cfg.Out, "metrics.json"))
	if err := json.Unmarshal(b, &metrics); err != nil {
		t.Fatal(err)
	}
	if metrics.Val.N != 6 || len(metrics.Val.Confusion) != 3 || !slices.Equal(metrics.Classes, []string{"ca", "cb", "cc"}) {
		t.Errorf("metrics.json: got n %d, %d confusion rows, classes %q; want 6, 3, [ca cb cc]", metrics.Val.N, len(metrics.Val.Confusion), metrics.Classes)
	}
	f, _ := os.Open(filepath.Join(cfg.Out, "summary.csv"))
	rows, _ := csv.NewReader(f).ReadAll()
	f.Close()
	if len(rows) != 4 || rows[0][0] != "epoch" {
		t.Errorf("summary.csv: got %d rows, want a header and 3", len(rows))
	}

	// A second run reads the cache; changed weights make it stale.
	cfg.Out = filepath.Join(dir, "run2")
	lines = nil
	res2, err := Finetune(context.Background(), cfg, Hooks{Log: func(s string) { lines = append(lines, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(lines, func(s string) bool { return strings.Contains(s, "read from the cache") }) {
		t.Errorf("second run: the cache was not used: %q", lines)
	}
	if res2.History[2].TrainLoss != res.History[2].TrainLoss {
		t.Errorf("same seed: epoch 3 train loss %v, then %v", res.History[2].TrainLoss, res2.History[2].TrainLoss)
	}
	saveWeightsOver(t, weights)
	cfg.Out = filepath.Join(dir, "run3")
	lines = nil
	if _, err := Finetune(context.Background(), cfg, Hooks{Log: func(s string) { lines = append(lines, s) }}); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(lines, func(s string) bool { return strings.Contains(s, "stale feature cache: computed from other weights") }) {
		t.Errorf("changed weights: the stale cache was not refused: %q", lines)
	}
}

// saveWeightsOver rewrites the weights file with other values.
func saveWeightsOver(t testing.TB, path string) {
	c, err := formats.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	out := &formats.Checkpoint{}
	for _, n := range c.Tensors {
		if !n.Tensor.DType.IsFloat() {
			out.Tensors = append(out.Tensors, n)
			continue
		}
		x, _ := nn.FromStored(n.Tensor)
		y := x.Clone()
		for i := range y.Data() {
			y.Data()[i] *= 0.5
		}
		out.Tensors = append(out.Tensors, formats.Named{Name: n.Name, Tensor: nn.ToStored(y)})
	}
	defer c.Close() // the int64 tensors are read from it while saving
	if _, err := formats.Save(path, out, formats.SaveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
}

func TestFinetuneStrategies(t *testing.T) {
	dir := t.TempDir()
	makeData(t, filepath.Join(dir, "data"), 2, 6)
	weights, orig := saveWeights(t, dir, "resnet18")
	tests := []struct {
		st       Strategy
		unfreeze int
		changed  func(name string) bool // which tensors training may change
	}{
		{Head, 0, func(n string) bool { return strings.HasPrefix(n, "fc.") }},
		{Partial, 1, func(n string) bool { return strings.HasPrefix(n, "fc.") || strings.HasPrefix(n, "layer4.") }},
		{Full, 0, func(string) bool { return true }},
	}
	for _, tt := range tests {
		t.Run(string(tt.st), func(t *testing.T) {
			cfg := baseConfig(filepath.Join(dir, "data"), weights, filepath.Join(dir, "run-"+string(tt.st)))
			cfg.Strategy, cfg.Unfreeze, cfg.Epochs, cfg.NoCache = tt.st, tt.unfreeze, 1, true
			if _, err := Finetune(context.Background(), cfg, Hooks{}); err != nil {
				t.Fatal(err)
			}
			last := readState(t, filepath.Join(cfg.Out, "last.safetensors"))
			moved := 0
			for _, n := range orig {
				if strings.HasPrefix(n.Name, "fc.") {
					continue
				}
				x, _ := nn.FromStored(n.Tensor)
				same := slices.Equal(last[n.Name], x.Data())
				if !same {
					moved++
				}
				if !same && !tt.changed(n.Name) {
					t.Errorf("%s: frozen tensor %s changed", tt.st, n.Name)
				}
				if same && tt.changed(n.Name) && strings.HasSuffix(n.Name, "running_mean") {
					t.Errorf("%s: trainable BatchNorm %s did not update its statistics", tt.st, n.Name)
				}
			}
			if tt.st != Head && moved == 0 {
				t.Errorf("%s: no backbone tensor changed", tt.st)
			}
		})
	}
}

func TestResumeMatchesUninterrupted(t *testing.T) {
	dir := t.TempDir()
	makeData(t, filepath.Join(dir, "data"), 2, 6)
	weights, _ := saveWeights(t, dir, "resnet18")
	cfg := baseConfig(filepath.Join(dir, "data"), weights, filepath.Join(dir, "full"))
	cfg.Epochs, cfg.WarmupEpochs = 4, 1
	resumeMatches(t, cfg, filepath.Join(dir, "part"), 2)
}

// resumeMatches runs cfg whole, then the same run into part interrupted
// after epoch stopAfter (as Ctrl-C would) and resumed, and checks that the
// resumed history equals the uninterrupted one, epoch for epoch.
func resumeMatches(t *testing.T, cfg Config, part string, stopAfter int) {
	t.Helper()
	whole, err := Finetune(context.Background(), cfg, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Out = part
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = Finetune(ctx, cfg, Hooks{EpochEnd: func(s *EpochStats, _ int) {
		if s.Epoch == stopAfter {
			cancel()
		}
	}})
	var intr *Interrupted
	if !errors.As(err, &intr) || intr.Epoch != stopAfter {
		t.Fatalf("interrupted run: got %v, want an interruption in epoch %d", err, stopAfter+1)
	}
	sameCheckpoints(t, part, stopAfter)
	cfg.Resume = cfg.Out
	resumed, err := Finetune(context.Background(), cfg, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resumed.History) != cfg.Epochs {
		t.Fatalf("resumed history: got %d epochs, want %d", len(resumed.History), cfg.Epochs)
	}
	for i := range cfg.Epochs {
		a, b := whole.History[i], resumed.History[i]
		if a.TrainLoss != b.TrainLoss || a.ValLoss != b.ValLoss || a.LR != b.LR {
			t.Errorf("epoch %d: uninterrupted loss %v/%v lr %v, resumed %v/%v lr %v", i+1, a.TrainLoss, a.ValLoss, a.LR, b.TrainLoss, b.ValLoss, b.LR)
		}
	}
	if whole.BestEpoch != resumed.BestEpoch || (whole.Val == nil) != (resumed.Val == nil) ||
		(whole.Val != nil && (whole.Val.Loss != resumed.Val.Loss || whole.Val.Top1 != resumed.Val.Top1)) {
		t.Errorf("best epoch %d val %+v uninterrupted, %d %+v resumed", whole.BestEpoch, whole.Val, resumed.BestEpoch, resumed.Val)
	}
}

// sameCheckpoints checks that an interrupted run's checkpoint.pt, the
// state for resuming in PyTorch, holds what its checkpoint.safetensors
// (what --resume reads) holds, bit for bit: the model and optimizer after
// the last complete epoch, epochs of them, and a schedule stepped as often.
func sameCheckpoints(t *testing.T, run string, epochs int) {
	t.Helper()
	open := func(name string) (map[string]*nn.Tensor, map[string]string) {
		c, err := formats.Open(filepath.Join(run, name))
		if err != nil {
			t.Fatalf("after the interruption: %v", err)
		}
		defer c.Close()
		ts := map[string]*nn.Tensor{}
		for _, n := range c.Tensors {
			x, err := nn.FromStored(n.Tensor)
			if err != nil {
				t.Fatalf("%s: %s: %v", name, n.Name, err)
			}
			ts[n.Name] = x
		}
		return ts, c.Metadata()
	}
	pt, ptMeta := open("checkpoint.pt")
	st, stMeta := open("checkpoint.safetensors")
	if len(pt) != len(st) {
		t.Errorf("checkpoint.pt has %d tensors, checkpoint.safetensors %d", len(pt), len(st))
	}
	for name, x := range st {
		if y := pt[name]; y == nil || !slices.Equal(x.Shape(), y.Shape()) || !slices.Equal(x.Data(), y.Data()) {
			t.Errorf("checkpoint.pt's %s differs from checkpoint.safetensors's", name)
		}
	}
	want := strconv.Itoa(epochs)
	if ptMeta["epoch"] != want || stMeta["epoch"] != want || ptMeta["scheduler.last_epoch"] != want {
		t.Errorf("checkpoint.pt epoch %q (scheduler.last_epoch %q), checkpoint.safetensors %q; want %s complete epochs",
			ptMeta["epoch"], ptMeta["scheduler.last_epoch"], stMeta["epoch"], want)
	}
}

func TestChoose(t *testing.T) {
	// Two well separated clusters: similar; interleaved random labels: not.
	r := rand.New(rand.NewPCG(4, 5))
	var sep, mixed [][]float32
	var labels []int
	for i := range 200 {
		l := i % 2
		v := []float32{float32(r.NormFloat64()) * 0.1, float32(r.NormFloat64()) * 0.1}
		v[l] += 3
		sep = append(sep, v)
		mixed = append(mixed, []float32{float32(r.NormFloat64()), float32(r.NormFloat64())})
		labels = append(labels, l)
	}
	tests := []struct {
		name  string
		feats [][]float32
		want  Strategy
		warn  bool
	}{
		{"little similar", sep, Head, false},
		{"little dissimilar", mixed, Head, true},
	}
	for _, tt := range tests {
		c := Choose(tt.feats, labels, 2)
		if c.Strategy != tt.want || (c.Warning != "") != tt.warn {
			t.Errorf("%s: got %s (warning %q, similarity %.2f), want %s, warning %v", tt.name, c.Strategy, c.Warning, c.Similarity, tt.want, tt.warn)
		}
	}
	big := make([]int, 0, 2000)
	var bigSep, bigMixed [][]float32
	for i := range 2000 {
		l := i % 2
		v := []float32{0, 0}
		v[l] = 1 + float32(r.Float64())
		bigSep = append(bigSep, v)
		bigMixed = append(bigMixed, []float32{float32(r.NormFloat64()), float32(r.NormFloat64())})
		big = append(big, l)
	}
	if c := Choose(bigSep, big, 2); c.Strategy != Full {
		t.Errorf("plenty similar: got %s, want full", c.Strategy)
	}
	if c := Choose(bigMixed, big, 2); c.Strategy != Scratch {
		t.Errorf("plenty dissimilar: got %s, want scratch", c.Strategy)
	}
}

// TestAugmentedRunsAreSeeded trains with RandomResizedCrop, the flip,
// ColorJitter and TrivialAugmentWide: the same seed gives the same weights,
// another seed others, and the augmentation changes the result against an
// unaugmented run.
func TestAugmentedRunsAreSeeded(t *testing.T) {
	dir := t.TempDir()
	makeData(t, filepath.Join(dir, "data"), 2, 6)
	weights, _ := saveWeights(t, dir, "resnet18")
	run := func(name string, seed uint64, augment bool) map[string][]float32 {
		cfg := baseConfig(filepath.Join(dir, "data"), weights, filepath.Join(dir, name))
		cfg.Epochs, cfg.Seed, cfg.NoCache = 1, seed, true
		if augment {
			cfg.NoAugment, cfg.ColorJitter, cfg.TrivialAugment = false, "0.4,0.4,0.4,0.1", true
		}
		if _, err := Finetune(context.Background(), cfg, Hooks{}); err != nil {
			t.Fatal(err)
		}
		return readState(t, filepath.Join(cfg.Out, "last.safetensors"))
	}
	a, b, c, plain := run("a", 3, true), run("b", 3, true), run("c", 4, true), run("plain", 3, false)
	if !slices.Equal(a["fc.weight"], b["fc.weight"]) {
		t.Error("two runs with seed 3 trained different classifiers")
	}
	if slices.Equal(a["fc.weight"], c["fc.weight"]) {
		t.Error("seeds 3 and 4 trained the same classifier")
	}
	if slices.Equal(a["fc.weight"], plain["fc.weight"]) {
		t.Error("the augmented run trained the same classifier as the unaugmented one")
	}
}

// TestNewHeadInsideSequential checks that a classifier inside a Sequential
// (mobilenet_v3_small's classifier.3) is replaced in the layers the forward
// pass runs, not only in the module tree: the model's output has the new
// class count (before the fix it had the old classifier's 1000).
func TestNewHeadInsideSequential(t *testing.T) {
	dir := t.TempDir()
	weights, _ := saveWeights(t, dir, "mobilenet_v3_small")
	m, err := NewModel("mobilenet_v3_small", weights, 3)
	if err != nil {
		t.Fatal(err)
	}
	m.Module.Eval()
	y := nn.Infer(m.Module, nn.New(make([]float32, 2*3*32*32), 2, 3, 32, 32))
	if got := y.Shape(); len(got) != 2 || got[1] != 3 {
		t.Errorf("forward: got shape %v, want [2 3]", got)
	}
}

// TestSkipBadCounted puts two truncated PNGs among a dataset's images:
// without SkipBad the run fails naming one of them; with it, every way of
// feeding the classifier (features extracted, features read back from the
// disk cache, images through the backbone on every batch, and auto, which
// measures on features and trains on them) leaves both out and counts each
// once.
func TestSkipBadCounted(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	makeData(t, dataDir, 3, 6)
	var bad []string
	for _, p := range []string{"ca/zz.png", "cb/zz.png"} {
		good, err := os.ReadFile(filepath.Join(dataDir, "ca", "a.png"))
		if err != nil {
			t.Fatal(err)
		}
		bad = append(bad, filepath.Join(dataDir, p))
		if err := os.WriteFile(bad[len(bad)-1], good[:len(good)/2], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	weights, _ := saveWeights(t, dir, "resnet18")
	cfg := baseConfig(dataDir, weights, filepath.Join(dir, "strict"))
	cfg.Epochs = 1
	if _, err := Finetune(context.Background(), cfg, Hooks{}); err == nil || !(strings.Contains(err.Error(), bad[0]) || strings.Contains(err.Error(), bad[1])) {
		t.Errorf("without SkipBad: got %v, want an error naming a truncated file", err)
	}
	cfg.SkipBad = true
	for _, tt := range []struct {
		name string
		mod  func(c *Config)
	}{
		{"features", func(c *Config) { c.CacheDir = filepath.Join(dir, "cache") }},
		{"cached features", func(c *Config) { c.CacheDir = filepath.Join(dir, "cache") }},
		{"images", func(c *Config) { c.NoCache = true }},
		{"auto", func(c *Config) { c.Strategy = Auto }},
	} {
		c := cfg
		c.Out = filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
		tt.mod(&c)
		var logs []string
		res, err := Finetune(context.Background(), c, Hooks{Log: func(l string) { logs = append(logs, l) }})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if res.Skipped != 2 {
			t.Errorf("%s: got %d skipped images, want 2", tt.name, res.Skipped)
		}
		if tt.name == "cached features" && !slices.ContainsFunc(logs, func(l string) bool { return strings.Contains(l, "read from the cache") }) {
			t.Errorf("cached features: the second run did not read the cache: %q", logs)
		}
	}
}

// TestInterruptedWhileValidating stops a run after the last training batch
// of its first epoch, so that the context ends while the epoch is being
// validated: that is an interruption like one between batches (last.*
// saved, no epoch counted as complete), not a failure.
func TestInterruptedWhileValidating(t *testing.T) {
	dir := t.TempDir()
	makeData(t, filepath.Join(dir, "data"), 3, 4)
	weights, _ := saveWeights(t, dir, "resnet18")
	cfg := baseConfig(filepath.Join(dir, "data"), weights, filepath.Join(dir, "run"))
	cfg.NoCache, cfg.Epochs = true, 2
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := Finetune(ctx, cfg, Hooks{Batch: func(phase string, epoch, done, total int, _ float64) {
		if phase == "train" && done == total {
			cancel()
		}
	}})
	var intr *Interrupted
	if !errors.As(err, &intr) || intr.Epoch != 0 {
		t.Fatalf("got %v, want an interruption in epoch 1", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Out, "last.safetensors")); err != nil {
		t.Errorf("after the interruption: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Out, "summary.csv")); err == nil {
		t.Errorf("summary.csv written: the interrupted epoch counted as complete")
	}
}

// TestEarlyStoppingRestores runs EarlyStopping over three epochs whose
// validation loss rises after the first: with Patience 2 it asks to stop at
// the third, and Restore brings back the first epoch's weights although
// they were changed in place since.
func TestEarlyStoppingRestores(t *testing.T) {
	lin := nn.NewLinear(nil, 3, 2, true)
	first := slices.Clone(lin.Weight.Data())
	e := &EarlyStopping{Patience: 2, Model: lin}
	val := &Metrics{}
	for epoch, loss := range []float64{1, 2, 3} {
		err := e.OnEpoch(nil, &EpochStats{Epoch: epoch + 1, Val: val, ValLoss: loss})
		if want := epoch == 2; errors.Is(err, ErrStop) != want {
			t.Fatalf("epoch %d: got %v, want ErrStop %v", epoch+1, err, want)
		}
		for i := range lin.Weight.Data() {
			lin.Weight.Data()[i] += 1
		}
	}
	if e.BestEpoch != 1 || e.Best != 1 {
		t.Errorf("got best epoch %d loss %v, want 1, 1", e.BestEpoch, e.Best)
	}
	if err := e.Restore(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(lin.Weight.Data(), first) {
		t.Errorf("after Restore: weights %v, want the first epoch's %v", lin.Weight.Data(), first)
	}
}

// TestPatienceStopsAtBest trains a head with a learning rate large enough
// that the validation loss rises after an early best epoch: with Patience 1
// the run stops one epoch after its best, and the run's result, metrics.json
// and best.* are that best epoch's, while last.* holds the final weights.
func TestPatienceStopsAtBest(t *testing.T) {
	dir := t.TempDir()
	makeData(t, filepath.Join(dir, "data"), 3, 8)
	weights, _ := saveWeights(t, dir, "resnet18")
	cfg := baseConfig(filepath.Join(dir, "data"), weights, filepath.Join(dir, "run"))
	cfg.Epochs, cfg.Patience, cfg.LR = 30, 1, 20
	res, err := Finetune(context.Background(), cfg, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if res.StopReason != "patience" || res.Epochs != res.BestEpoch+1 || res.Epochs >= cfg.Epochs {
		t.Fatalf("got stop reason %q after %d epochs, best %d; want patience one epoch after the best", res.StopReason, res.Epochs, res.BestEpoch)
	}
	best := res.History[res.BestEpoch-1]
	for _, s := range res.History {
		if s.ValLoss < best.ValLoss {
			t.Errorf("epoch %d has val loss %v, below the best epoch %d's %v", s.Epoch, s.ValLoss, res.BestEpoch, best.ValLoss)
		}
	}
	var m struct {
		Epoch int     `json:"epoch"`
		Val   Metrics `json:"val"`
	}
	b, err := os.ReadFile(filepath.Join(cfg.Out, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if res.Val.Loss != best.ValLoss || m.Epoch != res.BestEpoch || m.Val.Loss != best.ValLoss {
		t.Errorf("result val loss %v, metrics.json epoch %d loss %v; want the best epoch %d's %v", res.Val.Loss, m.Epoch, m.Val.Loss, res.BestEpoch, best.ValLoss)
	}
	bw, lw := readState(t, filepath.Join(cfg.Out, "best.safetensors")), readState(t, filepath.Join(cfg.Out, "last.safetensors"))
	if slices.Equal(bw["fc.weight"], lw["fc.weight"]) {
		t.Errorf("best.safetensors and last.safetensors hold the same classifier, want the best epoch's and the last's")
	}
}

// TestTimeLimit gives a run less time than its first batch takes: it stops
// as an interruption does, saving last.*, but returns its result, with the
// time limit as the reason.
func TestTimeLimit(t *testing.T) {
	dir := t.TempDir()
	makeData(t, filepath.Join(dir, "data"), 3, 4)
	weights, _ := saveWeights(t, dir, "resnet18")
	cfg := baseConfig(filepath.Join(dir, "data"), weights, filepath.Join(dir, "run"))
	cfg.NoCache, cfg.TimeLimit = true, time.Millisecond
	res, err := Finetune(context.Background(), cfg, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if res.StopReason != "time limit" || res.Epochs >= cfg.Epochs {
		t.Errorf("got stop reason %q after %d epochs, want the time limit before %d", res.StopReason, res.Epochs, cfg.Epochs)
	}
	if _, err := os.Stat(filepath.Join(cfg.Out, "last.safetensors")); err != nil {
		t.Errorf("after the time limit: %v", err)
	}
}

// TestNewOptimizer checks how the command's optimizer flags become
// torch.optim's: the algorithm, momentum and Nesterov for SGD only, weight
// decay, and for full and partial with --backbone-lr-mult two groups, the
// backbone's at lr×mult first and the classifier's at lr (one group
// otherwise, and always for head, where only the classifier trains).
func TestNewOptimizer(t *testing.T) {
	dir := t.TempDir()
	weights, _ := saveWeights(t, dir, "resnet18")
	m, err := NewModel("resnet18", weights, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		cfg    Config
		st     Strategy
		alg    optim.Algorithm
		groups []float64 // learning rates as multiples of LR (lr*mult, as torch's lr=args.lr*mult)
	}{
		{"sgd nesterov full", Config{Optimizer: "sgd", LR: 0.1, Momentum: 0.9, Nesterov: true, BackboneLRMult: 0.1, WeightDecay: 1e-4}, Full, optim.SGD, []float64{0.1, 1}},
		{"adam partial", Config{Optimizer: "adam", LR: 0.001, BackboneLRMult: 0.5, WeightDecay: 1e-4}, Partial, optim.Adam, []float64{0.5, 1}},
		{"adamw full, mult 1", Config{Optimizer: "adamw", LR: 0.001, BackboneLRMult: 1, WeightDecay: 0.01}, Full, optim.AdamW, []float64{1}},
		{"sgd head", Config{Optimizer: "sgd", LR: 0.1, Momentum: 0.9, BackboneLRMult: 0.1}, Head, optim.SGD, []float64{1}},
	} {
		for i, mult := range tt.groups {
			if mult != 1 {
				tt.groups[i] = tt.cfg.LR * mult
			} else {
				tt.groups[i] = tt.cfg.LR
			}
		}
		if err := m.Apply(tt.st, 1); err != nil {
			t.Fatal(err)
		}
		var net nn.Module = m.Module
		if tt.st == Head {
			net = m.Head
		}
		o, err := newOptimizer(tt.cfg, m, tt.st, net)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var lrs []float64
		for _, g := range o.Groups {
			lrs = append(lrs, g.LR)
			wantMom := 0.0
			if tt.alg == optim.SGD {
				wantMom = tt.cfg.Momentum
			}
			if g.Momentum != wantMom || g.Nesterov != tt.cfg.Nesterov || g.WeightDecay != tt.cfg.WeightDecay {
				t.Errorf("%s: group hyper-parameters %+v, want momentum %v nesterov %v weight decay %v", tt.name, g.Hyper, wantMom, tt.cfg.Nesterov, tt.cfg.WeightDecay)
			}
		}
		if o.Algorithm != tt.alg || !slices.Equal(lrs, tt.groups) {
			t.Errorf("%s: got %v with group learning rates %v, want %v with %v", tt.name, o.Algorithm, lrs, tt.alg, tt.groups)
		}
		if last := o.Groups[len(o.Groups)-1].Params; len(o.Groups) == 2 && (len(last) != 2 || last[0] != m.Head.Weight) {
			t.Errorf("%s: the last group holds %d tensors, want the classifier's weight and bias", tt.name, len(last))
		}
	}
	if _, err := newOptimizer(Config{Optimizer: "rmsprop", LR: 0.1}, m, Full, m.Module); err == nil || !strings.Contains(err.Error(), "rmsprop") {
		t.Errorf("unknown optimizer: got %v, want an error naming it", err)
	}
}

// TestRunFileMeta reads a run's classes and preprocessing for its best.pt
// and last.pt from config.json, and for no other file: a Hugging Face
// directory's config.json beside pytorch_model.bin is not a run's.
func TestRunFileMeta(t *testing.T) {
	dir := t.TempDir()
	cfg := `{"arch":"resnet18","classes":["a","b"],"preprocess":{"resize":37,"crop":32,"interpolation":"bilinear","mean":[0.5,0.5,0.5],"std":[0.2,0.2,0.2]}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"best.pt", "last.pt"} {
		classes, pre, ok := RunFileMeta(filepath.Join(dir, name))
		if !ok || !slices.Equal(classes, []string{"a", "b"}) || pre.Resize != 37 || pre.Crop != 32 || pre.Std[1] != 0.2 {
			t.Errorf("%s: got %v %+v %v, want the config's classes and preprocessing", name, classes, pre, ok)
		}
	}
	if _, _, ok := RunFileMeta(filepath.Join(dir, "pytorch_model.bin")); ok {
		t.Error("pytorch_model.bin: took config.json for a run's")
	}
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"architectures":["ResNetForImageClassification"],"num_labels":2}`), 0o644)
	if _, _, ok := RunFileMeta(filepath.Join(dir, "best.pt")); ok {
		t.Error("a config.json without classes and preprocessing: took it for a run's")
	}
}

// pacedSource sends n batches of one 3-feature image, sleeping delay
// before each (a loader slower than the model), or, with delay 0, from a
// channel filled before the epoch starts (a loader far ahead).
type pacedSource struct {
	n     int
	delay time.Duration
}

func (p pacedSource) Epoch(ctx context.Context, _ int) (<-chan Batch, func() error) {
	batch := func() Batch { return Batch{X: nn.New([]float32{1, 2, 3}, 1, 3), Labels: []int{1}} }
	if p.delay == 0 {
		out := make(chan Batch, p.n)
		for range p.n {
			out <- batch()
		}
		close(out)
		return out, func() error { return nil }
	}
	out := make(chan Batch)
	go func() {
		defer close(out)
		for range p.n {
			time.Sleep(p.delay)
			select {
			case out <- batch():
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, func() error { return nil }
}

func (p pacedSource) NumBatches() int { return p.n }

// TestDataWait checks that an epoch's DataWait is the time the loop spent
// waiting for its loader: at least the loader's own delays when it is the
// slower side, about nothing when every batch is ready, and never more
// than the loop's time.
func TestDataWait(t *testing.T) {
	for _, tc := range []struct {
		delay    time.Duration
		min, max time.Duration
	}{
		{delay: 25 * time.Millisecond, min: 4 * 25 * time.Millisecond, max: time.Hour},
		{delay: 0, min: 0, max: 20 * time.Millisecond},
	} {
		lin := nn.NewLinear(nil, 3, 2, true)
		opt, err := optim.NewSGD(lin.Parameters(), optim.LR(0.1))
		if err != nil {
			t.Fatal(err)
		}
		tr := &Trainer{Net: lin, Opt: opt, Loss: nn.NewCrossEntropyLoss(), Train: pacedSource{4, tc.delay},
			Classes: []string{"a", "b"}, Epochs: 1}
		if err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		s := tr.History[0]
		wait := time.Duration(s.DataWait * float64(time.Second))
		if wait < tc.min || wait > tc.max || s.DataWait > s.TrainSeconds || s.TrainSeconds > s.Seconds {
			t.Errorf("loader delay %v: data wait %v (want %v to %v), train %.3fs, epoch %.3fs",
				tc.delay, wait, tc.min, tc.max, s.TrainSeconds, s.Seconds)
		}
	}
}
