package train

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"github.com/ckptkit/ckpt/data/transforms"
	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
	"github.com/ckptkit/ckpt/nn/graph/onnximport"
	"github.com/ckptkit/ckpt/nn/models"
)

// ONNX backbones: an exported classifier imported into nn/graph, its
// classifier (the last Gemm) replaced by a new Linear layer whose tensors
// the graph shares, so that training the Linear trains the graph's head.

// ONNXArch is the Model.Arch (and config.json "arch") of an ONNX backbone.
const ONNXArch = "onnx"

// IsONNX reports whether weights names an ONNX model (by its extension).
func IsONNX(weights string) bool { return strings.EqualFold(filepath.Ext(weights), ".onnx") }

// ONNXPreprocess is the evaluation preprocessing assumed for an ONNX
// classifier: ImageNet's (resize 256 / crop 224, bilinear, ImageNet mean and
// std), cropped to the graph's static input size when it has one.
func ONNXPreprocess(g *graph.Graph) (transforms.ImageClassification, error) {
	p := transforms.ImageClassification{ResizeSize: 256, CropSize: 224, Interpolation: "bilinear",
		Mean: [3]float32{0.485, 0.456, 0.406}, Std: [3]float32{0.229, 0.224, 0.225}}
	in := g.Inputs()
	if len(in) != 1 || len(in[0].Shape) != 4 {
		return p, fmt.Errorf("train: the ONNX model has %d inputs; want one image batch [N, 3, H, W]", len(in))
	}
	s := in[0].Shape
	if s[1] > 0 && s[1] != 3 {
		return p, fmt.Errorf("train: the ONNX model's input %q has %d channels, want 3", in[0].Name, s[1])
	}
	if s[2] > 0 && s[3] > 0 {
		if s[2] != s[3] {
			return p, fmt.Errorf("train: the ONNX model's input %q is %dx%d; want a square image", in[0].Name, s[3], s[2])
		}
		p.CropSize = s[2]
		p.ResizeSize = int(math.Round(float64(s[2]) * 256 / 224))
	}
	return p, nil
}

// newONNXModel imports the ONNX classifier at path and replaces its
// classifier by a torch-initialised Linear of numClasses outputs (from nn's
// generator), in eval mode; [Model.Apply] makes its parameters trainable or
// frozen for a strategy.
func newONNXModel(path string, numClasses int) (*Model, error) {
	om, err := onnx.Open(path)
	if err != nil {
		return nil, err
	}
	g, err := onnximport.Import(om, onnximport.Options{})
	if err != nil {
		om.Close()
		return nil, fmt.Errorf("train: %s: %w", path, err)
	}
	fail := func(err error) (*Model, error) { om.Close(); return nil, fmt.Errorf("train: %s: %w", path, err) }
	rep, err := onnximport.ReHead(g, numClasses, 0)
	if err != nil {
		return fail(err)
	}
	var head *graph.Node
	for _, nd := range g.Nodes() {
		if nd.Op == "Gemm" && len(nd.Inputs) > 1 && nd.Inputs[1] == rep.Weight {
			head = nd
		}
	}
	if head == nil || !gemmPlain(head) {
		return fail(fmt.Errorf("the classifier %s is not a Gemm with transB=1, alpha=beta=1 (torch's export of nn.Linear)", rep))
	}
	lin := nn.NewLinear(nil, rep.In, numClasses, rep.Bias != "")
	g.SetLive(rep.Weight, lin.Weight)
	if rep.Bias != "" {
		g.SetLive(rep.Bias, lin.Bias)
	}
	pre, err := ONNXPreprocess(g)
	if err != nil {
		om.Close()
		return nil, err
	}
	m := &Model{Arch: ONNXArch, Spec: models.Spec{Name: ONNXArch, Preprocess: pre}, Module: g, Head: lin,
		Graph: g, ONNX: om, headReport: rep, headInput: head.Inputs[0], onnxStages: onnxStages(g, head)}
	for _, s := range m.onnxStages {
		m.Stages = append(m.Stages, s.name)
	}
	g.Eval()
	return m, nil
}

// gemmPlain reports whether a Gemm node computes A·Bᵀ + C.
func gemmPlain(nd *graph.Node) bool {
	on, ok := nd.Source.(*onnx.Node)
	if !ok {
		return false
	}
	trans := false
	for _, a := range on.Attribute {
		switch a.Name {
		case "transB":
			trans = a.I != 0
		case "transA":
			if a.I != 0 {
				return false
			}
		case "alpha", "beta":
			if a.F != 1 {
				return false
			}
		}
	}
	return trans
}

// onnxStage is a stage of an ONNX backbone for Partial: one node that reads
// parameters (a Conv, BatchNormalization, Gemm...) other than the
// classifier, with the parameters it is the first node to read.
type onnxStage struct {
	name   string
	node   *graph.Node
	params []*nn.Tensor
}

