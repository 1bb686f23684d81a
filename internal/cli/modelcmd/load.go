package modelcmd

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
	"github.com/ckptkit/ckpt/nn/models"
	"github.com/ckptkit/ckpt/pickle"
	"github.com/ckptkit/ckpt/tensor"
)

// MaxClasses bounds the classifier size Load builds, from the weights or
// --num-classes: a hostile file's classifier shape must not size an
// allocation (ImageNet-21k, among the largest label sets, has 21,841).
const MaxClasses = 1 << 20

// LoadOptions are the flags of the model commands (verify, run, predict,
// bench) that say how to read a weights file, beside --arch and
// --num-classes.
type LoadOptions struct {
	// TransformInput is "on", "off" or "" (the weights decide: what a
	// whole-model pickle or TorchScript archive records, else on).
	TransformInput string
	// Key takes the sub-tree K of the file as the state_dict, as convert's
	// --key does.
	Key string
	// StripPrefix removes a prefix from the tensor names that have it, as
	// convert's --strip-prefix does.
	StripPrefix string
}

// TransformInputHelp is the help of --transform-input, and the default it
// documents.
const TransformInputHelp = "googlenet/inception_v3: rescale the normalised input to [-1, 1] first, `on|off` " +
	"(default: what a whole-model pickle or TorchScript file records, else on, as torchvision sets it for its " +
	"pretrained weights; a model trained from scratch has it off)"

// LoadFlags registers --transform-input, --key and --strip-prefix.
func LoadFlags(cmd *cobra.Command, o *LoadOptions) {
	f := cmd.Flags()
	f.StringVar(&o.TransformInput, "transform-input", "", TransformInputHelp)
	f.StringVar(&o.Key, "key", "", "take the state_dict from the sub-tree `K` of the weights file (default: found by itself)")
	f.StringVar(&o.StripPrefix, "strip-prefix", "", "remove `PREFIX` from the weights' tensor names that start with it (default: found by itself)")
	_ = cmd.RegisterFlagCompletionFunc("transform-input", cobra.FixedCompletions([]string{"on", "off"}, cobra.ShellCompDirectiveNoFileComp))
}

// Model is a model loaded by [Load], in eval mode.
type Model struct {
	nn.Module
	// Spec is the architecture's, given or detected.
	Spec models.Spec
	// Prefix is the key prefix the state_dict was found under ("" at the
	// top level).
	Prefix string
	// TransformInput is googlenet's and inception_v3's setting as the model
	// ran, and TransformInputFrom says where it came from: "flag", "file"
	// or "default".
	TransformInput     bool
	TransformInputFrom string
	// Meta is the weights file's string metadata (safetensors'
	// __metadata__: a finetune run records "classes" and "preprocess").
	Meta map[string]string
	// Graph is the imported graph when the weights file is an ONNX model
	// (then Module is the graph too, and Spec is the --arch given, if any).
	Graph *graph.Graph
}

// Hint returns what most likely explains a failed verification of m, or
// "": for googlenet and inception_v3, the --transform-input setting.
func (m *Model) Hint() string {
	if !hasTransformInput(m.Spec.Name) {
		return ""
	}
	on, other := "on", "off"
	if !m.TransformInput {
		on, other = "off", "on"
	}
	why := map[string]string{"flag": "as --transform-input asked", "file": "as the weights file records",
		"default": "the default for weights that do not record it"}[m.TransformInputFrom]
	return fmt.Sprintf("%s ran with transform_input %s (%s); torchvision turns it on only for its own pretrained weights, "+
		"so a model trained from scratch has it off: a mismatch here is the likely cause, try --transform-input %s",
		m.Spec.Name, on, why, other)
}

func hasTransformInput(arch string) bool { return arch == "googlenet" || arch == "inception_v3" }

