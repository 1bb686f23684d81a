package train

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ckptkit/ckpt/data"
	"github.com/ckptkit/ckpt/data/transforms"
	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/formats/pytorch"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/optim"
	"github.com/ckptkit/ckpt/pickle"
)

// Config is a fine-tuning run: what `ckpt finetune` takes. Its JSON form
// (with the classes, the preprocessing and the strategy's reasons added) is
// the run directory's config.json.
type Config struct {
	Arch    string `json:"arch"`
	Weights string `json:"weights,omitempty"`
	Data    string `json:"data"`
	Out     string `json:"-"`

	Strategy       Strategy `json:"strategy"`
	Unfreeze       int      `json:"unfreeze,omitempty"`
	BackboneLRMult float64  `json:"backbone_lr_mult"`

	Optimizer      string  `json:"optimizer"` // sgd, adam, adamw
	LR             float64 `json:"lr"`
	Momentum       float64 `json:"momentum"`
	Nesterov       bool    `json:"nesterov"`
	WeightDecay    float64 `json:"weight_decay"`
	LabelSmoothing float64 `json:"label_smoothing"`
	WarmupEpochs   int     `json:"warmup_epochs"`
	Epochs         int     `json:"epochs"`
	BatchSize      int     `json:"batch_size"`
	Seed           uint64  `json:"seed"`
	Patience       int     `json:"patience"`
	// TimeLimit is written to config.json by RunConfig.TimeLimit.
	TimeLimit time.Duration `json:"-"`

	ValSplit  float64 `json:"val_split"`
	ImageSize int     `json:"image_size,omitempty"`
	NoAugment bool    `json:"no_augment"`
	// ColorJitter is torchvision's ColorJitter as "B,C,S,H" ("" for none)
	// and TrivialAugment turns on TrivialAugmentWide, both after the flip.
	ColorJitter    string `json:"color_jitter,omitempty"`
	TrivialAugment bool   `json:"trivial_augment,omitempty"`
	SkipBad        bool   `json:"skip_bad"`
	// Workers is machine-local, not in config.json: the batches do not
	// depend on it (data.Loader), and its default is this machine's cores.
	Workers int `json:"-"`

	// NoCache trains a frozen backbone's classifier on images (the
	// backbone forward on every batch) instead of cached features.
	NoCache bool `json:"no_cache"`
	// CacheViews is the number of augmented views cached per image; 0
	// caches the evaluation view only.
	CacheViews int `json:"cache_views"`
	// CacheDir keeps the features on disk for later runs ("" keeps them in
	// memory only).
	CacheDir string `json:"cache_dir,omitempty"`

	// Resume continues the run in this directory from its checkpoint.
	Resume string `json:"-"`
	// Force allows writing into a run directory that has files.
	Force bool `json:"-"`
}

// configNotWritten lists the Config fields config.json leaves out, and why
// (a test checks that every other field is written).
var configNotWritten = map[string]string{
	"Out":     "the run directory is where config.json is",
	"Workers": "machine-local: the batches do not depend on it, its default is this machine's cores",
	"Resume":  "how this invocation started, not a setting of the run (the run's own directory)",
	"Force":   "permission to overwrite, not a setting of the run",
}

// Defaults fills the zero fields with ckpt finetune's defaults.
func (c *Config) Defaults() {
	if c.Strategy == "" {
		c.Strategy = Head
	}
	if c.BackboneLRMult == 0 {
		c.BackboneLRMult = 1
	}
	if c.Optimizer == "" {
		c.Optimizer = "sgd"
	}
	if c.LR == 0 {
		c.LR = 0.01
	}
	if c.Epochs == 0 {
		c.Epochs = 10
	}
	if c.BatchSize == 0 {
		c.BatchSize = 32
	}
}

// Choice is what the auto strategy measured and decided.
type Choice struct {
	Strategy Strategy `json:"strategy"`
	Cell     string   `json:"cell"`
	Reason   string   `json:"reason"`
	Warning  string   `json:"warning,omitempty"`
	// Images is the training set's size, PerClass its mean per class.
	Images   int     `json:"images"`
	PerClass float64 `json:"images_per_class"`
	// KNN is the leave-one-out 1-nearest-neighbour accuracy of the
	// pretrained features, Chance the majority class's share, Similarity
	// (KNN-Chance)/(1-Chance).
	KNN        float64 `json:"knn_accuracy"`
	Chance     float64 `json:"chance"`
	Similarity float64 `json:"similarity"`
}

// Thresholds of the auto strategy's table.
const (
	// PlentyPerClass is the mean number of training images per class from
	// which a dataset counts as large.
	PlentyPerClass = 500
	// SimilarAbove is the similarity from which the data counts as
	// resembling the pretraining data.
	SimilarAbove = 0.5
	// knnSample bounds the images the similarity is measured on.
	knnSample = 2000
)

