package train

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
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

	"github.com/ckptkit/ckpt/data"
	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/internal/testenv"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
	"github.com/ckptkit/ckpt/nn/graph/onnximport"
)

// exportBackbone writes testdata/gen/finetune_onnx_backbone.py's resnet18
// (32×32, seed 0) to dir, BatchNorms folded or, with keepBN, kept.
func exportBackbone(t *testing.T, dir string, keepBN bool) string {
	t.Helper()
	py := testenv.Python(t)
	out := filepath.Join(dir, "folded.onnx")
	args := []string{"../testdata/gen/finetune_onnx_backbone.py", out}
	if keepBN {
		out = filepath.Join(dir, "bn.onnx")
		args = []string{"../testdata/gen/finetune_onnx_backbone.py", out, "--keep-bn"}
	}
	if b, err := exec.Command(py, args...).CombinedOutput(); err != nil {
		t.Fatalf("generator: %v\n%s", err, b)
	}
	return out
}

// onnxInits reads an ONNX model's initializers.
func onnxInits(t *testing.T, path string) map[string]*nn.Tensor {
	t.Helper()
	m, err := onnx.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ts, _, err := m.Initializers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*nn.Tensor{}
	for _, n := range ts {
		x, err := nn.FromStored(n.Tensor)
		if err != nil {
			t.Fatalf("%s: %s: %v", path, n.Name, err)
		}
		out[n.Name] = x
	}
	return out
}

// paramNodes lists, from the ONNX file itself, the initializers read by each
// node before the last Gemm (the classifier) that reads any, in node order,
// and the classifier's.
func paramNodes(t *testing.T, path string) (stages [][]string, head []string) {
	t.Helper()
	m, err := onnx.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	isInit := map[string]bool{}
	for _, in := range m.Graph.Initializer {
		isInit[in.Name] = true
	}
	last := -1
	for k, n := range m.Graph.Node {
		if n.OpType == "Gemm" {
			last = k
		}
	}
	for k, n := range m.Graph.Node {
		var names []string
		for _, in := range n.Input {
			if isInit[in] {
				names = append(names, in)
			}
		}
		switch {
		case k == last:
			head = names
		case len(names) > 0:
			stages = append(stages, names)
		}
	}
	return stages, head
}

// ortValMetrics runs ONNX Runtime (testdata/gen/ort_run.js) on model over
// the images of valDir as pre preprocesses them and returns the top-1
// accuracy and mean cross-entropy.
func ortValMetrics(t *testing.T, model, valDir string, pre data.Preprocess, classes int) (top1, loss float64) {
	t.Helper()
	node, nodePath := testenv.ORT(t)
	val, err := data.ImageFolder(valDir)
	if err != nil {
		t.Fatal(err)
	}
	l := &data.Loader{Data: val, Transform: data.EvalTransform{P: pre}, BatchSize: val.Len()}
	ch, errf := l.Epoch(context.Background(), 0)
	batch := <-ch
	for range ch {
	}
	if err := errf(); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 4*len(batch.X))
	for i, v := range batch.X {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	in := filepath.Join(t.TempDir(), "input.bin")
	if err := os.WriteFile(in, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	n, s := batch.Len(), batch.Size
	cmd := exec.Command(node, "../testdata/gen/ort_run.js", model, "input", in, fmt.Sprintf("%d,3,%d,%d", n, s, s))
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ort_run.js: %v", err)
	}
	var ort struct {
		Dims []int     `json:"dims"`
		Data []float64 `json:"data"`
	}
	if err := json.Unmarshal(out, &ort); err != nil {
		t.Fatal(err)
	}
	if len(ort.Dims) != 2 || ort.Dims[0] != n || ort.Dims[1] != classes {
		t.Fatalf("ONNX Runtime gave logits of shape %v, want [%d %d]", ort.Dims, n, classes)
	}
	right := 0
	for i := range n {
		row := ort.Data[classes*i : classes*(i+1)]
		best, mx := 0, math.Inf(-1)
		for k, v := range row {
			if v > mx {
				best, mx = k, v
			}
		}
		sum := 0.0
		for _, v := range row {
			sum += math.Exp(v - mx)
		}
		loss += mx + math.Log(sum) - row[batch.Labels[i]]
		if best == batch.Labels[i] {
			right++
		}
	}
	return float64(right) / float64(n), loss / float64(n)
}