// Load opens the weights file at path, finds the state_dict in it (under
// --key, after --strip-prefix, or under the one prefix that holds a model's
// keys), and builds architecture arch from it in eval mode; with arch
// empty, the architecture is the one registered architecture whose keys and
// shapes the weights match exactly. A detected architecture and a prefix
// found by itself are said on ios.ErrOut. A mismatch between weights and
// architecture is reported by counts, a few examples and the architecture
// the weights do fit (or the closest one).
func Load(ios *cmdutil.IOStreams, path, arch string, numClasses int, o LoadOptions) (*Model, error) {
	cfg := models.Config{NumClasses: numClasses}
	m := &Model{}
	switch o.TransformInput {
	case "on":
		cfg.TransformInput, m.TransformInputFrom = models.Yes, "flag"
	case "off":
		cfg.TransformInput, m.TransformInputFrom = models.No, "flag"
	case "":
	default:
		return nil, cmdutil.UsageError("--transform-input %q: want on or off", o.TransformInput)
	}
	if arch != "" {
		s, err := CheckArch(arch)
		if err != nil {
			return nil, err
		}
		m.Spec = s
	}
	if IsONNX(path) {
		// The graph is the architecture: arch, when given, names the other
		// file's (verify A.pt B.onnx --arch resnet18) and sets the input size.
		g, om, err := LoadGraph(path)
		if err != nil {
			return nil, err
		}
		// metadata_props are the graph's string metadata, as safetensors'
		// are a state_dict's (a finetune run's classes and preprocessing).
		for _, e := range om.MetadataProps {
			if m.Meta == nil {
				m.Meta = map[string]string{}
			}
			m.Meta[e.Key] = e.Value
		}
		om.Close() // the import holds every initializer in memory
		m.Module, m.Graph = g, g
		return m, nil
	}
	c, err := formats.Open(path)
	if err != nil {
		return nil, cmdutil.FileError(path, err)
	}
	defer c.Close()
	m.Meta = c.Metadata()
	if o.Key != "" || o.StripPrefix != "" {
		t, _, err := formats.Transform(c, formats.Options{Key: o.Key, StripPrefix: o.StripPrefix})
		if err != nil {
			return nil, cmdutil.UsageError("%s: %v", path, err)
		}
		c = t
	}
	src := nn.Source(c)
	if o.Key == "" && o.StripPrefix == "" {
		var classifiers []string
		if m.Spec.Name != "" {
			classifiers = []string{m.Spec.Classifier}
		} else {
			classifiers = allClassifiers()
		}
		p, _, err := formats.FindPrefix(src.Names(), classifiers)
		if err != nil {
			return nil, cmdutil.UsageError("%s: %v", path, err)
		}
		if p != "" {
			m.Prefix = p
			src = subSource(src, p)
			fmt.Fprintf(ios.ErrOut, "ckpt: %s: the state_dict is under %q (%s); --key or --strip-prefix picks another\n",
				path, p, cmdutil.Plural(len(src.Names()), "tensor"))
		}
	}
	class := recordedClass(c.Pickle)
	if m.Spec.Name == "" {
		s, note, err := detect(src, class)
		if err != nil {
			return nil, cmdutil.FileError(path, err)
		}
		m.Spec = s
		fmt.Fprintf(ios.ErrOut, "ckpt: %s: %s\n", path, note)
	}
	if hasTransformInput(m.Spec.Name) && cfg.TransformInput == models.Auto {
		v, ok := recordedTransformInput(c.Pickle)
		if !ok && c.Pickle != nil && c.Pickle.Format == pickle.FormatTorchScript {
			v, ok = scriptTransformInput(path)
		}
		if ok {
			cfg.TransformInput, m.TransformInputFrom = models.No, "file"
			if v {
				cfg.TransformInput = models.Yes
			}
		} else {
			cfg.TransformInput, m.TransformInputFrom = models.Yes, "default"
		}
	}
	m.TransformInput = cfg.TransformInput == models.Yes
	classes := int64(numClasses)
	if w := src.Tensor(m.Spec.Classifier); classes == 0 && w != nil && len(w.Shape) > 0 {
		classes = w.Shape[0]
	}
	if classes > MaxClasses || classes < 0 {
		// The model would be built with a classifier of that size: refuse
		// before allocating it.
		return nil, cmdutil.FileError(path, fmt.Errorf("the classifier (%s) has %d classes; ckpt builds at most %d", m.Spec.Classifier, classes, MaxClasses))
	}
	mod, _, err := models.Load(m.Spec.Name, src, cfg)
	if err != nil {
		var le *nn.LoadError
		if errors.As(err, &le) {
			return nil, cmdutil.FileError(path, misfit(m.Spec.Name, le.Report, src, class))
		}
		return nil, cmdutil.FileError(path, err)
	}
	mod.Eval()
	m.Module = mod
	return m, nil
}

