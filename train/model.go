package train

import (
	"fmt"
	"strings"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
	"github.com/ckptkit/ckpt/nn/graph/onnximport"
	"github.com/ckptkit/ckpt/nn/models"
	"github.com/ckptkit/ckpt/tensor"
)

// Strategy is how much of a pretrained network is trained.
type Strategy string

// The strategies of the transfer-learning table.
const (
	// Head freezes the backbone (no gradients, BatchNorms in eval mode) and
	// trains only the new classifier.
	Head Strategy = "head"
	// Partial trains the last Unfreeze stages and the classifier, the rest
	// frozen as in Head.
	Partial Strategy = "partial"
	// Full trains everything from the pretrained weights, the backbone at
	// BackboneLRMult times the learning rate.
	Full Strategy = "full"
	// Scratch trains the architecture freshly initialised.
	Scratch Strategy = "scratch"
	// Auto picks one of the others from the data (see [Choose]).
	Auto Strategy = "auto"
)

// ParseStrategy checks a strategy name.
func ParseStrategy(s string) (Strategy, error) {
	switch st := Strategy(s); st {
	case Head, Partial, Full, Scratch, Auto:
		return st, nil
	}
	return "", fmt.Errorf("train: unknown strategy %q (want head, partial, full, scratch or auto)", s)
}

// Model is a torchvision architecture prepared for transfer learning: its
// classifier replaced by a new one of NumClasses outputs and its parameters
// frozen or trainable as a strategy says.
type Model struct {
	Arch   string
	Spec   models.Spec
	Module nn.Module
	// HeadPath is the dotted module name of the classifier ("fc",
	// "classifier.1"); Head is that module.
	HeadPath string
	Head     *nn.Linear
	// Stages are the units Partial counts from the end, in order: module
	// names, or several joined by "+" when a stage spans sibling modules
	// (a Swin stage is its patch merging and its blocks); for an ONNX
	// backbone, the nodes that read parameters before the classifier.
	Stages []string
	// Unfrozen lists the stages made trainable (Partial).
	Unfrozen []string

	// Graph and ONNX are set for an ONNX backbone (Arch [ONNXArch]): the
	// imported graph (also Module) and the model it came from, whose
	// classifier Head shares its tensors with the graph.
	Graph      *graph.Graph
	ONNX       *onnx.Model
	headReport *onnximport.HeadReport
	headInput  string
	onnxStages []onnxStage
	pinned     map[*graph.Node]graph.Kernel // frozen BatchNormalization nodes' own kernels
}

// headPath returns the module path of a spec's classifier.
func headPath(s models.Spec) string { return strings.TrimSuffix(s.Classifier, ".weight") }

// NewModel builds arch for a task of numClasses classes. With weights (any
// checkpoint formats.Open reads) the backbone's tensors come from it,
// whatever its classifier's size; without, the model is freshly initialised
// (Scratch). The new classifier is a torch-initialised Linear drawn from nn's
// generator (seed it with nn.ManualSeed). The model is in training mode
// with every parameter trainable; call [Model.Apply] for a strategy.
//
// An ONNX model (weights ending in .onnx, arch "" or [ONNXArch]) is
// imported instead, its last Gemm replaced by the new classifier.
func NewModel(arch, weights string, numClasses int) (*Model, error) {
	if IsONNX(weights) && (arch == "" || arch == ONNXArch) {
		return newONNXModel(weights, numClasses)
	}
	spec, err := models.Lookup(arch)
	if err != nil {
		return nil, err
	}
	m := &Model{Arch: arch, Spec: spec, HeadPath: headPath(spec)}
	if weights == "" {
		mod, err := models.Build(arch, models.Config{NumClasses: numClasses})
		if err != nil {
			return nil, err
		}
		m.Module = mod
	} else {
		c, err := formats.Open(weights)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		mod, _, err := models.Load(arch, ckptSource{c}, models.Config{})
		if err != nil {
			return nil, err
		}
		m.Module = mod
	}
	old, ok := find(m.Module, m.HeadPath).(*nn.Linear)
	if !ok {
		return nil, fmt.Errorf("train: %s's classifier %q is not a Linear layer", arch, m.HeadPath)
	}
	m.Head = old
	if weights != "" || old.OutFeatures != numClasses {
		m.Head = nn.NewLinear(nil, old.InFeatures, numClasses, old.Bias != nil)
		if err := setModule(m.Module, m.HeadPath, m.Head); err != nil {
			return nil, err
		}
	}
	m.Stages = transformerStages(m.Module)
	if m.Stages == nil {
		m.Stages = stages(m.Module, m.HeadPath)
	}
	m.Module.Train()
	return m, nil
}