// Choose picks the cell of the transfer-learning table for a training set
// of the given labels and pretrained features.
func Choose(feats [][]float32, labels []int, classes int) Choice {
	var fs [][]float32
	var ls []int
	for i, f := range feats {
		if f != nil {
			fs, ls = append(fs, f), append(ls, labels[i])
		}
	}
	c := Choice{Images: len(ls), PerClass: float64(len(ls)) / float64(max(1, classes))}
	counts := make([]int, classes)
	for _, l := range ls {
		counts[l]++
	}
	for _, n := range counts {
		c.Chance = math.Max(c.Chance, float64(n)/float64(max(1, len(ls))))
	}
	step := max(1, len(fs)/knnSample)
	var sf [][]float32
	var sl []int
	for i := 0; i < len(fs); i += step {
		sf, sl = append(sf, normalized(fs[i])), append(sl, ls[i])
	}
	right := 0
	for i := range sf {
		best, bj := math.Inf(-1), -1
		for j := range sf {
			if i == j {
				continue
			}
			d := 0.0
			for k, v := range sf[i] {
				d += float64(v) * float64(sf[j][k])
			}
			if d > best {
				best, bj = d, j
			}
		}
		if bj >= 0 && sl[bj] == sl[i] {
			right++
		}
	}
	if len(sf) > 1 {
		c.KNN = float64(right) / float64(len(sf))
	}
	if c.Chance < 1 {
		c.Similarity = (c.KNN - c.Chance) / (1 - c.Chance)
	}
	plenty := c.PerClass >= PlentyPerClass
	similar := c.Similarity >= SimilarAbove
	sz := fmt.Sprintf("%.0f images per class (large from %d)", c.PerClass, PlentyPerClass)
	sim := fmt.Sprintf("1-NN accuracy on the pretrained features %.3f against chance %.3f: similarity %.2f (similar from %.1f)", c.KNN, c.Chance, c.Similarity, SimilarAbove)
	switch {
	case !plenty && similar:
		c.Strategy, c.Cell = Head, "little data, similar"
	case plenty && similar:
		c.Strategy, c.Cell = Full, "plenty of data, similar"
	case plenty && !similar:
		c.Strategy, c.Cell = Scratch, "plenty of data, dissimilar"
	default:
		c.Strategy, c.Cell = Head, "little data, dissimilar"
		c.Warning = "transfer learning is not advised here: the pretrained features separate these classes poorly and there is too little data to learn new ones; training only a new classifier on the frozen features (strategy head), the choice least able to overfit"
	}
	c.Reason = sz + "; " + sim
	return c
}

func normalized(v []float32) []float32 {
	s := 0.0
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	s = math.Sqrt(s)
	if s == 0 {
		s = 1
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) / s)
	}
	return out
}

// Result is what a run produced.
type Result struct {
	Run        string       `json:"run"`
	Arch       string       `json:"arch"`
	Strategy   Strategy     `json:"strategy"`
	Auto       *Choice      `json:"auto,omitempty"`
	Classes    []string     `json:"classes"`
	Epochs     int          `json:"epochs"`
	BestEpoch  int          `json:"best_epoch"`
	Val        *Metrics     `json:"val,omitempty"`
	Seconds    float64      `json:"seconds"`
	Cached     bool         `json:"cached_features"`
	Skipped    int          `json:"skipped_images"`
	StopReason string       `json:"stop_reason"`
	History    []EpochStats `json:"history"`
}

// RunConfig is config.json.
type RunConfig struct {
	Config
	// TimeLimit is Config.TimeLimit in Go's duration syntax, as
	// --time-limit takes it ("30m0s"), "" for none. It records this
	// invocation's budget; --resume does not take it back (Config does not
	// read it), a resumed run has the time limit its own command line gives.
	TimeLimit  string          `json:"time_limit,omitempty"`
	Classes    []string        `json:"classes"`
	Preprocess data.Preprocess `json:"preprocess"`
	Auto       *Choice         `json:"auto,omitempty"`
	Unfrozen   []string        `json:"unfrozen_stages,omitempty"`
	DataLayout string          `json:"data_layout"`
	Train      int             `json:"train_images"`
	ValImages  int             `json:"val_images"`
}

// newRunConfig returns config.json's settings part for cfg.
func newRunConfig(cfg Config) RunConfig {
	rc := RunConfig{Config: cfg}
	if cfg.TimeLimit > 0 {
		rc.TimeLimit = cfg.TimeLimit.String()
	}
	return rc
}

// Hooks let a caller watch a run: Log receives one line at a time (notes,
// warnings, epoch lines), Progress every batch (training and extraction).
type Hooks struct {
	Log      func(line string)
	Batch    func(phase string, epoch, done, total int, loss float64)
	EpochEnd func(s *EpochStats, epochs int)
}

