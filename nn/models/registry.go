package models

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/ckptkit/ckpt/data/transforms"
	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/tensor"
)

// Choice is a yes/no builder option that can also be left unset, so that the
// architecture's default (or, in [Load], what the weights contain) decides.
type Choice int8

// The values of a [Choice].
const (
	Auto Choice = iota // the default: torchvision's, or what the weights show
	Yes
	No
)

// On resolves c with def as the default for Auto.
func (c Choice) On(def bool) bool {
	switch c {
	case Yes:
		return true
	case No:
		return false
	}
	return def
}

// Config holds the options of torchvision's model builders.
type Config struct {
	// NumClasses is the classifier's output size; zero means 1000 in
	// [Build], and in [Load] the size of the weights' classifier.
	NumClasses int
	// AuxLogits builds googlenet's and inception_v3's auxiliary classifiers.
	// Auto: torchvision's builder default (both have them) in Build; in Load,
	// whether the weights contain them.
	AuxLogits Choice
	// TransformInput makes googlenet and inception_v3 rescale an input
	// normalised with ImageNet's mean and std to the [-1, 1] range their
	// original weights expect. torchvision's builders turn it on only when
	// they load torchvision's own pretrained weights, so a model trained
	// from scratch has it off: set No to load such weights. Auto: off in
	// Build (the builders' default), on in Load (right for torchvision's
	// published weights and the models fine-tuned from them).
	TransformInput Choice
	// DropoutP overrides an architecture's classifier dropout probability;
	// zero keeps torchvision's default, a negative value means p = 0.
	DropoutP float64
	// ImageSize is the input size the vision transformers are built for
	// (ViT's image_size, MaxViT's input_size); zero means 224 in Build, and
	// in Load the size the weights' position embedding was made for.
	ImageSize int
	// Weights supplies the tensors the layers are built from (see
	// [nn.Builder]); nil builds freshly initialised weights. Load sets it;
	// every Spec.Build must construct its layers through it.
	Weights *nn.Builder
}

func (c Config) numClasses() int {
	if c.NumClasses <= 0 {
		return 1000
	}
	return c.NumClasses
}

// dropout returns the dropout probability with def as the architecture's
// default.
func (c Config) dropout(def float64) float64 {
	switch {
	case c.DropoutP < 0:
		return 0
	case c.DropoutP > 0:
		return c.DropoutP
	}
	return def
}

// Preprocess is the image transform that a set of torchvision weights expects
// (torchvision.transforms._presets.ImageClassification): resize the shorter
// side to ResizeSize with Interpolation (and antialiasing), center-crop to
// CropSize, scale to [0, 1], normalise with Mean and Std. It is
// [transforms.ImageClassification] itself, so a Spec's Preprocess is the
// transform: spec.Preprocess.Apply(img) gives the model's input.
type Preprocess = transforms.ImageClassification

// Spec describes one architecture of the registry.
type Spec struct {
	// Name is the torchvision builder name, e.g. "resnet18".
	Name string
	// Build constructs the model with cfg's options, taking its tensors from
	// cfg.Weights.
	Build func(cfg Config) (nn.Module, error)
	// Classifier is the state_dict key of the final classifier's weight
	// (e.g. "fc.weight"), whose first dimension is the number of classes.
	Classifier string
	// Preprocess is the transform of torchvision's IMAGENET1K_V1 weights.
	// Register fills it from the table generated from torchvision when it is
	// left zero.
	Preprocess Preprocess
	// Aux lists the state_dict key prefixes of auxiliary heads that weights
	// may or may not contain ("aux1.", "aux2."); Load builds them when the
	// weights have them (see Config.AuxLogits).
	Aux []string
	// Convert, when set, renames the keys of older published weights to
	// the current module names before loading (densenet's "norm.1").
	Convert func(nn.Source) nn.Source
}

var registry = struct {
	sync.RWMutex
	specs map[string]Spec
}{specs: map[string]Spec{}}

