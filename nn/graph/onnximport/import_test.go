package onnximport

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
)

func TestImportErrors(t *testing.T) {
	x := vi("x", onnx.Float, 1, 4)
	y := vi("y", onnx.Float, 1, 4)
	resize := node("Resize", []string{"x", "", "s"}, []string{"y"}, as("mode", "cubic"), ai("antialias", 1))
	resize.Name = "Resize_3"
	cases := []struct {
		name string
		m    *onnx.Model
		want string
	}{
		{"unsupported attribute", model(18, []*onnx.Node{node("Relu", []string{"x"}, []string{"r"}), resize},
			[]*onnx.TensorProto{intInit("s", []int{2}, 1, 1)}, []*onnx.ValueInfo{x}, []*onnx.ValueInfo{y}),
			`onnx: node 1 "Resize_3": Resize (opset 18) with antialias is not supported`},
		{"unknown op", model(13, []*onnx.Node{node("FooBar", []string{"x"}, []string{"y"})}, nil, []*onnx.ValueInfo{x}, []*onnx.ValueInfo{y}),
			`onnx: node 0 "FooBar_0": FooBar (opset 13) is not supported`},
		{"other domain", model(13, []*onnx.Node{{OpType: "Relu", Domain: "com.example", Input: []string{"x"}, Output: []string{"y"}}}, nil, []*onnx.ValueInfo{x}, []*onnx.ValueInfo{y}),
			`onnx: node 0 "": com.example.Relu (opset 13) is not supported`},
		{"cycle", model(13, []*onnx.Node{node("Relu", []string{"b"}, []string{"a"}), node("Relu", []string{"a"}, []string{"b"}), node("Relu", []string{"b"}, []string{"y"})},
			nil, []*onnx.ValueInfo{x}, []*onnx.ValueInfo{y}), "cycle"},
		{"undefined input", model(13, []*onnx.Node{node("Relu", []string{"nope"}, []string{"y"})}, nil, []*onnx.ValueInfo{x}, []*onnx.ValueInfo{y}),
			`input "nope" is not a graph input, an initializer or a node output`},
		{"two producers", model(13, []*onnx.Node{node("Relu", []string{"x"}, []string{"y"}), node("Relu", []string{"x"}, []string{"y"})},
			nil, []*onnx.ValueInfo{x}, []*onnx.ValueInfo{y}), `output "y" is also produced by node 0`},
		{"output not computed", model(13, []*onnx.Node{node("Relu", []string{"x"}, []string{"r"})}, nil, []*onnx.ValueInfo{x}, []*onnx.ValueInfo{y}),
			`output "y" is not computed`},
		{"no graph", &onnx.Model{}, "no graph"},
		{"subgraph", model(13, []*onnx.Node{node("Relu", []string{"x"}, []string{"y"}, &onnx.Attribute{Name: "body", Type: onnx.AttrGraph, G: &onnx.Graph{}})},
			nil, []*onnx.ValueInfo{x}, []*onnx.ValueInfo{y}), `Relu (opset 13) with subgraph or reference attribute "body" is not supported`},
		{"scan reverse", model(8, []*onnx.Node{node("Scan", []string{"", "x"}, []string{"y"}, ai("num_scan_inputs", 1), ais("directions", 1),
			&onnx.Attribute{Name: "body", Type: onnx.AttrGraph, G: &onnx.Graph{}})},
			nil, []*onnx.ValueInfo{x}, []*onnx.ValueInfo{y}), `Scan (opset 8) with directions [1] is not supported`},
		{"if without else", model(13, []*onnx.Node{node("If", []string{"x"}, []string{"y"}, &onnx.Attribute{Name: "then_branch", Type: onnx.AttrGraph, G: &onnx.Graph{}})},
			nil, []*onnx.ValueInfo{x}, []*onnx.ValueInfo{y}), `no else_branch`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Import(tc.m, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line", err)
			}
		})
	}
}

func TestUnsupportedErrorType(t *testing.T) {
	m := model(13, []*onnx.Node{node("FooBar", []string{"x"}, []string{"y"})}, nil,
		[]*onnx.ValueInfo{vi("x", onnx.Float, 1)}, []*onnx.ValueInfo{vi("y", onnx.Float, 1)})
	_, err := Import(m, Options{})
	var u *UnsupportedError
	if !errors.As(err, &u) || u.Op != "FooBar" || u.Index != 0 || u.Opset != 13 {
		t.Fatalf("got %#v, want an *UnsupportedError for node 0 FooBar at opset 13", err)
	}
}

// TestLimits checks that data-sized allocations are refused before they
// happen.
func TestLimits(t *testing.T) {
	m := model(13, []*onnx.Node{node("ConstantOfShape", []string{"shape"}, []string{"y"})}, nil,
		[]*onnx.ValueInfo{vi("shape", onnx.Int64, 2)}, []*onnx.ValueInfo{vi("y", onnx.Float, -1, -1)})
	g, err := Import(m, Options{MaxElements: 1000})
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.RunOrdered(graph.FromInt64s(graph.Int64, []int{2}, []int64{1 << 40, 1 << 40}))
	if err == nil || !strings.Contains(err.Error(), "exceeds the limit") {
		t.Errorf("got %v, want a limit error", err)
	}
	if _, err := g.RunOrdered(graph.FromInt64s(graph.Int64, []int{2}, []int64{10, 10})); err != nil {
		t.Errorf("100 elements: %v", err)
	}
}