// prefixSource is the part of a Source under a key prefix, with the prefix
// removed.
type prefixSource struct {
	src    nn.Source
	prefix string
	names  []string
}

func (p *prefixSource) Names() []string                   { return p.names }
func (p *prefixSource) Tensor(name string) *tensor.Tensor { return p.src.Tensor(p.prefix + name) }

func subSource(src nn.Source, prefix string) nn.Source {
	p := &prefixSource{src: src, prefix: prefix}
	for _, n := range src.Names() {
		if rest, ok := strings.CutPrefix(n, prefix); ok {
			p.names = append(p.names, rest)
		}
	}
	return p
}

// allClassifiers returns the classifier keys of the registered
// architectures ("fc.weight", "classifier.1.weight", ...).
func allClassifiers() []string {
	var out []string
	for _, n := range models.Names() {
		s, _ := models.Lookup(n)
		if !slices.Contains(out, s.Classifier) {
			out = append(out, s.Classifier)
		}
	}
	return out
}

// recordedClass returns the class of the root module of a whole-model
// pickle or TorchScript archive ("torchvision.models.resnet.ResNet"), "" for
// other files.
func recordedClass(pf *pickle.File) string {
	if pf == nil || pf.Modules == nil {
		return ""
	}
	return pf.Modules.Class
}

// classMatches reports whether a recorded class name
// ("torchvision.models.resnet.ResNet", "__torch__.torchvision.models.resnet.ResNet")
// names torch class cls ("ResNet").
func classMatches(recorded, cls string) bool {
	return recorded == cls || strings.HasSuffix(recorded, "."+cls)
}

// recordedTransformInput returns the transform_input attribute of the
// googlenet or inception_v3 module a whole-model pickle or TorchScript
// archive holds.
func recordedTransformInput(pf *pickle.File) (v, ok bool) {
	if pf == nil {
		return false, false
	}
	budget := 10000 // objects visited, a bound on hostile nesting
	var find func(x any, depth int) (bool, bool)
	find = func(x any, depth int) (bool, bool) {
		budget--
		if budget < 0 || depth > 50 {
			return false, false
		}
		switch o := x.(type) {
		case *pickle.Object:
			if d := objectState(o); d != nil {
				if classMatches(o.Class, "GoogLeNet") || classMatches(o.Class, "Inception3") {
					if t, found := d.Get("transform_input"); found {
						if b, isBool := t.(bool); isBool {
							return b, true
						}
					}
				}
				return find(d, depth+1)
			}
		case *pickle.Dict:
			for _, v := range o.Values {
				if b, found := find(v, depth+1); found {
					return b, true
				}
			}
		}
		return false, false
	}
	return find(pf.Root, 0)
}

// maxScriptCode bounds the code scriptTransformInput reads from one
// TorchScript archive.
const maxScriptCode = 4 << 20

// scriptTransformInput returns the transform_input constant a TorchScript
// archive's code declares for torchvision's GoogLeNet or Inception3 class
// ("transform_input : Final[bool] = False" in the class header; TorchScript
// folds constants into the code, so data.pkl does not hold it). Nothing of
// the code runs; at most maxScriptCode bytes are read.
func scriptTransformInput(path string) (v, ok bool) {
	z, err := zip.OpenReader(path)
	if err != nil {
		return false, false
	}
	defer z.Close()
	budget := int64(maxScriptCode)
	for _, f := range z.File {
		if !strings.Contains(f.Name, "/code/__torch__/torchvision/models/") ||
			!(strings.HasSuffix(f.Name, "/googlenet.py") || strings.HasSuffix(f.Name, "/inception.py")) {
			continue
		}
		r, err := f.Open()
		if err != nil {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(r, budget))
		r.Close()
		budget -= int64(len(b))
		if err != nil || budget <= 0 {
			return false, false
		}
		in := false
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "class ") {
				in = strings.HasPrefix(line, "class GoogLeNet(") || strings.HasPrefix(line, "class Inception3(")
				continue
			}
			if val, found := strings.CutPrefix(strings.TrimSpace(line), "transform_input : Final[bool] = "); in && found {
				switch strings.TrimSpace(val) {
				case "True":
					return true, true
				case "False":
					return false, true
				}
			}
		}
	}
	return false, false
}