// TestONNXBackboneStrategies fine-tunes torch exports of resnet18 (32×32,
// testdata/gen/finetune_onnx_backbone.py: the default export, BatchNorms
// folded, and one exported with --keep-bn) with every strategy through
// Finetune, on three classes told apart by their dominant colour. For each:
// last.onnx keeps bit for bit every initializer the strategy freezes and
// changes every one it trains (the parameters, and the running statistics
// of the BatchNormalization nodes it trains), the kept initializers being
// worked out from the ONNX file, not from the code under test (partial
// --unfreeze 2: the initializers of the last two nodes that read any before
// the last Gemm); the training loss of the last epoch is below the first's;
// and ONNX Runtime running best.onnx on the validation images gives the
// top-1 of metrics.json and its loss within 1e-4 relative (ckpt's executor
// and ONNX Runtime agree to about 1e-5 on a forward pass; the loss is a mean
// over 6 images).
func TestONNXBackboneStrategies(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping torch and ONNX Runtime interop in -short mode")
	}
	dir := t.TempDir()
	folded, bn := exportBackbone(t, dir, false), exportBackbone(t, dir, true)
	dataDir := filepath.Join(dir, "data")
	makeData(t, filepath.Join(dataDir, "train"), 3, 6)
	makeData(t, filepath.Join(dataDir, "val"), 3, 2)
	all := func(stages [][]string, _ int) map[string]bool {
		m := map[string]bool{}
		for _, s := range stages {
			for _, n := range s {
				m[n] = true
			}
		}
		return m
	}
	tests := []struct {
		name    string
		model   string
		st      Strategy
		mod     func(c *Config)
		trained func(stages [][]string, k int) map[string]bool // backbone initializers that must change
	}{
		{"head-no-cache", bn, Head, func(c *Config) { c.NoCache = true }, func([][]string, int) map[string]bool { return nil }},
		{"partial-bn", bn, Partial, func(c *Config) { c.Unfreeze, c.BatchSize, c.LR = 2, 6, 0.01 }, func(s [][]string, k int) map[string]bool { return all(s[len(s)-k:], 0) }},
		{"partial-folded", folded, Partial, func(c *Config) { c.Unfreeze = 3 }, func(s [][]string, k int) map[string]bool { return all(s[len(s)-k:], 0) }},
		{"full-bn", bn, Full, func(c *Config) { c.LR, c.BackboneLRMult, c.BatchSize = 0.01, 0.1, 6 }, all},
		{"full-folded", folded, Full, func(c *Config) { c.LR, c.BackboneLRMult = 0.02, 0.1 }, all},
		{"scratch-bn", bn, Scratch, func(c *Config) { c.LR, c.BatchSize = 0.01, 6 }, all},
		{"auto", folded, Auto, func(*Config) {}, func([][]string, int) map[string]bool { return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Weights: tt.model, Data: dataDir, Out: filepath.Join(dir, "run-"+tt.name), Strategy: tt.st,
				Epochs: 4, BatchSize: 4, LR: 0.05, Momentum: 0.9, NoAugment: true, Seed: 1, Workers: 2}
			tt.mod(&cfg)
			var logs []string
			res, err := Finetune(context.Background(), cfg, Hooks{Log: func(l string) { logs = append(logs, l) }})
			if err != nil {
				t.Fatal(err)
			}
			if tt.st == Auto && (res.Auto == nil || res.Strategy != res.Auto.Strategy || !res.Cached) {
				t.Fatalf("auto: got %+v, strategy %s, cached %v; want the measured choice, trained on cached features", res.Auto, res.Strategy, res.Cached)
			}
			if tt.st == Head && res.Cached {
				t.Errorf("--no-cache: the run used cached features")
			}
			stages, head := paramNodes(t, tt.model)
			trained := tt.trained(stages, cfg.Unfreeze)
			before, after := onnxInits(t, tt.model), onnxInits(t, filepath.Join(cfg.Out, "last.onnx"))
			for _, h := range head {
				if sh := after[h].Shape(); sh[0] != 3 {
					t.Errorf("classifier %s has shape %v, want 3 outputs", h, sh)
				}
			}
			changed := 0
			for name, bx := range before {
				if slices.Contains(head, name) {
					continue
				}
				ax, ok := after[name]
				if !ok {
					t.Errorf("last.onnx lost initializer %s", name)
					continue
				}
				same := slices.Equal(ax.Shape(), bx.Shape()) && slices.Equal(ax.Data(), bx.Data())
				if !same {
					changed++
				}
				switch {
				case same && trained[name]:
					t.Errorf("trained initializer %s is unchanged", name)
				case !same && !trained[name]:
					t.Errorf("frozen initializer %s changed", name)
				}
			}
			if first, last := res.History[0].TrainLoss, res.History[len(res.History)-1].TrainLoss; !(last < first) {
				t.Errorf("training loss went from %v (epoch 1) to %v (epoch %d)", first, last, len(res.History))
			}
			var rc RunConfig
			b, err := os.ReadFile(filepath.Join(cfg.Out, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &rc); err != nil {
				t.Fatal(err)
			}
			top1, loss := ortValMetrics(t, filepath.Join(cfg.Out, "best.onnx"), filepath.Join(dataDir, "val"), rc.Preprocess, 3)
			if top1 != res.Val.Top1 || math.Abs(loss-res.Val.Loss) > 1e-4*loss {
				t.Errorf("metrics.json: top-1 %v loss %v; ONNX Runtime on best.onnx: top-1 %v loss %v", res.Val.Top1, res.Val.Loss, top1, loss)
			}
			t.Logf("%s: %d backbone initializers changed; train loss %.4f -> %.4f; val top-1 %v loss %.6f (ONNX Runtime %.6f); unfrozen %v",
				res.Strategy, changed, res.History[0].TrainLoss, res.History[len(res.History)-1].TrainLoss, top1, res.Val.Loss, loss, rc.Unfrozen)
			for _, l := range logs {
				if strings.HasPrefix(l, "note:") || strings.HasPrefix(l, "scratch:") || strings.HasPrefix(l, "partial:") {
					t.Log(l)
				}
			}
		})
	}
}

