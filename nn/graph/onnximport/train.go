package onnximport

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
	"github.com/ckptkit/ckpt/tensor"
)

// Fine-tuning an imported graph: replacing its classifier, training its
// BatchNorm statistics, and writing the trained weights back into the
// original ONNX model.

// HeadReport says which node ReHead replaced.
type HeadReport struct {
	Node    string // the node's name ("" when unnamed)
	Index   int    // its position in the source graph
	Op      string // "Gemm" or "MatMul+Add"
	Weight  string // the weight parameter's name
	Bias    string // the bias parameter's name, "" when there is none
	In      int    // input features
	OldOut  int    // outputs before
	NewOut  int    // outputs after
	Output  string // the graph output the head produces
	outAxis int
}

func (r *HeadReport) String() string {
	return fmt.Sprintf("replaced node %d %q (%s, %s [%d -> %d]) by a linear layer of %d outputs", r.Index, r.Node, r.Op, r.Weight, r.In, r.OldOut, r.NewOut)
}

// passThrough are ops a classifier's logits may go through on their way
// to the graph output.
var passThrough = map[string]bool{"Identity": true, "Softmax": true, "LogSoftmax": true, "Flatten": true, "Squeeze": true, "Dropout": true, "Reshape": true}

// ReHead replaces the graph's classifier (the last Gemm, or MatMul
// followed by Add, producing its first output) by a new linear layer of n
// outputs, initialized as torch.nn.Linear is (uniform in ±1/sqrt(in)) from
// seed. The new weight and bias keep the old parameter names.
func ReHead(g *graph.Graph, n int, seed uint64) (*HeadReport, error) {
	if n <= 0 {
		return nil, fmt.Errorf("onnx: re-head: %d outputs", n)
	}
	if len(g.Outputs()) == 0 {
		return nil, errors.New("onnx: re-head: the graph has no outputs")
	}
	producer := map[string]*graph.Node{}
	for _, nd := range g.Nodes() {
		for _, o := range nd.Outputs {
			producer[o] = nd
		}
	}
	name := g.Outputs()[0]
	nd := producer[name]
	for nd != nil && passThrough[nd.Op] && len(nd.Inputs) > 0 {
		nd = producer[nd.Inputs[0]]
	}
	if nd == nil {
		return nil, fmt.Errorf("onnx: re-head: output %q is not computed by a classifier node", name)
	}
	rep := &HeadReport{Node: nd.Name, Index: nd.Index, NewOut: n, Output: name}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	newParam := func(shape []int, fanIn int) *nn.Tensor {
		bound := 1 / math.Sqrt(float64(max(fanIn, 1)))
		d := make([]float32, numel(shape))
		for k := range d {
			d[k] = float32((rng.Float64()*2 - 1) * bound)
		}
		return nn.New(d, shape...)
	}
	switch nd.Op {
	case "Gemm":
		w := g.Live(nd.Inputs[1])
		if w == nil || w.Dim() != 2 {
			return nil, fmt.Errorf("onnx: re-head: node %d %q: Gemm's B is not a parameter", nd.Index, nd.Name)
		}
		rep.Op, rep.Weight = "Gemm", nd.Inputs[1]
		in, out := w.Shape()[1], w.Shape()[0]
		var bias *nn.Tensor
		if len(nd.Inputs) > 2 && nd.Inputs[2] != "" {
			bias = g.Live(nd.Inputs[2])
			rep.Bias = nd.Inputs[2]
		}
		trans := gemmTransB(nd)
		if !trans {
			in, out = w.Shape()[0], w.Shape()[1]
		}
		rep.In, rep.OldOut = in, out
		if trans {
			g.SetLive(rep.Weight, nn.Parameter(newParam([]int{n, in}, in)))
		} else {
			g.SetLive(rep.Weight, nn.Parameter(newParam([]int{in, n}, in)))
		}
		if bias != nil {
			g.SetLive(rep.Bias, nn.Parameter(newParam([]int{n}, in)))
		}
	case "Add":
		var mm *graph.Node
		var biasName string
		for k, in := range nd.Inputs {
			if p := producer[in]; p != nil && p.Op == "MatMul" {
				mm = p
				biasName = nd.Inputs[1-k]
			}
		}
		if mm == nil || g.Live(mm.Inputs[1]) == nil || g.Live(biasName) == nil {
			return nil, fmt.Errorf("onnx: re-head: node %d %q: Add is not MatMul + bias over parameters", nd.Index, nd.Name)
		}
		w := g.Live(mm.Inputs[1])
		if w.Dim() != 2 {
			return nil, fmt.Errorf("onnx: re-head: node %d %q: the weight is not a matrix", mm.Index, mm.Name)
		}
		rep.Op, rep.Weight, rep.Bias = "MatMul+Add", mm.Inputs[1], biasName
		rep.In, rep.OldOut = w.Shape()[0], w.Shape()[1]
		g.SetLive(rep.Weight, nn.Parameter(newParam([]int{rep.In, n}, rep.In)))
		g.SetLive(rep.Bias, nn.Parameter(newParam([]int{n}, rep.In)))
	default:
		return nil, fmt.Errorf("onnx: re-head: output %q comes from node %d %q (%s), not a Gemm or MatMul+Add", name, nd.Index, nd.Name, nd.Op)
	}
	return rep, nil
}