// Finetune runs cfg: reads the data, prepares the model for the strategy,
// trains, and writes the run directory cfg.Out. ctx's cancellation (Ctrl-C)
// stops training after the current batch, saves last.* and the checkpoint
// and returns an *Interrupted; the time limit stops it the same way but
// returns the result.
func Finetune(ctx context.Context, cfg Config, hooks Hooks) (*Result, error) {
	cfg.Defaults()
	logf := func(format string, args ...any) {
		if hooks.Log != nil {
			hooks.Log(fmt.Sprintf(format, args...))
		}
	}
	start := time.Now()
	if cfg.Resume != "" {
		cfg.Out = cfg.Resume
	}
	if err := prepareOut(cfg.Out, cfg.Force || cfg.Resume != ""); err != nil {
		return nil, err
	}
	splits, err := data.Open(cfg.Data, data.OpenOptions{ValSplit: cfg.ValSplit, Seed: cfg.Seed})
	if err != nil {
		return nil, err
	}
	classes := splits.Train.Classes
	if len(classes) < 2 {
		return nil, fmt.Errorf("train: %s has %d class, want at least 2", cfg.Data, len(classes))
	}
	if len(splits.MissingInVal) > 0 {
		logf("warning: classes without validation images: %v", splits.MissingInVal)
	}
	nval := 0
	if splits.Val != nil {
		nval = splits.Val.Len()
	}
	logf("data: %d classes, %d training and %d validation images (%s)", len(classes), splits.Train.Len(), nval, splits.Layout)

	// An ONNX backbone is its own architecture: scratch re-initialises it.
	onnxBackbone := IsONNX(cfg.Weights) && (cfg.Arch == "" || cfg.Arch == ONNXArch)
	weights := cfg.Weights
	if cfg.Strategy == Scratch && !onnxBackbone {
		weights = ""
	} else if weights == "" {
		return nil, fmt.Errorf("train: strategy %s needs --weights (or use --strategy scratch)", cfg.Strategy)
	}
	if onnxBackbone {
		cfg.Arch = ONNXArch
	}
	nn.ManualSeed(cfg.Seed)
	model, err := NewModel(cfg.Arch, weights, len(classes))
	if err != nil {
		return nil, err
	}
	reinitONNX := func() {
		nn.ManualSeed(cfg.Seed)
		if kept := model.reinitONNX(); len(kept) > 0 {
			logf("scratch: %d parameters of the ONNX graph keep their exported values (no torch default for their node): %v", len(kept), kept)
		}
	}
	if model.ONNX != nil {
		defer model.ONNX.Close()
		if cfg.Strategy == Scratch {
			reinitONNX()
		}
		if cfg.ImageSize > 0 && model.Graph.Inputs()[0].Shape[2] > 0 && cfg.ImageSize != model.Spec.Preprocess.CropSize {
			return nil, fmt.Errorf("train: --image-size %d: the ONNX model's input is %dx%d", cfg.ImageSize, model.Spec.Preprocess.CropSize, model.Spec.Preprocess.CropSize)
		}
	}
	pp := model.Spec.Preprocess
	pre := data.Preprocess{Resize: pp.ResizeSize, Crop: pp.CropSize, Interpolation: transforms.Interpolation(pp.Interpolation), Mean: pp.Mean, Std: pp.Std}.WithImageSize(cfg.ImageSize)
	evalT := data.EvalTransform{P: pre}
	tt := data.NewTrainTransform(pre)
	if cfg.ColorJitter != "" {
		if tt.Jitter, err = data.ParseColorJitter(cfg.ColorJitter); err != nil {
			return nil, err
		}
	}
	tt.Trivial = cfg.TrivialAugment
	var trainT data.Transform = tt
	if cfg.NoAugment {
		trainT = evalT
	}
	loader := func(d *data.Dataset, t data.Transform, shuffle bool) *data.Loader {
		return &data.Loader{Data: d, Transform: t, BatchSize: cfg.BatchSize, Shuffle: shuffle, Seed: cfg.Seed,
			Workers: cfg.Workers, SkipBad: cfg.SkipBad}
	}
	res := &Result{Run: cfg.Out, Arch: cfg.Arch, Classes: classes}
	var bad []*data.Loader
	// skipped are the unreadable images left out (--skip-bad): those the
	// image loaders skipped, and those without features (extracted now or
	// read from the cache), counted once each.
	skipped := map[string]bool{}
	noFeatures := func(d *data.Dataset, feats [][]float32) {
		for i, f := range feats {
			if f == nil {
				skipped[d.Samples[i].Path] = true
			}
		}
	}

	// Features of the frozen backbone, computed once (or read from the
	// cache) for the head strategy and for auto's measurement.
	var trainViews [][][]float32
	var valFeats [][]float32
	features := func() error {
		if trainViews != nil {
			return nil
		}
		var key CacheKey
		if cfg.CacheDir != "" && weights != "" {
			wh, err := FileSHA256(weights)
			if err != nil {
				return err
			}
			pj, _ := json.Marshal(pre)
			if cfg.CacheViews > 0 { // augmented views: the augmentation is part of the key
				pj, _ = json.Marshal(struct {
					Eval        data.Preprocess `json:"eval"`
					ColorJitter string          `json:"color_jitter,omitempty"`
					Trivial     bool            `json:"trivial_augment,omitempty"`
				}{pre, cfg.ColorJitter, cfg.TrivialAugment})
			}
			key = CacheKey{Arch: cfg.Arch, Layer: model.HeadPath + ":input", Preprocess: pj, Views: cfg.CacheViews, Weights: wh}
			if cfg.CacheViews > 0 {
				key.Seed = cfg.Seed
			}
		}
		get := func(split string, d *data.Dataset, views int, t data.Transform) ([][][]float32, error) {
			if key.Weights != "" {
				k := key
				var err error
				if k.Images, err = ImagesSHA256(d); err != nil {
					return nil, err
				}
				v, err := LoadCache(cfg.CacheDir, k, split)
				if err == nil && v != nil {
					logf("features: %s read from the cache in %s", split, cfg.CacheDir)
					return v, nil
				}
				if err != nil {
					logf("features: %v; recomputing", err)
				}
				defer func() {
					if v != nil {
						if err := SaveCache(cfg.CacheDir, k, split, v); err != nil {
							logf("warning: features not cached: %v", err)
						}
					}
				}()
				v, err = extractViews(ctx, model, loader(d, t, false), views, split, hooks)
				return v, err
			}
			return extractViews(ctx, model, loader(d, t, false), views, split, hooks)
		}
		views, t := 1, data.Transform(evalT)
		if cfg.CacheViews > 0 {
			views, t = cfg.CacheViews, trainT
		}
		var err error
		if trainViews, err = get("train", splits.Train, views, t); err != nil {
			return err
		}
		noFeatures(splits.Train, trainViews[0])
		if splits.Val != nil {
			v, err := get("val", splits.Val, 1, evalT)
			if err != nil {
				return err
			}
			valFeats = v[0]
			noFeatures(splits.Val, valFeats)
		}
		return nil
	}

	strategy := cfg.Strategy
	if strategy == Auto {
		if err := features(); err != nil {
			return nil, err
		}
		labels := make([]int, splits.Train.Len())
		for i, s := range splits.Train.Samples {
			labels[i] = s.Label
		}
		ch := Choose(trainViews[0], labels, len(classes))
		res.Auto = &ch
		strategy = ch.Strategy
		logf("auto: cell %q -> strategy %s: %s", ch.Cell, ch.Strategy, ch.Reason)
		if ch.Warning != "" {
			logf("warning: %s", ch.Warning)
		}
		if strategy == Scratch && model.Graph != nil {
			reinitONNX()
		} else if strategy == Scratch {
			nn.ManualSeed(cfg.Seed)
			if model, err = NewModel(cfg.Arch, "", len(classes)); err != nil {
				return nil, err
			}
		}
		if strategy == Full && cfg.BackboneLRMult == 1 {
			cfg.BackboneLRMult = 0.1
		}
	}
	res.Strategy = strategy
	if err := model.Apply(strategy, cfg.Unfreeze); err != nil {
		return nil, err
	}
	if len(model.Unfrozen) > 0 {
		logf("partial: training stages %v and the classifier", model.Unfrozen)
	}
	if model.Graph != nil && strategy != Head && !model.hasBatchNorm() {
		logf("note: the ONNX graph has no BatchNormalization nodes (a default torch export folds them into the convolutions; export with training=TrainingMode.PRESERVE, do_constant_folding=False to train them)")
	}

	var trainSrc, valSrc Source
	var net nn.Module = model.Module
	if strategy == Head && !cfg.NoCache {
		if err := features(); err != nil {
			return nil, err
		}
		res.Cached = true
		net = model.Head
		keep, views := dropMissing(trainViews, sampleLabels(splits.Train))
		trainSrc = &Features{Views: views, Labels: keep, BatchSize: cfg.BatchSize, Shuffle: true, Seed: cfg.Seed}
		if valFeats != nil {
			vl, vv := dropMissing([][][]float32{valFeats}, sampleLabels(splits.Val))
			valSrc = &Features{Views: vv, Labels: vl, BatchSize: cfg.BatchSize}
		}
	} else {
		tl := loader(splits.Train, trainT, true)
		bad = append(bad, tl)
		trainSrc = Images{tl}
		if splits.Val != nil {
			vl := loader(splits.Val, evalT, false)
			bad = append(bad, vl)
			valSrc = Images{vl}
		}
	}

	opt, err := newOptimizer(cfg, model, strategy, net)
	if err != nil {
		return nil, err
	}
	if strategy == Head && net == model.Module && model.Graph == nil {
		net = nn.FrozenBackbone(model.Module, model.Head) // the backbone at inference speed on every batch
	}
	sched, err := newSchedule(opt, cfg)
	if err != nil {
		return nil, err
	}
	rc := newRunConfig(cfg)
	rc.Classes, rc.Preprocess, rc.Auto, rc.Unfrozen = classes, pre, res.Auto, model.Unfrozen
	rc.DataLayout, rc.Train, rc.ValImages = splits.Layout, splits.Train.Len(), nval
	if err := writeJSON(filepath.Join(cfg.Out, "config.json"), rc); err != nil {
		return nil, err
	}
	meta := []formats.Meta{{Key: "arch", Value: cfg.Arch}, {Key: "classes", Value: mustJSON(classes)}, {Key: "preprocess", Value: mustJSON(pre)}}

	w := &runWriter{dir: cfg.Out, model: model.Module, opt: opt, meta: meta, classes: classes, stop: &EarlyStopping{Patience: cfg.Patience, Model: model.Module}}
	if model.ONNX != nil {
		w.onnx = func(path string) error { return model.writeONNX(path, classes, pre) }
	}
	t := &Trainer{Net: net, Opt: opt, Sched: sched, Loss: &nn.CrossEntropyLoss{IgnoreIndex: nn.DefaultIgnoreIndex, LabelSmoothing: cfg.LabelSmoothing},
		Train: trainSrc, Val: valSrc, Classes: classes, Epochs: cfg.Epochs, Seed: cfg.Seed}
	if cfg.Resume != "" {
		if err := w.resume(t); err != nil {
			return nil, err
		}
		logf("resume: %s at epoch %d", cfg.Resume, t.StartEpoch)
	}
	t.Callbacks = []Callback{w.stop, w, hookCallback{hooks, cfg.Epochs}}

	runCtx := ctx
	if cfg.TimeLimit > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, cfg.TimeLimit-time.Since(start))
		defer cancel()
	}
	err = t.Run(runCtx)
	res.History = w.history
	res.Epochs = len(w.history)
	res.StopReason = "epochs"
	if w.stopped {
		res.StopReason = "patience"
	}
	for _, l := range bad {
		for path := range l.Bad() {
			skipped[path] = true
		}
	}
	res.Skipped = len(skipped)
	var intr *Interrupted
	if errors.As(err, &intr) {
		// last.* holds the weights at the interruption; the checkpoints
		// (checkpoint.safetensors, and checkpoint.pt made from it) stay at
		// the end of the last complete epoch, so that --resume repeats the
		// interrupted epoch exactly.
		if serr := w.saveModel("last"); serr != nil {
			return nil, serr
		}
		if serr := w.savedTorchCheckpoint(); serr != nil {
			return nil, serr
		}
		if ctx.Err() != nil {
			return nil, err
		}
		res.StopReason = "time limit"
		logf("time limit: stopped in epoch %d; saved last", intr.Epoch+1)
	} else if err != nil {
		return nil, err
	} else if err := w.finish(); err != nil {
		return nil, err
	}
	res.BestEpoch, res.Val = w.stop.BestEpoch, w.bestVal
	res.Seconds = time.Since(start).Seconds()
	if err := writeJSON(filepath.Join(cfg.Out, "result.json"), res); err != nil {
		return nil, err
	}
	return res, nil
}