// TestONNXBackboneResume interrupts a full fine-tuning of an ONNX backbone
// with BatchNorms (testdata/gen/finetune_onnx_backbone.py --keep-bn) after
// its first epoch and resumes it: the losses of every epoch, and last.onnx's
// initializers (parameters and running statistics), must equal those of the
// uninterrupted run bit for bit.
func TestONNXBackboneResume(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping torch interop in -short mode")
	}
	dir := t.TempDir()
	bn := exportBackbone(t, dir, true)
	makeData(t, filepath.Join(dir, "data"), 2, 6)
	cfg := Config{Weights: bn, Data: filepath.Join(dir, "data"), Out: filepath.Join(dir, "whole"), Strategy: Full,
		Epochs: 3, BatchSize: 4, LR: 0.02, Momentum: 0.9, ValSplit: 0.25, NoAugment: true, Seed: 1, Workers: 2}
	resumeMatches(t, cfg, filepath.Join(dir, "part"), 1)
	w, r := onnxInits(t, filepath.Join(dir, "whole", "last.onnx")), onnxInits(t, filepath.Join(dir, "part", "last.onnx"))
	for name, x := range w {
		if y := r[name]; y == nil || !slices.Equal(x.Data(), y.Data()) {
			t.Errorf("last.onnx's %s differs between the uninterrupted and the resumed run", name)
		}
	}
}