// Register adds s to the registry. It panics when the name is taken or the
// spec is incomplete: registrations are made by this package's code, so both
// are programmer errors.
func Register(s Spec) {
	if s.Name == "" || s.Build == nil || s.Classifier == "" {
		panic(fmt.Sprintf("models: Register(%q): spec needs Name, Build and Classifier", s.Name))
	}
	if s.Preprocess == (Preprocess{}) {
		p, ok := generatedPreprocess(s.Name)
		if !ok {
			panic(fmt.Sprintf("models: Register(%q): no preprocessing given or generated", s.Name))
		}
		s.Preprocess = p
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.specs[s.Name]; dup {
		panic(fmt.Sprintf("models: Register(%q): registered twice", s.Name))
	}
	registry.specs[s.Name] = s
}

// UnknownError is returned for an architecture name that is not registered.
type UnknownError struct {
	Name  string
	Close []string // registered names that resemble Name
}

func (e *UnknownError) Error() string {
	s := fmt.Sprintf("models: unknown architecture %q", e.Name)
	if len(e.Close) > 0 {
		s += " (did you mean " + strings.Join(e.Close, ", ") + "?)"
	}
	return s
}

// Lookup returns the spec registered under name. For an unknown name it
// returns an *UnknownError listing the registered names that resemble it.
func Lookup(name string) (Spec, error) {
	registry.RLock()
	s, ok := registry.specs[name]
	registry.RUnlock()
	if ok {
		return s, nil
	}
	return Spec{}, &UnknownError{Name: name, Close: closeNames(name, Names())}
}

// Names returns the registered architecture names, sorted.
func Names() []string {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]string, 0, len(registry.specs))
	for n := range registry.specs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Build constructs architecture name with cfg's options. Without
// cfg.Weights the weights are freshly initialised and the model is in
// training mode, as torchvision's builders return it.
func Build(name string, cfg Config) (nn.Module, error) {
	s, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	return s.Build(cfg)
}

// checkpointPrefixes are the keys under which training scripts commonly save
// the model's state_dict inside a larger checkpoint.
var checkpointPrefixes = []string{"", "state_dict.", "model.", "model_state_dict.", "net.", "network."}

// Load builds architecture name from the tensors of src and returns it in
// evaluation mode with the report of the load. It finds the state_dict inside
// a training checkpoint (under "state_dict", "model" or "model_state_dict",
// or any other prefix of the classifier's key: "state_dict.model.",
// "backbone."), strips a DataParallel "module." prefix, takes the number of classes from the
// classifier weight when cfg.NumClasses is zero, and for googlenet and
// inception_v3 builds the auxiliary heads when the weights have them (see
// [Config]). Loading is strict: any missing, unexpected or mis-shaped key
// fails with an error wrapping *nn.LoadError, and the full report is returned
// as well.
func Load(name string, src nn.Source, cfg Config) (nn.Module, *nn.LoadReport, error) {
	s, err := Lookup(name)
	if err != nil {
		return nil, nil, err
	}
	return load(s, src, cfg)
}

func load(s Spec, src nn.Source, cfg Config) (nn.Module, *nn.LoadReport, error) {
	src = stateDictOf(src, s.Classifier)
	if s.Convert != nil {
		src = s.Convert(src)
	}
	if cfg.NumClasses == 0 {
		if w := src.Tensor(s.Classifier); w != nil && len(w.Shape) >= 1 && w.Shape[0] > 0 {
			cfg.NumClasses = int(w.Shape[0])
		}
	}
	if len(s.Aux) > 0 {
		has := hasPrefix(src, s.Aux)
		switch cfg.AuxLogits {
		case Auto:
			cfg.AuxLogits = No
			if has {
				cfg.AuxLogits = Yes
			}
		case No:
			if has {
				src = dropPrefixes(src, s.Aux)
			}
		}
	}
	if cfg.TransformInput == Auto {
		cfg.TransformInput = Yes
	}
	b := nn.NewBuilder(src)
	cfg.Weights = b
	m, err := s.Build(cfg)
	if err != nil {
		return nil, nil, err
	}
	rep := b.Report()
	if err := b.Err(); err != nil {
		return nil, rep, fmt.Errorf("models: loading %s: %w", s.Name, err)
	}
	if e, ok := m.(interface{ Eval() }); ok {
		e.Eval()
	}
	return m, rep, nil
}

// LoadFile opens the checkpoint at path (any format package formats reads)
// and loads it as Load does.
func LoadFile(name, path string, cfg Config) (nn.Module, *nn.LoadReport, error) {
	s, err := Lookup(name)
	if err != nil {
		return nil, nil, err
	}
	return loadFile(s, path, cfg)
}

func loadFile(s Spec, path string, cfg Config) (nn.Module, *nn.LoadReport, error) {
	c, err := formats.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	return load(s, c, cfg)
}

// prefixSource is the part of a Source under a key prefix, with the prefix
// removed.
type prefixSource struct {
	src    nn.Source
	prefix string
	names  []string
}

func (p *prefixSource) Names() []string { return p.names }