// onnxStages lists the stages of g in execution order.
func onnxStages(g *graph.Graph, head *graph.Node) []onnxStage {
	isParam := map[*nn.Tensor]bool{}
	for _, p := range g.Parameters() {
		isParam[p] = true
	}
	seen := map[*nn.Tensor]bool{}
	var out []onnxStage
	for _, nd := range g.Nodes() {
		if nd == head {
			continue
		}
		var ps []*nn.Tensor
		for _, in := range nd.Inputs {
			if t := g.Live(in); t != nil && isParam[t] && !seen[t] {
				seen[t] = true
				ps = append(ps, t)
			}
		}
		if len(ps) == 0 {
			continue
		}
		name := nd.Name
		if name == "" {
			name = fmt.Sprintf("node %d (%s)", nd.Index, nd.Op)
		}
		out = append(out, onnxStage{name: name, node: nd, params: ps})
	}
	return out
}

// applyONNX makes an ONNX backbone's parameters trainable or frozen as st
// says: Head trains the new classifier only, Partial also the parameters of
// the last unfreeze stages ([onnxStage]), Full and Scratch every parameter.
// A BatchNormalization node whose parameters are frozen is pinned to eval
// mode (running statistics, none updated) whatever the graph's mode, as
// nn.Freeze keeps a frozen BatchNorm2d; the trained ones follow the graph's
// mode (batch statistics while training).
func (m *Model) applyONNX(st Strategy, unfreeze int) error {
	g := m.Graph
	for nd, k := range m.pinned {
		nd.Kernel = k
	}
	m.pinned = map[*graph.Node]graph.Kernel{}
	m.Unfrozen = nil
	trained := map[*nn.Tensor]bool{m.Head.Weight: true}
	if m.Head.Bias != nil {
		trained[m.Head.Bias] = true
	}
	trainedNode := map[*graph.Node]bool{}
	all := false
	switch st {
	case Head:
	case Partial:
		if unfreeze < 1 || unfreeze > len(m.onnxStages) {
			return fmt.Errorf("train: --unfreeze %d: the ONNX backbone has %d stages (nodes with parameters before the classifier)", unfreeze, len(m.onnxStages))
		}
		for _, s := range m.onnxStages[len(m.onnxStages)-unfreeze:] {
			m.Unfrozen = append(m.Unfrozen, s.name)
			trainedNode[s.node] = true
			for _, p := range s.params {
				trained[p] = true
			}
		}
	case Full, Scratch:
		all = true
	default:
		return fmt.Errorf("train: strategy %q cannot be applied to a model", st)
	}
	for _, p := range g.Parameters() {
		p.SetRequiresGrad(all || trained[p])
	}
	for _, nd := range g.Nodes() {
		if nd.Op != "BatchNormalization" || all || trainedNode[nd] {
			continue
		}
		k := nd.Kernel
		m.pinned[nd] = k
		nd.Kernel = func(ctx *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
			var c graph.Context
			if ctx != nil {
				c = *ctx
			}
			c.Training = false
			return k(&c, in)
		}
	}
	g.Invalidate()
	if st == Head {
		g.Eval()
	} else {
		g.Train()
	}
	return nil
}

// hasBatchNorm reports whether the ONNX backbone kept BatchNormalization
// nodes (a default torch export folds them into the convolutions).
func (m *Model) hasBatchNorm() bool {
	for _, nd := range m.Graph.Nodes() {
		if nd.Op == "BatchNormalization" {
			return true
		}
	}
	return false
}

// reinitONNX re-initialises every parameter of an ONNX backbone as torch
// initialises a new layer of its shape (the classifier included, from nn's
// generator) and returns the ones it could not (see onnximport.ReInit).
func (m *Model) reinitONNX() []string { return onnximport.ReInit(m.Graph, nil) }

// extractONNX runs the graph up to its classifier's input.
func (m *Model) extractONNX(x *nn.Tensor) *nn.Tensor {
	outs := m.Graph.Outputs()
	m.Graph.SetOutputs([]string{m.headInput})
	defer m.Graph.SetOutputs(outs)
	return nn.Infer(m.Graph, x)
}

// writeONNX writes the model, every trained parameter and BatchNorm
// statistic written back into the ONNX initializers, to path, with the class names and preprocessing in
// its metadata_props ("classes", "preprocess"), as the safetensors files
// carry them.
func (m *Model) writeONNX(path string, classes []string, pre any) error {
	if err := onnximport.WriteBack(m.ONNX, m.Graph, m.headReport); err != nil {
		return err
	}
	cj, _ := json.Marshal(classes)
	pj, _ := json.Marshal(pre)
	set := map[string]string{"classes": string(cj), "preprocess": string(pj)}
	for _, e := range m.ONNX.MetadataProps {
		if v, ok := set[e.Key]; ok {
			e.Value = v
			delete(set, e.Key)
		}
	}
	for _, k := range []string{"classes", "preprocess"} {
		if v, ok := set[k]; ok {
			m.ONNX.MetadataProps = append(m.ONNX.MetadataProps, &onnx.StringStringEntry{Key: k, Value: v})
		}
	}
	b, err := onnx.Marshal(m.ONNX)
	if err != nil {
		return err
	}
	return writeFile(path, b)
}