// TestONNXReInit checks scratch's re-initialisation of an imported graph
// (testdata/gen/finetune_onnx_backbone.py --keep-bn) against torch's
// defaults for new layers: every Conv and Gemm weight and bias within
// ±1/sqrt(fan_in) with the variance of that uniform distribution (within
// 10% for tensors of at least 4096 elements: the sample variance's relative
// standard error there is below 2%), BatchNorm scale 1, bias 0, running
// mean 0 and variance 1, and nothing left at its exported value; and that
// partial refuses an --unfreeze beyond the graph's 40 stages.
func TestONNXReInit(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping torch interop in -short mode")
	}
	path := exportBackbone(t, t.TempDir(), true)
	m, err := NewModel(ONNXArch, path, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer m.ONNX.Close()
	if len(m.Stages) != 40 { // 20 Conv and 20 BatchNormalization nodes before the classifier
		t.Errorf("got %d stages, want 40: %v", len(m.Stages), m.Stages)
	}
	for _, k := range []int{0, len(m.Stages) + 1} {
		if err := m.Apply(Partial, k); err == nil || !strings.Contains(err.Error(), "40 stages") {
			t.Errorf("partial --unfreeze %d: got %v, want an error saying there are 40 stages", k, err)
		}
	}
	nn.ManualSeed(7)
	if kept := m.reinitONNX(); len(kept) != 0 {
		t.Errorf("parameters left at their exported values: %v", kept)
	}
	checked := 0
	for _, nd := range m.Graph.Nodes() {
		in := func(k int) *nn.Tensor {
			if k < len(nd.Inputs) {
				return m.Graph.Live(nd.Inputs[k])
			}
			return nil
		}
		switch nd.Op {
		case "Conv", "Gemm":
			w := in(1)
			fanIn, _ := nn.FanInAndFanOut(w.Shape())
			bound := 1 / math.Sqrt(float64(fanIn))
			for k, x := range []*nn.Tensor{w, in(2)} {
				if x == nil {
					continue
				}
				s, mx := 0.0, 0.0
				for _, v := range x.Data() {
					s += float64(v) * float64(v)
					mx = math.Max(mx, math.Abs(float64(v)))
				}
				if mx > bound {
					t.Errorf("%s input %d: |x| up to %v, beyond torch's bound %v", nd.Describe(), k+1, mx, bound)
				}
				if n := x.Numel(); n >= 4096 {
					if v, want := s/float64(n), bound*bound/3; math.Abs(v-want) > 0.1*want {
						t.Errorf("%s input %d: variance %v, want %v", nd.Describe(), k+1, v, want)
					}
				}
				checked++
			}
		case "BatchNormalization":
			for k, want := range []float32{1, 0, 0, 1} {
				for _, v := range in(k + 1).Data() {
					if v != want {
						t.Fatalf("%s input %d: got %v, want %v", nd.Describe(), k+2, v, want)
					}
				}
			}
		}
	}
	if checked != 22 {
		t.Errorf("checked %d Conv/Gemm tensors, want 22 (resnet18's 20 Conv weights, the Gemm's weight and bias)", checked)
	}
}