// TestShapeChainDynamicBatch imports the Shape -> Gather -> Unsqueeze ->
// Concat -> Reshape chain torch exports for x.view(x.size(0), -1) and runs
// it on two batch sizes.
func TestShapeChainDynamicBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	nodes := []*onnx.Node{
		node("Shape", []string{"x"}, []string{"s"}),
		node("Gather", []string{"s", "zero"}, []string{"n"}, ai("axis", 0)),
		node("Unsqueeze", []string{"n", "axes"}, []string{"n1"}),
		node("Concat", []string{"n1", "minus1"}, []string{"shape"}, ai("axis", 0)),
		node("Reshape", []string{"x", "shape"}, []string{"flat"}),
		node("Gemm", []string{"flat", "fc.weight", "fc.bias"}, []string{"y"}, ai("transB", 1)),
	}
	inits := []*onnx.TensorProto{mustProto("zero", graph.Scalar64(0)), intInit("axes", []int{1}, 0), intInit("minus1", []int{1}, -1),
		floatInit("fc.weight", rng, 5, 12), floatInit("fc.bias", rng, 5)}
	m := model(13, nodes, inits, []*onnx.ValueInfo{vi("x", onnx.Float, -1, 3, 2, 2)}, []*onnx.ValueInfo{vi("y", onnx.Float, -1, 5)})
	g, err := Import(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range g.NamedParameters() {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); got != "fc.weight,fc.bias" {
		t.Errorf("got parameters %s, want fc.weight,fc.bias", got)
	}
	for _, batch := range []int{1, 3, 1} {
		x := nn.Ones(batch, 3, 2, 2)
		y := g.Forward(x)
		if want := []int{batch, 5}; !sameShape(y.Shape(), want) {
			t.Errorf("batch %d: got shape %v, want %v", batch, y.Shape(), want)
		}
	}
	if _, err := g.RunOrdered(graph.FromTensor(nn.Ones(2, 4, 2, 2))); err == nil || !strings.Contains(err.Error(), "want [batch 3 2 2]") {
		t.Errorf("got %v, want an input shape error naming [batch 3 2 2]", err)
	}
}

// TestFolding checks that nodes of constants are computed at import.
func TestFolding(t *testing.T) {
	nodes := []*onnx.Node{
		node("Add", []string{"c", "c"}, []string{"c2"}),
		node("Mul", []string{"x", "c2"}, []string{"y"}),
	}
	m := model(13, nodes, []*onnx.TensorProto{mustProto("c", graph.FromFloat64s(graph.Float32, []int{}, []float64{1.5}))},
		[]*onnx.ValueInfo{vi("x", onnx.Float, 2)}, []*onnx.ValueInfo{vi("y", onnx.Float, 2)})
	g, err := Import(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(g.Nodes()); n != 1 {
		t.Errorf("got %d nodes after folding, want 1", n)
	}
	if c := g.Const("c2"); c == nil || c.Float64s()[0] != 3 {
		t.Errorf("got folded c2 = %v, want 3", c)
	}
	if len(g.NamedParameters()) != 0 {
		t.Errorf("a one-element constant became a parameter: %v", g.NamedParameters())
	}
}

// TestIfCapturesOuterValues runs an If whose branches use a value of the
// enclosing graph, with gradients flowing through the branch taken.
func TestIfCapturesOuterValues(t *testing.T) {
	branch := func(op string) *onnx.Graph {
		return &onnx.Graph{Name: op, Node: []*onnx.Node{node(op, []string{"h", "h"}, []string{"out"})}, Output: []*onnx.ValueInfo{vi("out", onnx.Float)}}
	}
	m := model(13, []*onnx.Node{
		node("Relu", []string{"x"}, []string{"h"}),
		node("If", []string{"c"}, []string{"y"}, &onnx.Attribute{Name: "then_branch", Type: onnx.AttrGraph, G: branch("Add")},
			&onnx.Attribute{Name: "else_branch", Type: onnx.AttrGraph, G: branch("Mul")}),
	}, nil, []*onnx.ValueInfo{vi("x", onnx.Float, 2), vi("c", onnx.Bool)}, []*onnx.ValueInfo{vi("y", onnx.Float, 2)})
	m.Graph.Input[1].Type.Tensor.Shape = &onnx.Shape{}
	g, err := Import(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cond     int64
		want, dx []float32
	}{{1, []float32{6, 0}, []float32{2, 0}}, {0, []float32{9, 0}, []float32{6, 0}}} {
		x := nn.New([]float32{3, -1}, 2).SetRequiresGrad(true)
		outs, err := g.RunOrdered(graph.FromTensor(x), graph.FromInt64s(graph.Bool, []int{}, []int64{tc.cond}))
		if err != nil {
			t.Fatal(err)
		}
		y := outs[0].Tensor()
		y.Sum(false).Backward()
		for k := range tc.want {
			if y.Data()[k] != tc.want[k] || x.Grad().Data()[k] != tc.dx[k] {
				t.Errorf("cond %d: got y %v and dy/dx %v, want %v and %v", tc.cond, y.Data(), x.Grad().Data(), tc.want, tc.dx)
				break
			}
		}
	}
}