// gemmTransB reports whether a Gemm node multiplies by Bᵀ (B is [out, in]).
func gemmTransB(nd *graph.Node) bool {
	if on, ok := nd.Source.(*onnx.Node); ok {
		for _, a := range on.Attribute {
			if a.Name == "transB" {
				return a.I != 0
			}
		}
	}
	return false
}

// TrainBatchNorm puts g in training mode, in which its BatchNormalization
// nodes normalize by batch statistics and update their running statistics
// (buffers). It fails when the graph has no BatchNormalization node, as a
// default torch export, which folds them into the convolutions, has none.
func TrainBatchNorm(g *graph.Graph) error {
	for _, nd := range g.Nodes() {
		if nd.Op == "BatchNormalization" {
			g.Train()
			return nil
		}
	}
	return errors.New("onnx: the graph has no BatchNormalization nodes (a default export folds them into the convolutions; export with training=torch.onnx.TrainingMode.PRESERVE to train them)")
}

// WriteBack stores g's parameters and buffers into the initializers of
// the model g was imported from (same names, new shapes where a re-head
// changed them), so that writing m gives the trained model. heads are the
// re-heads done on g: their output's last static dimension is updated.
func WriteBack(m *onnx.Model, g *graph.Graph, heads ...*HeadReport) error {
	if m == nil || m.Graph == nil {
		return errors.New("onnx: write back: the model has no graph")
	}
	for _, init := range m.Graph.Initializer {
		t := g.Live(init.Name)
		if t == nil {
			continue
		}
		b := make([]byte, 4*t.Numel())
		for k, v := range t.Data() {
			u := math.Float32bits(v)
			b[4*k], b[4*k+1], b[4*k+2], b[4*k+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
		}
		shape := make([]int64, t.Dim())
		for k, d := range t.Shape() {
			shape[k] = int64(d)
		}
		x, err := tensor.FromBytes(tensor.Float32, shape, b)
		if err != nil {
			return fmt.Errorf("onnx: write back %q: %w", init.Name, err)
		}
		if err := init.SetData(x); err != nil {
			return err
		}
	}
	for _, h := range heads {
		for _, o := range m.Graph.Output {
			if o.Name != h.Output || o.Type == nil || o.Type.Tensor == nil || o.Type.Tensor.Shape == nil {
				continue
			}
			dims := o.Type.Tensor.Shape.Dim
			if len(dims) > 0 && dims[len(dims)-1].HasValue() {
				dims[len(dims)-1].SetValue(int64(h.NewOut))
			}
		}
	}
	return nil
}

// ReInit re-initialises g's parameters in place as torch initialises a
// freshly built layer of the same shape, drawing from gen (nil: nn's
// generator): the weight and bias of Conv, ConvTranspose and Gemm (and a
// MatMul's weight) uniform in ±1/sqrt(fan_in) (torch's kaiming_uniform_
// with a=sqrt(5), and its bias rule); BatchNormalization's scale 1, bias 0,
// running mean 0 and variance 1; InstanceNormalization's and
// LayerNormalization's scale 1 and bias 0; PRelu's slope 0.25. It returns
// the names (as in g's state_dict) of the parameters it left as they were
// (read by no such slot, or inside an If or Loop body), in g's order. A tensor read by several nodes is initialised once, by the first.
func ReInit(g *graph.Graph, gen nn.Generator) []string {
	done := map[string]bool{}
	doneT := map[*nn.Tensor]bool{}
	uniform := func(name string, fanIn int) {
		t := g.Live(name)
		if t == nil || done[name] {
			return
		}
		done[name], doneT[t] = true, true
		bound := 1 / math.Sqrt(float64(max(fanIn, 1)))
		nn.InitUniform(t, -bound, bound, gen)
	}
	constant := func(name string, v float64) {
		if t := g.Live(name); t != nil && !done[name] {
			done[name], doneT[t] = true, true
			nn.InitConstant(t, v)
		}
	}
	input := func(nd *graph.Node, k int) string {
		if k < len(nd.Inputs) {
			return nd.Inputs[k]
		}
		return ""
	}
	for _, nd := range g.Nodes() {
		w := g.Live(input(nd, 1))
		switch nd.Op {
		case "Conv", "ConvTranspose":
			if w == nil || w.Dim() < 2 || done[nd.Inputs[1]] {
				continue
			}
			fanIn, _ := nn.FanInAndFanOut(w.Shape()) // torch's rule, for ConvTranspose too
			uniform(nd.Inputs[1], fanIn)
			uniform(input(nd, 2), fanIn)
		case "Gemm", "MatMul":
			if w == nil || w.Dim() != 2 || done[nd.Inputs[1]] {
				continue
			}
			fanIn := w.Shape()[0]
			if nd.Op == "Gemm" && gemmTransB(nd) {
				fanIn = w.Shape()[1]
			}
			uniform(nd.Inputs[1], fanIn)
			if nd.Op == "Gemm" {
				uniform(input(nd, 2), fanIn)
			}
		case "BatchNormalization", "InstanceNormalization", "LayerNormalization":
			constant(input(nd, 1), 1)
			constant(input(nd, 2), 0)
			if nd.Op == "BatchNormalization" {
				constant(input(nd, 3), 0)
				constant(input(nd, 4), 1)
			}
		case "PRelu":
			constant(input(nd, 1), 0.25)
		}
	}
	nn.MarkModified()
	var kept []string
	for _, p := range g.NamedParameters() {
		if !doneT[p.Tensor] {
			kept = append(kept, p.Name)
		}
	}
	return kept
}