func sampleLabels(d *data.Dataset) []int {
	out := make([]int, d.Len())
	for i, s := range d.Samples {
		out[i] = s.Label
	}
	return out
}

// dropMissing removes the images without features from every view.
func dropMissing(views [][][]float32, labels []int) ([]int, [][][]float32) {
	out := make([][][]float32, len(views))
	var keep []int
	for i, l := range labels {
		if views[0][i] == nil {
			continue
		}
		keep = append(keep, l)
		for v := range views {
			out[v] = append(out[v], views[v][i])
		}
	}
	return keep, out
}

func extractViews(ctx context.Context, m *Model, l *data.Loader, views int, split string, hooks Hooks) ([][][]float32, error) {
	out := make([][][]float32, views)
	for v := range views {
		f, err := m.Extract(ctx, l, v, func(done, total int) {
			if hooks.Batch != nil {
				hooks.Batch("features "+split, v, done, total, math.NaN())
			}
		})
		if err != nil {
			return nil, err
		}
		out[v] = f
	}
	return out, nil
}

func newOptimizer(cfg Config, m *Model, st Strategy, net nn.Module) (*optim.Optimizer, error) {
	opts := []optim.Option{optim.LR(cfg.LR), optim.WeightDecay(cfg.WeightDecay)}
	var alg optim.Algorithm
	switch cfg.Optimizer {
	case "sgd":
		alg = optim.SGD
		opts = append(opts, optim.Momentum(cfg.Momentum))
		if cfg.Nesterov {
			opts = append(opts, optim.Nesterov())
		}
	case "adam":
		alg = optim.Adam
	case "adamw":
		alg = optim.AdamW
	default:
		return nil, fmt.Errorf("train: unknown optimizer %q (want sgd, adam or adamw)", cfg.Optimizer)
	}
	if net != m.Module || cfg.BackboneLRMult == 1 || st != Full && st != Partial {
		return optim.New(alg, net.TrainableParameters(), opts...)
	}
	// Two groups: the backbone at lr×mult, then the classifier at lr.
	bopts := append(append([]optim.Option(nil), opts...), optim.LR(cfg.LR*cfg.BackboneLRMult))
	o, err := optim.New(alg, m.BackboneParams(), bopts...)
	if err != nil {
		return nil, err
	}
	if _, err := o.AddParamGroup(m.Head.Parameters(), opts...); err != nil {
		return nil, err
	}
	return o, nil
}