// objectState returns an object's BUILD state as a dict of attributes.
func objectState(o *pickle.Object) *pickle.Dict {
	switch s := o.State.(type) {
	case *pickle.Dict:
		return s
	case pickle.Tuple:
		if len(s) == 2 {
			if d, ok := s[0].(*pickle.Dict); ok {
				return d
			}
		}
	}
	return nil
}

// detect picks the architecture src's keys and shapes fit, and says so.
func detect(src nn.Source, class string) (models.Spec, string, error) {
	exact, closest := models.Detect(src)
	if len(exact) > 1 && class != "" {
		var same []string
		for _, a := range exact {
			if classMatches(class, models.ClassOf(a)) {
				same = append(same, a)
			}
		}
		if len(same) > 0 {
			exact = same
		}
	}
	switch len(exact) {
	case 1:
		s, _ := models.Lookup(exact[0])
		note := fmt.Sprintf("--arch %s detected: the weights match its keys and shapes exactly", s.Name)
		if class != "" {
			note += fmt.Sprintf(" (the file records class %s)", class)
		}
		return s, note, nil
	case 0:
		msg := "--arch is required: the weights match no registered architecture"
		if class != "" {
			msg += fmt.Sprintf(" (the file records class %s)", class)
		}
		if closest != nil {
			msg += "; the closest is " + closest.Arch + " (" + counts(len(closest.Missing), len(closest.Unexpected), len(closest.Mismatched)) + ")"
		}
		return models.Spec{}, "", cmdutil.UsageError("%s", msg)
	}
	return models.Spec{}, "", cmdutil.UsageError("--arch is required: the weights match each of %s", strings.Join(exact, ", "))
}

// counts says how many keys are missing, unexpected and mis-shaped.
func counts(missing, unexpected, mismatched int) string {
	return fmt.Sprintf("%s missing, %s unexpected, %s", cmdutil.Plural(missing, "key"), cmdutil.Plural(unexpected, "key"),
		cmdutil.Plural(mismatched, "shape mismatch"))
}

// misfit summarises a failed load of arch from src: counts, a few keys of
// each kind, and the architecture the weights fit instead, or the closest.
func misfit(arch string, r *nn.LoadReport, src nn.Source, class string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "the weights do not fit %s: %s", arch, counts(len(r.Missing), len(r.Unexpected), len(r.Mismatched)))
	if len(r.Missing) > 0 {
		fmt.Fprintf(&b, "; missing %s", examples(r.Missing))
	}
	if len(r.Unexpected) > 0 {
		fmt.Fprintf(&b, "; unexpected %s", examples(r.Unexpected))
	}
	if len(r.Mismatched) > 0 {
		var ms []string
		for _, m := range r.Mismatched {
			ms = append(ms, fmt.Sprintf("%q %s vs %s", m.Key, cmdutil.Shape(m.GotShape), cmdutil.Shape(m.WantShape)))
		}
		fmt.Fprintf(&b, "; shapes (weights vs %s) differ for %s", arch, examples(ms))
	}
	if class != "" {
		fmt.Fprintf(&b, "; the file records class %s", class)
	}
	exact, closest := models.Detect(src)
	switch {
	case len(exact) > 0:
		fmt.Fprintf(&b, "; the weights match %s exactly: use --arch %s or leave --arch out", strings.Join(exact, ", "), exact[0])
	case closest != nil && closest.Arch != arch:
		fmt.Fprintf(&b, "; they match no registered architecture, the closest is %s (%s)", closest.Arch,
			counts(len(closest.Missing), len(closest.Unexpected), len(closest.Mismatched)))
	case closest != nil:
		b.WriteString("; they match no registered architecture better")
	default:
		b.WriteString("; they share no key with any registered architecture")
	}
	return errors.New(b.String())
}

// examples lists the first three of list, quoted unless they already are,
// with the count of the rest.
func examples(list []string) string {
	const n = 3
	q := make([]string, 0, n)
	for _, s := range list[:min(n, len(list))] {
		if !strings.HasPrefix(s, `"`) {
			s = fmt.Sprintf("%q", s)
		}
		q = append(q, s)
	}
	out := strings.Join(q, ", ")
	if len(list) > n {
		out += fmt.Sprintf(" and %d more", len(list)-n)
	}
	return out
}