func (p *prefixSource) Tensor(name string) *tensor.Tensor { return p.src.Tensor(p.prefix + name) }

func subSource(src nn.Source, prefix string) nn.Source {
	if prefix == "" {
		return src
	}
	var names []string
	for _, n := range src.Names() {
		if rest, ok := strings.CutPrefix(n, prefix); ok {
			names = append(names, rest)
		}
	}
	return &prefixSource{src: src, prefix: prefix, names: names}
}

// stateDictOf finds the model's state_dict in src: the first of the known
// checkpoint prefixes (with or without "module.") that holds the classifier
// key; else the outermost other prefix that does (Lightning's
// "state_dict.model.", "backbone.", the one holding the most keys when
// several do); or else the known prefix holding the most keys.
func stateDictOf(src nn.Source, classifier string) nn.Source {
	var cands []string
	for _, p := range checkpointPrefixes {
		cands = append(cands, p, p+"module.")
	}
	for _, p := range cands {
		if src.Tensor(p+classifier) != nil {
			return subSource(src, p)
		}
	}
	names := src.Names()
	var found []string
	for _, n := range names {
		if p, ok := strings.CutSuffix(n, classifier); ok && (p == "" || strings.HasSuffix(p, ".")) {
			found = append(found, p)
		}
	}
	best, bestN := "", -1
	for _, p := range found {
		inner := false
		for _, q := range found {
			if q != p && strings.HasPrefix(p, q) {
				inner = true
			}
		}
		if inner {
			continue
		}
		n := 0
		for _, k := range names {
			if strings.HasPrefix(k, p) {
				n++
			}
		}
		if n > bestN {
			best, bestN = p, n
		}
	}
	if bestN >= 0 {
		return subSource(src, best)
	}
	best, bestN = "", 0
	for _, p := range cands {
		n := 0
		for _, k := range names {
			if strings.HasPrefix(k, p) {
				n++
			}
		}
		// Longer prefixes come later; take one only when it holds every key
		// the shorter one does.
		if n > bestN || (n == bestN && n > 0 && strings.HasPrefix(p, best)) {
			best, bestN = p, n
		}
	}
	return subSource(src, best)
}

func hasPrefix(src nn.Source, prefixes []string) bool {
	for _, n := range src.Names() {
		for _, p := range prefixes {
			if strings.HasPrefix(n, p) {
				return true
			}
		}
	}
	return false
}

// renamedSource is a Source whose keys are renamed by a function.
type renamedSource struct {
	src   nn.Source
	names []string
	orig  map[string]string
}

func (r *renamedSource) Names() []string { return r.names }

func (r *renamedSource) Tensor(name string) *tensor.Tensor {
	o, ok := r.orig[name]
	if !ok {
		return nil
	}
	return r.src.Tensor(o)
}

// renameSource returns src with every key k renamed to rename(k).
func renameSource(src nn.Source, rename func(string) string) nn.Source {
	r := &renamedSource{src: src, orig: map[string]string{}}
	for _, n := range src.Names() {
		k := rename(n)
		if _, dup := r.orig[k]; dup {
			k = n // a clash: keep the original name, so the load report shows it
		}
		r.names = append(r.names, k)
		r.orig[k] = n
	}
	return r
}

// filteredSource hides some keys of a Source.
type filteredSource struct {
	src   nn.Source
	names []string
	keep  map[string]bool
}

func (f *filteredSource) Names() []string { return f.names }

func (f *filteredSource) Tensor(name string) *tensor.Tensor {
	if !f.keep[name] {
		return nil
	}
	return f.src.Tensor(name)
}

func dropPrefixes(src nn.Source, prefixes []string) nn.Source {
	f := &filteredSource{src: src, keep: map[string]bool{}}
outer:
	for _, n := range src.Names() {
		for _, p := range prefixes {
			if strings.HasPrefix(n, p) {
				continue outer
			}
		}
		f.names = append(f.names, n)
		f.keep[n] = true
	}
	return f
}

// closeNames returns the names that resemble name best: those it is a
// prefix of ("resnet5" -> resnet50), or else those at the smallest edit
// distance, if it is small.
func closeNames(name string, names []string) []string {
	lname := strings.ToLower(name)
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, lname) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		best := max(2, len(lname)/4) + 1
		for _, n := range names {
			switch d := editDistance(lname, n); {
			case d < best:
				best, out = d, []string{n}
			case d == best:
				out = append(out, n)
			}
		}
	}
	if len(out) > 8 {
		out = out[:8]
	}
	return out
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