// newSchedule is linear warm-up from 0.1×lr over WarmupEpochs, then cosine
// annealing to 0 over the remaining epochs, stepped once per epoch.
func newSchedule(opt *optim.Optimizer, cfg Config) (optim.Scheduler, error) {
	rest := max(1, cfg.Epochs-cfg.WarmupEpochs)
	cos, err := optim.NewCosineAnnealingLR(opt, rest, 0)
	if err != nil || cfg.WarmupEpochs <= 0 {
		return cos, err
	}
	warm, err := optim.NewLinearLR(opt, 0.1, 1, cfg.WarmupEpochs)
	if err != nil {
		return nil, err
	}
	return optim.NewSequentialLR(opt, []*optim.LRScheduler{warm, cos}, []int{cfg.WarmupEpochs})
}

type hookCallback struct {
	h      Hooks
	epochs int
}

func (c hookCallback) OnBatch(t *Trainer, epoch, batch int, loss float64) {
	if c.h.Batch != nil {
		c.h.Batch("train", epoch, batch, t.Train.NumBatches(), loss)
	}
}

func (c hookCallback) OnEpoch(_ *Trainer, s *EpochStats) error {
	if c.h.EpochEnd != nil {
		c.h.EpochEnd(s, c.epochs)
	}
	return nil
}

