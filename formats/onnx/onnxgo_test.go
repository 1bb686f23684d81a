package onnx

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	onnxgo "github.com/owulveryck/onnx-go"
	"gonum.org/v1/gonum/graph"
	"gonum.org/v1/gonum/graph/simple"
	gtensor "gorgonia.org/tensor"
)

// goBackend is the smallest onnx-go backend that keeps initializer tensors
// by node name, so that onnx-go serves as an independent decoder.
type goBackend struct {
	*simple.WeightedDirectedGraph
	byName map[string]*goNode
}

type goNode struct {
	id   int64
	name string
	t    gtensor.Tensor
}

func (n *goNode) ID() int64                                               { return n.id }
func (n *goNode) SetName(s string)                                        { n.name = s }
func (n *goNode) GetName() string                                         { return n.name }
func (n *goNode) SetTensor(t gtensor.Tensor) error                        { n.t = t; return nil }
func (n *goNode) GetTensor() gtensor.Tensor                               { return n.t }
func (b *goBackend) ApplyOperation(onnxgo.Operation, ...graph.Node) error { return nil }

func (b *goBackend) NewNode() graph.Node {
	n := &goNode{id: b.WeightedDirectedGraph.NewNode().ID()}
	return n
}

func decodeWithOnnxGo(t *testing.T, b []byte) (*goBackend, error) {
	t.Helper()
	be := &goBackend{WeightedDirectedGraph: simple.NewWeightedDirectedGraph(0, 0), byName: map[string]*goNode{}}
	m := onnxgo.NewModel(be)
	if err := m.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	for it := be.Nodes(); it.Next(); {
		if n, ok := it.Node().(*goNode); ok && n.name != "" {
			be.byName[n.name] = n
		}
	}
	return be, nil
}

// TestCrossCheckOnnxGo compares this package's initializers of the float32
// torch export (testdata/gen/onnx_fixtures.py) with what onnx-go decodes,
// before and after a write by this package.
func TestCrossCheckOnnxGo(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join(fixtures, "cnn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Unmarshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	ckpt, _ := cnnB(t)
	if _, err := m.ReplaceInitializers(ckpt); err != nil {
		t.Fatal(err)
	}
	written, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"torch export": orig, "written by this package": written} {
		t.Run(name, func(t *testing.T) {
			ours, err := Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			inits, _, err := ours.Initializers()
			if err != nil {
				t.Fatal(err)
			}
			theirs, err := decodeWithOnnxGo(t, b)
			if err != nil {
				t.Fatalf("onnx-go: %v", err)
			}
			for _, n := range inits {
				g := theirs.byName[n.Name]
				if g == nil || g.t == nil {
					t.Errorf("%s: onnx-go has no tensor", n.Name)
					continue
				}
				shape := make([]int64, 0, len(g.t.Shape()))
				for _, s := range g.t.Shape() {
					shape = append(shape, int64(s))
				}
				if !slices.Equal(shape, n.Tensor.Shape) {
					t.Errorf("%s: onnx-go shape %v, ours %v", n.Name, shape, n.Tensor.Shape)
				}
				want, ok := g.t.Data().([]float32)
				if !ok {
					t.Errorf("%s: onnx-go data %T, want []float32", n.Name, g.t.Data())
					continue
				}
				got, err := n.Tensor.Float32s()
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: values differ from onnx-go's", n.Name)
				}
			}
		})
	}
}

// onnx-go refuses the half-precision initializers this package reads: the
// reason it is not the reader (see the package doc).
func TestOnnxGoRefusesHalf(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(fixtures, "ext.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Open(filepath.Join(fixtures, "ext.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	embedded, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{"external": b, "embedded float16": embedded} {
		if _, err := decodeWithOnnxGo(t, in); err == nil {
			t.Errorf("%s: onnx-go decoded a model with a float16 initializer; the package doc says it cannot", name)
		}
	}
}