// TestONNXBackboneFullFidelity trains the BatchNorm-preserving resnet18
// export with the full strategy, the backbone at 0.1 × lr in a parameter
// group of its own, for 2 SGD steps through ckpt finetune's code path
// (NewModel, Apply, newOptimizer, the Trainer) and compares with torch
// training the same model from the same new classifier on the same batches
// (testdata/gen/onnx_backbone_full_fidelity.py, a fresh seed): each step's
// loss within 1e-3 relative (the fidelity bound of issue 10), and after the
// last step the change of every parameter and running statistic within
// forcedStateTol of torch's (relative, in the Euclidean norm of the tensor),
// the bounds of one teacher-forced segment of TestTorchFidelity (whose
// full-onnx run trains the same kind of export, pretrained, for 100 steps).
//
// The bounds are those because no float32 implementation can be held to
// rounding here: each step has ReLU inputs and max-pool windows within
// rounding of a tie, which another summation order breaks the other way.
// Seed 902 at 3 steps: at step 2 one element before layer1.1's last ReLU
// was -1.4e-7 in float64, -1.6e-7 in torch's float32 and positive in
// ckpt's; that one element's gradient was a quarter of bn2.bias's for its
// channel. With torch nudged there by 3e-7 every step-2 gradient of ckpt's
// was within 2e-5 of torch's; without, the step-3 loss parted by 4.3e-4 and
// layer4's weight changes by up to 12% (of the largest element's change).
// A wrong learning rate group, a frozen tensor or a BatchNorm momentum of
// 0.01 instead of 0.1 is off by 0.9 or more. CKPT_FIDELITY_SEED replays a
// seed.
func TestONNXBackboneFullFidelity(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping torch interop in -short mode")
	}
	py := testenv.Python(t)
	dir := t.TempDir()
	seed := time.Now().UnixNano() % 1000
	if v, err := strconv.ParseInt(os.Getenv("CKPT_FIDELITY_SEED"), 10, 64); err == nil {
		seed = v
	}
	if b, err := exec.Command(py, "../testdata/gen/onnx_backbone_full_fidelity.py", "--out-dir", dir, "--seed", fmt.Sprint(seed), "--steps", "2").CombinedOutput(); err != nil {
		t.Fatalf("generator: %v\n%s", err, b)
	}
	t.Logf("seed %d", seed)
	var ref struct {
		Losses   []float64 `json:"losses"`
		Losses64 []float64 `json:"losses_float64"`
		LR       float64   `json:"lr"`
		Mult     float64   `json:"backbone_lr_mult"`
		Classes  int       `json:"classes"`
		Momentum float64   `json:"momentum"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "losses.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	bt := readState(t, filepath.Join(dir, "batches.pt"))
	bc, err := formats.Open(filepath.Join(dir, "batches.pt"))
	if err != nil {
		t.Fatal(err)
	}
	x, err := nn.FromStored(bc.Tensor("x"))
	if err != nil {
		t.Fatal(err)
	}
	y, err := nn.FromStored(bc.Tensor("y"))
	bc.Close()
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(ONNXArch, filepath.Join(dir, "backbone.onnx"), ref.Classes)
	if err != nil {
		t.Fatal(err)
	}
	defer m.ONNX.Close()
	copy(m.Head.Weight.Data(), bt["head.weight"])
	copy(m.Head.Bias.Data(), bt["head.bias"])
	if err := m.Apply(Full, 0); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Optimizer: "sgd", LR: ref.LR, Momentum: ref.Momentum, BackboneLRMult: ref.Mult, Epochs: 1}
	opt, err := newOptimizer(cfg, m, Full, m.Module)
	if err != nil {
		t.Fatal(err)
	}
	sched, err := newSchedule(opt, cfg)
	if err != nil {
		t.Fatal(err)
	}
	classes := make([]string, ref.Classes)
	for i := range classes {
		classes[i] = fmt.Sprint(i)
	}
	rec := &lossRecorder{}
	tr := &Trainer{Net: m.Module, Opt: opt, Sched: sched, Loss: nn.NewCrossEntropyLoss(), Train: tensorBatches{x, y, 0, x.Shape()[0]},
		Classes: classes, Epochs: 1, Callbacks: []Callback{rec}}
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(rec.losses) != len(ref.Losses) {
		t.Fatalf("got %d steps, want %d", len(rec.losses), len(ref.Losses))
	}
	worst, cond := 0.0, 0.0
	for i, w := range ref.Losses {
		cond = math.Max(cond, math.Abs(ref.Losses64[i]-w)/math.Abs(w))
		rel := math.Abs(rec.losses[i]-w) / math.Abs(w)
		worst = math.Max(worst, rel)
		if rel > 1e-3 {
			t.Errorf("step %d: loss %.7g, torch %.7g (relative difference %.2g, bound 1e-3)", i+1, rec.losses[i], w, rel)
		}
	}
	// Each tensor's change over the run against torch's, and torch's
	// float64 run's against its float32 one's for scale.
	init := onnxInits(t, filepath.Join(dir, "backbone.onnx"))
	init["fc.weight"], init["fc.bias"] = nn.New(bt["head.weight"], len(bt["head.weight"])), nn.New(bt["head.bias"], len(bt["head.bias"]))
	final, final64 := readState(t, filepath.Join(dir, "final.pt")), readState(t, filepath.Join(dir, "final_float64.pt"))
	worstT, worstGap, worstName, compared := 0.0, 0.0, "", 0
	for name, want := range final {
		if strings.HasSuffix(name, "num_batches_tracked") {
			continue
		}
		lt, it := m.Graph.Live(name), init[name] // the export keeps torch's names; fc is the new classifier
		if lt == nil || it == nil || lt.Numel() != len(want) || it.Numel() != len(want) {
			t.Errorf("torch's %s: ckpt has no tensor of %d elements by that name", name, len(want))
			continue
		}
		rel, gap := relDiff(lt.Data(), want, it.Data()), relDiff(final64[name], want, it.Data())
		if rel > worstT {
			worstT, worstName = rel, name
		}
		worstGap = math.Max(worstGap, gap)
		if rel > forcedStateTol || slices.Equal(want, it.Data()) {
			t.Errorf("%s after %d steps: ckpt's change differs from torch's by %.2g of it (bound %g; torch float32 vs float64 %.2g)", name, len(ref.Losses), rel, forcedStateTol, gap)
		}
		compared++
	}
	if compared != 102 {
		t.Errorf("compared %d tensors, want 102 (resnet18's 20 convolutions, 20 BatchNorms of 4 tensors and fc's 2)", compared)
	}
	t.Logf("%d steps: losses within %.2g (torch float32/float64 %.2g); changes within %.2g (%s; torch float32/float64 %.2g)", len(ref.Losses), worst, cond, worstT, worstName, worstGap)
}

// writeSharedGraph writes a small ONNX classifier whose second weight is
// read by two convolutions: conv1(w1, b1), conv2(w2, b2), conv3(w2, b3),
// each followed by a Relu, then global average pooling and a Gemm
// classifier (hw, hb, transB=1) of 10 classes, for images [N, 3, 8, 8].
func writeSharedGraph(t *testing.T, path string) {
	t.Helper()
	r := rand.New(rand.NewPCG(11, 12))
	init := func(name string, scale float64, shape ...int) *onnx.TensorProto {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float64, n)
		for i := range v {
			v[i] = scale * (2*r.Float64() - 1)
		}
		p, err := onnximport.ProtoFromValue(name, graph.FromFloat64s(graph.Float32, shape, v))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	attr := func(name string, v ...int64) *onnx.Attribute {
		return &onnx.Attribute{Name: name, Type: onnx.AttrInts, Ints: v}
	}
	conv := func(name, in, w, b, out string) *onnx.Node {
		return &onnx.Node{OpType: "Conv", Name: name, Input: []string{in, w, b}, Output: []string{out},
			Attribute: []*onnx.Attribute{attr("kernel_shape", 3, 3), attr("pads", 1, 1, 1, 1)}}
	}
	relu := func(in, out string) *onnx.Node {
		return &onnx.Node{OpType: "Relu", Input: []string{in}, Output: []string{out}}
	}
	m := &onnx.Model{IRVersion: 8, OpsetImport: []*onnx.OperatorSetID{{Version: 13}}, Graph: &onnx.Graph{
		Name: "shared",
		Node: []*onnx.Node{
			conv("conv1", "input", "w1", "b1", "c1"), relu("c1", "r1"),
			conv("conv2", "r1", "w2", "b2", "c2"), relu("c2", "r2"),
			conv("conv3", "r2", "w2", "b3", "c3"), relu("c3", "r3"),
			{OpType: "GlobalAveragePool", Input: []string{"r3"}, Output: []string{"p"}},
			{OpType: "Flatten", Input: []string{"p"}, Output: []string{"f"}},
			{OpType: "Gemm", Name: "fc", Input: []string{"f", "hw", "hb"}, Output: []string{"logits"},
				Attribute: []*onnx.Attribute{{Name: "transB", Type: onnx.AttrInt, I: 1}}},
		},
		Initializer: []*onnx.TensorProto{init("w1", 0.3, 4, 3, 3, 3), init("b1", 0.1, 4), init("w2", 0.3, 4, 4, 3, 3),
			init("b2", 0.1, 4), init("b3", 0.1, 4), init("hw", 0.5, 10, 4), init("hb", 0.1, 10)},
		Input:  []*onnx.ValueInfo{onnx.TensorValue("input", onnx.Float, -1, 3, 8, 8)},
		Output: []*onnx.ValueInfo{onnx.TensorValue("logits", onnx.Float, -1, 10)},
	}}
	if err := onnx.Write(path, m); err != nil {
		t.Fatal(err)
	}
}

// TestONNXPartialSharedParameter fine-tunes an ONNX backbone in which one
// weight (w2) is read by two convolutions with partial: a parameter
// belongs to the stage of the first node that reads it, so the stages are
// conv1 (w1, b1), conv2 (w2, b2) and conv3 (b3). --unfreeze 1 must train
// b3 and leave w2 as exported although conv3 reads it; --unfreeze 2 trains
// w2 (through both its uses), b2 and b3. last.onnx keeps w2 one
// initializer read by both nodes.
func TestONNXPartialSharedParameter(t *testing.T) {
	dir := t.TempDir()
	backbone := filepath.Join(dir, "shared.onnx")
	writeSharedGraph(t, backbone)
	dataDir := filepath.Join(dir, "data")
	makeData(t, filepath.Join(dataDir, "train"), 3, 4)
	makeData(t, filepath.Join(dataDir, "val"), 3, 2)
	m, err := NewModel(ONNXArch, backbone, 3)
	if err != nil {
		t.Fatal(err)
	}
	m.ONNX.Close()
	if got := strings.Join(m.Stages, ","); got != "conv1,conv2,conv3" {
		t.Fatalf("got stages %s, want conv1,conv2,conv3", got)
	}
	for _, tt := range []struct {
		unfreeze int
		trained  []string
	}{
		{1, []string{"b3"}},
		{2, []string{"w2", "b2", "b3"}},
	} {
		t.Run(fmt.Sprint("unfreeze-", tt.unfreeze), func(t *testing.T) {
			cfg := Config{Weights: backbone, Data: dataDir, Out: filepath.Join(dir, fmt.Sprint("run", tt.unfreeze)), Strategy: Partial,
				Unfreeze: tt.unfreeze, Epochs: 2, BatchSize: 4, LR: 0.1, Momentum: 0.9, NoAugment: true, Seed: 1, Workers: 2}
			if _, err := Finetune(context.Background(), cfg, Hooks{}); err != nil {
				t.Fatal(err)
			}
			before, after := onnxInits(t, backbone), onnxInits(t, filepath.Join(cfg.Out, "last.onnx"))
			for _, name := range []string{"w1", "b1", "w2", "b2", "b3"} {
				changed := !slices.Equal(before[name].Data(), after[name].Data())
				if want := slices.Contains(tt.trained, name); changed != want {
					t.Errorf("%s: changed %v, want %v (trained: %v)", name, changed, want, tt.trained)
				}
			}
			if len(after) != len(before) {
				t.Errorf("last.onnx has %d initializers, want the export's %d", len(after), len(before))
			}
			stages, _ := paramNodes(t, filepath.Join(cfg.Out, "last.onnx"))
			if len(stages) != 3 || !slices.Equal(stages[1], []string{"w2", "b2"}) || !slices.Equal(stages[2], []string{"w2", "b3"}) {
				t.Errorf("last.onnx: got the convolutions reading %v, want conv2 and conv3 both reading w2", stages)
			}
		})
	}
}