func prepareOut(dir string, force bool) error {
	if dir == "" {
		return errors.New("train: no run directory (--out)")
	}
	entries, err := os.ReadDir(dir)
	if err == nil && len(entries) > 0 && !force {
		return fmt.Errorf("train: run directory %s is not empty (use --force to write into it, or --resume to continue it)", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "null"
	}
	return string(b)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(path, append(b, '\n'))
}

// writeFile writes atomically.
func writeFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("train: writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("train: writing %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}

// runWriter is the callback that keeps the run directory current.
type runWriter struct {
	dir     string
	model   nn.Module
	opt     *optim.Optimizer
	meta    []formats.Meta
	classes []string
	stop    *EarlyStopping
	history []EpochStats
	bestVal *Metrics
	stopped bool
	// epochs and sched are the last complete epoch and the schedule, for
	// finish.
	epochs int
	sched  optim.Scheduler
	// onnx, for an ONNX backbone, writes the model with its trained
	// classifier (NAME.onnx beside NAME.safetensors).
	onnx func(path string) error
}

func (w *runWriter) OnBatch(*Trainer, int, int, float64) {}

func (w *runWriter) OnEpoch(t *Trainer, s *EpochStats) error {
	w.history = append(w.history, *s)
	if err := w.writeSummary(); err != nil {
		return err
	}
	if err := w.saveCheckpoint(s.Epoch); err != nil {
		return err
	}
	w.epochs, w.sched = s.Epoch, t.Sched
	if w.stop.BestEpoch == s.Epoch || s.Val == nil {
		if err := w.saveModel("best"); err != nil {
			return err
		}
		if s.Val != nil {
			w.bestVal = s.Val
			if err := writeJSON(filepath.Join(w.dir, "metrics.json"), map[string]any{"epoch": s.Epoch, "val": s.Val, "classes": w.classes}); err != nil {
				return err
			}
			if err := writeFile(filepath.Join(w.dir, "confusion.png"), ConfusionPNG(s.Val)); err != nil {
				return err
			}
		}
	}
	if err := writeFile(filepath.Join(w.dir, "curves.png"), CurvesPNG(w.history)); err != nil {
		return err
	}
	if w.stop.Patience > 0 && s.Epoch-w.stop.BestEpoch >= w.stop.Patience && s.Val != nil {
		w.stopped = true
	}
	return nil
}

func (w *runWriter) writeSummary() error {
	f, err := os.CreateTemp(w.dir, ".summary.csv.tmp-*")
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	defer os.Remove(f.Name())
	cw := csv.NewWriter(f)
	cw.Write([]string{"epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "seconds", "train_seconds", "data_wait_seconds"})
	g := func(v float64) string { return strconv.FormatFloat(v, 'g', 8, 64) }
	sec := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	for _, s := range w.history {
		cw.Write([]string{strconv.Itoa(s.Epoch), g(s.LR), g(s.TrainLoss), g(s.TrainTop1), g(s.ValLoss), g(s.ValTop1), g(s.ValTop5), sec(s.Seconds), sec(s.TrainSeconds), sec(s.DataWait)})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(w.dir, "summary.csv"))
}

func (w *runWriter) saveModel(name string) error {
	sd := w.model.StateDict()
	c := &formats.Checkpoint{Meta: w.meta}
	for _, t := range sd {
		c.Tensors = append(c.Tensors, formats.Named{Name: t.Name, Tensor: t.Tensor})
	}
	for _, ext := range []string{".safetensors", ".pt"} {
		if _, err := formats.Save(filepath.Join(w.dir, name+ext), c, formats.SaveOptions{Force: true}); err != nil {
			return err
		}
	}
	if w.onnx != nil {
		return w.onnx(filepath.Join(w.dir, name+".onnx"))
	}
	return nil
}

// finish writes, at the end of a run, last.* and the files for resuming in
// PyTorch: optimizer.pt, the optimizer's state_dict as torch saves it (for
// optimizer.load_state_dict(torch.load(...)) beside last.pt), and
// checkpoint.pt. They are written once rather than every epoch (the model is
// written several times over in them); checkpoint.safetensors, which
// --resume reads, is written every epoch.
func (w *runWriter) finish() error {
	if err := w.saveModel("last"); err != nil {
		return err
	}
	if w.sched == nil { // no epoch completed
		return nil
	}
	osd := w.opt.StateDict()
	f, err := os.CreateTemp(w.dir, ".optimizer.pt.tmp-*")
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	defer os.Remove(f.Name())
	if err := optim.WriteTorch(f, osd); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(w.dir, "optimizer.pt")); err != nil {
		return err
	}
	return w.saveTorchCheckpoint(w.epochs, w.model.StateDict(), osd, w.sched)
}

// savedTorchCheckpoint writes checkpoint.pt after an interruption, from
// checkpoint.safetensors: the state at the end of the last complete epoch
// (the live model and optimizer are part-way into the next one, and the
// schedule has not yet stepped for it), so that resuming in PyTorch starts
// where --resume does. Without a complete epoch there is nothing to write.
func (w *runWriter) savedTorchCheckpoint() error {
	if w.sched == nil {
		return nil
	}
	path := filepath.Join(w.dir, "checkpoint.safetensors")
	c, err := formats.Open(path)
	if err != nil {
		return err
	}
	defer c.Close()
	model := checkpointModel(c)
	osd, err := optim.FromCheckpoint(c, "optimizer")
	if err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	return w.saveTorchCheckpoint(w.epochs, model, osd, w.sched)
}

// checkpointModel returns the model's state_dict inside a
// checkpoint.safetensors (its "model.*" tensors, without the prefix).
func checkpointModel(c *formats.Checkpoint) nn.StateDict {
	var model nn.StateDict
	for _, n := range c.Tensors {
		if name, ok := cutPrefix(n.Name, "model."); ok {
			model = append(model, nn.Named{Name: name, Tensor: n.Tensor})
		}
	}
	return model
}

// saveCheckpoint writes checkpoint.safetensors after epochs complete
// epochs: "model.*", the optimizer state flattened under "optimizer." and
// the epoch, best epoch and history in its metadata (what --resume reads).
func (w *runWriter) saveCheckpoint(epochs int) error {
	c := &formats.Checkpoint{}
	for _, t := range w.model.StateDict() {
		c.Tensors = append(c.Tensors, formats.Named{Name: "model." + t.Name, Tensor: t.Tensor})
	}
	osd := w.opt.StateDict()
	ts, meta := osd.Flatten("optimizer")
	for _, t := range ts {
		c.Tensors = append(c.Tensors, formats.Named{Name: t.Name, Tensor: t.Tensor})
	}
	c.Meta = append(append(c.Meta, meta...),
		formats.Meta{Key: "epoch", Value: strconv.Itoa(epochs)},
		formats.Meta{Key: "best_epoch", Value: strconv.Itoa(w.stop.BestEpoch)},
		formats.Meta{Key: "best_val_loss", Value: mustJSON(finite(w.stop.Best))},
		formats.Meta{Key: "history", Value: mustJSON(w.history)})
	_, err := formats.Save(filepath.Join(w.dir, "checkpoint.safetensors"), c, formats.SaveOptions{Force: true})
	return err
}

// saveTorchCheckpoint writes checkpoint.pt, the run's state as a PyTorch
// training loop saves it: torch.load gives {"epoch", "model" (the
// state_dict, an OrderedDict), "optimizer" (optimizer.state_dict()),
// "scheduler" (scheduler.state_dict())}, each of which torch's
// load_state_dict takes, so training can resume in PyTorch too. Its
// metadata record holds the run's arch, classes and preprocess, as best.pt's
// does.
func (w *runWriter) saveTorchCheckpoint(epochs int, sd nn.StateDict, osd *optim.StateDict, sched optim.Scheduler) error {
	model := &pickle.Dict{Ordered: true}
	for _, t := range sd {
		model.Keys = append(model.Keys, t.Name)
		model.Values = append(model.Values, t.Tensor)
	}
	opt, err := optim.TorchValue(osd)
	if err != nil {
		return err
	}
	root := &pickle.Dict{Keys: []any{"epoch", "model", "optimizer"}, Values: []any{int64(epochs), model, opt}}
	if s, ok := sched.(interface{ StateDict() map[string]any }); ok {
		root.Keys = append(root.Keys, "scheduler")
		root.Values = append(root.Values, optim.SchedulerValue(s.StateDict()))
	}
	f, err := os.CreateTemp(w.dir, ".checkpoint.pt.tmp-*")
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := pytorch.WriteObjectMeta(f, root, w.meta); err != nil {
		f.Close()
		return fmt.Errorf("train: writing checkpoint.pt: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(w.dir, "checkpoint.pt"))
}

func finite(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return v
}

// resume loads the checkpoint into the model, optimizer and trainer.
func (w *runWriter) resume(t *Trainer) error {
	path := filepath.Join(w.dir, "checkpoint.safetensors")
	c, err := formats.Open(path)
	if err != nil {
		return err
	}
	defer c.Close()
	model := checkpointModel(c)
	if _, err := w.model.LoadStateDict(model, true); err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	md := c.Metadata()
	epoch, err := strconv.Atoi(md["epoch"])
	if err != nil || epoch < 0 || epoch > t.Epochs {
		return fmt.Errorf("train: %s: epoch %q missing or outside 0..%d", path, md["epoch"], t.Epochs)
	}
	// The schedule is a function of the epoch: replay it, then load the
	// optimizer's state (its learning rates are the replayed ones).
	for range epoch {
		t.Sched.Step()
	}
	osd, err := optim.FromCheckpoint(c, "optimizer")
	if err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	if err := w.opt.LoadStateDict(osd); err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	if err := json.Unmarshal([]byte(md["history"]), &w.history); err != nil {
		return fmt.Errorf("train: %s: history: %w", path, err)
	}
	w.stop.BestEpoch, _ = strconv.Atoi(md["best_epoch"])
	var best *float64
	if json.Unmarshal([]byte(md["best_val_loss"]), &best) == nil && best != nil {
		w.stop.Best = *best
		w.stop.best = w.model.StateDict() // the best weights are best.*; early stopping restores from here on
		if b, err := formats.Open(filepath.Join(w.dir, "best.safetensors")); err == nil {
			var sd nn.StateDict
			for _, n := range b.Tensors {
				sd = append(sd, nn.Named{Name: n.Name, Tensor: n.Tensor})
			}
			// Copy the tensors out: the file closes at the end of resume.
			m := w.model.StateDict()
			if _, err := w.model.LoadStateDict(sd, true); err == nil {
				w.stop.best = w.model.StateDict()
			}
			w.model.LoadStateDict(m, true)
			b.Close()
		}
	}
	// The best epoch's validation results, for the result when no later
	// epoch beats it.
	if b, err := os.ReadFile(filepath.Join(w.dir, "metrics.json")); err == nil {
		var m struct {
			Epoch int      `json:"epoch"`
			Val   *Metrics `json:"val"`
		}
		if json.Unmarshal(b, &m) == nil && m.Epoch == w.stop.BestEpoch {
			w.bestVal = m.Val
		}
	}
	t.StartEpoch = epoch
	t.History = append([]EpochStats(nil), w.history...)
	return nil
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return s, false
}

// RunFileMeta returns the class names and evaluation preprocessing of a
// run's best.pt or last.pt: the file's own metadata ("classes" and
// "preprocess", as best.safetensors has them), or, for a file without them
// (runs written before .pt files carried metadata), the config.json of the
// run directory it is in. ok is false for any other file name, or when
// neither has them.
func RunFileMeta(weights string) (classes []string, pre data.Preprocess, ok bool) {
	switch filepath.Base(weights) {
	case "best.pt", "last.pt":
	default:
		return nil, pre, false
	}
	if c, err := formats.Open(weights); err == nil {
		md := c.Metadata()
		c.Close()
		var p data.Preprocess
		if json.Unmarshal([]byte(md["classes"]), &classes) == nil && len(classes) > 0 &&
			json.Unmarshal([]byte(md["preprocess"]), &p) == nil && p.Crop > 0 {
			return classes, p, true
		}
		classes = nil
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(weights), "config.json"))
	if err != nil {
		return nil, pre, false
	}
	var rc struct {
		Classes    []string         `json:"classes"`
		Preprocess *data.Preprocess `json:"preprocess"`
	}
	if json.Unmarshal(b, &rc) != nil || len(rc.Classes) == 0 || rc.Preprocess == nil || rc.Preprocess.Crop <= 0 {
		return nil, pre, false
	}
	return rc.Classes, *rc.Preprocess, true
}