// Apply freezes the model as st says: Head freezes everything but the
// classifier, Partial everything but the classifier and the last unfreeze
// stages (each frozen part as [nn.Freeze] does: no gradients, eval mode kept
// across Train); Full and Scratch train everything.
func (m *Model) Apply(st Strategy, unfreeze int) error {
	if m.Graph != nil {
		return m.applyONNX(st, unfreeze)
	}
	nn.Unfreeze(m.Module)
	m.Unfrozen = nil
	switch st {
	case Head, Partial:
		keep := []string{m.HeadPath}
		if st == Partial {
			if unfreeze < 1 || unfreeze > len(m.Stages) {
				return fmt.Errorf("train: --unfreeze %d: %s has %d stages (%s)", unfreeze, m.Arch, len(m.Stages), strings.Join(m.Stages, ", "))
			}
			m.Unfrozen = m.Stages[len(m.Stages)-unfreeze:]
			for _, st := range m.Unfrozen {
				keep = append(keep, strings.Split(st, "+")...)
			}
		}
		freezeExcept(m.Module, "", keep)
	case Full, Scratch:
	default:
		return fmt.Errorf("train: strategy %q cannot be applied to a model", st)
	}
	m.Module.Train()
	return nil
}

// freezeExcept freezes every module under mod (at path) that neither is
// one of keep nor contains one, freezing whole subtrees where it can.
func freezeExcept(mod nn.Module, path string, keep []string) {
	for _, k := range keep {
		if k == path {
			return
		}
	}
	inside := false
	for _, k := range keep {
		if path == "" || strings.HasPrefix(k, path+".") {
			inside = true
		}
	}
	if !inside {
		nn.Freeze(mod)
		return
	}
	for _, p := range mod.NamedParameters() { // a container's own parameters
		if !strings.Contains(p.Name, ".") {
			p.Tensor.SetRequiresGrad(false)
		}
	}
	for _, c := range mod.NamedChildren() {
		child := c.Name
		if path != "" {
			child = path + "." + c.Name
		}
		freezeExcept(c.Module, child, keep)
	}
}

// BackboneParams returns the trainable parameters outside the classifier.
func (m *Model) BackboneParams() []*nn.Tensor {
	head := map[*nn.Tensor]bool{}
	for _, p := range m.Head.Parameters() {
		head[p] = true
	}
	var out []*nn.Tensor
	for _, p := range m.Module.TrainableParameters() {
		if !head[p] {
			out = append(out, p)
		}
	}
	return out
}

// find returns the module at a dotted path, or nil.
func find(root nn.Module, path string) nn.Module {
	if path == "" {
		return root
	}
	for _, nm := range nn.NamedModules(root) {
		if nm.Name == path {
			return nm.Module
		}
	}
	return nil
}

func setModule(root nn.Module, path string, m nn.Module) error {
	parent, name := "", path
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		parent, name = path[:i], path[i+1:]
	}
	p := find(root, parent)
	if p == nil || !p.(interface{ SetChild(string, nn.Module) bool }).SetChild(name, m) {
		return fmt.Errorf("train: no module %q to replace", path)
	}
	return nil
}

// stages lists the units Partial unfreezes from the end: the top-level
// children with parameters other than the classifier's branch, or, when
// there is one such child (a "features" Sequential), its children with
// parameters.
func stages(root nn.Module, head string) []string {
	top := strings.SplitN(head, ".", 2)[0]
	withParams := func(m nn.Module, prefix string) []string {
		var out []string
		for _, c := range m.NamedChildren() {
			name := c.Name
			if prefix != "" {
				name = prefix + "." + c.Name
			}
			if name != top && len(c.Module.Parameters()) > 0 {
				out = append(out, name)
			}
		}
		return out
	}
	s := withParams(root, "")
	if len(s) == 1 {
		if inner := withParams(find(root, s[0]), s[0]); len(inner) > 1 {
			return inner
		}
	}
	return s
}

// transformerStages returns the stages of torchvision's vision
// transformers, whose module trees do not have the CNNs' shape, or nil for
// other models:
//   - ViT: each encoder block (encoder.layers.encoder_layer_i), the last
//     one with the final encoder.ln;
//   - Swin (V1 and V2): the four resolution stages, each the patch
//     embedding or merging that starts it and its blocks (features.0+1,
//     2+3, 4+5, 6+7), the last one with the final norm;
//   - MaxViT: the stem and the four blocks, the last one with the
//     classifier's LayerNorm and Linear+Tanh pre-logits (classifier.2,
//     classifier.3) that precede the replaced classifier.5.
func transformerStages(root nn.Module) []string {
	switch root.(type) {
	case *models.VisionTransformer:
		var out []string
		for _, c := range find(root, "encoder.layers").NamedChildren() {
			out = append(out, "encoder.layers."+c.Name)
		}
		if len(out) > 0 {
			out[len(out)-1] += "+encoder.ln"
		}
		return out
	case *models.SwinTransformer:
		return []string{"features.0+features.1", "features.2+features.3", "features.4+features.5", "features.6+features.7+norm"}
	case *models.MaxVit:
		out := []string{"stem"}
		for _, c := range find(root, "blocks").NamedChildren() {
			out = append(out, "blocks."+c.Name)
		}
		out[len(out)-1] += "+classifier.2+classifier.3"
		return out
	}
	return nil
}

// ckptSource adapts a formats.Checkpoint to nn.Source.
type ckptSource struct{ c *formats.Checkpoint }

func (s ckptSource) Names() []string {
	out := make([]string, len(s.c.Tensors))
	for i, t := range s.c.Tensors {
		out[i] = t.Name
	}
	return out
}

func (s ckptSource) Tensor(name string) *tensor.Tensor { return s.c.Tensor(name) }
