package graph

import (
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/nn"
)

func addKernel(_ *Context, in []*Value) ([]*Value, error) {
	return []*Value{FromTensor(in[0].Tensor().Add(in[1].Tensor()))}, nil
}

func TestRunNamedInputsAndOutputs(t *testing.T) {
	g := New([]Input{{Name: "a", DType: Float32, Shape: []int{-1, 2}}, {Name: "b", DType: Float32}}, []string{"sum", "twice"})
	g.AddNode(&Node{Index: 0, Name: "add", Op: "Add", Inputs: []string{"a", "b"}, Outputs: []string{"sum"}, Kernel: addKernel, Pure: true})
	g.AddNode(&Node{Index: 1, Name: "add2", Op: "Add", Inputs: []string{"sum", "sum"}, Outputs: []string{"twice"}, Kernel: addKernel, Pure: true})
	a := FromTensor(nn.New([]float32{1, 2, 3, 4}, 2, 2))
	b := FromTensor(nn.New([]float32{10, 20}, 2))
	out, err := g.Run(map[string]*Value{"a": a, "b": b})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]float32{"sum": {11, 22, 13, 24}, "twice": {22, 44, 26, 48}} {
		got := out[name].Tensor().Data()
		for k := range want {
			if got[k] != want[k] {
				t.Errorf("%s: got %v, want %v", name, got, want)
				break
			}
		}
	}
	for _, tc := range []struct {
		name string
		in   map[string]*Value
		want string
	}{
		{"missing", map[string]*Value{"a": a}, `input "b" is missing`},
		{"extra", map[string]*Value{"a": a, "b": b, "c": b}, `"c" is not an input`},
		{"rank", map[string]*Value{"a": b, "b": b}, `want rank 2`},
		{"dtype", map[string]*Value{"a": a, "b": Scalar64(1)}, `got int64, want float32`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := g.Run(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestShapeNodesRunOncePerShape checks that nodes computing from input
// shapes only are cached per input shape while the others run every call.
func TestShapeNodesRunOncePerShape(t *testing.T) {
	shapeRuns, addRuns := 0, 0
	shape := func(_ *Context, in []*Value) ([]*Value, error) {
		shapeRuns++
		d := make([]int64, in[0].Rank())
		for k, s := range in[0].Shape() {
			d[k] = int64(s)
		}
		return []*Value{FromInt64s(Int64, []int{len(d)}, d)}, nil
	}
	reshape := func(_ *Context, in []*Value) ([]*Value, error) {
		return []*Value{in[0].WithShape([]int{in[1].Ints()[0], -1 + 1 + in[0].Numel()/in[1].Ints()[0]})}, nil
	}
	g := New([]Input{{Name: "x", DType: Float32}}, []string{"y"})
	g.AddNode(&Node{Op: "Shape", Inputs: []string{"x"}, Outputs: []string{"s"}, Kernel: shape, Pure: true, ShapeOnly: true})
	g.AddNode(&Node{Op: "Reshape", Inputs: []string{"x", "s"}, Outputs: []string{"r"}, Kernel: reshape, Pure: true})
	g.AddNode(&Node{Op: "Add", Inputs: []string{"r", "r"}, Outputs: []string{"y"}, Pure: true, Kernel: func(c *Context, in []*Value) ([]*Value, error) {
		addRuns++
		return addKernel(c, in)
	}})
	for _, tc := range []struct {
		shape           []int
		wantShape, wAdd int
	}{{[]int{2, 3}, 1, 1}, {[]int{2, 3}, 1, 2}, {[]int{4, 3}, 2, 3}, {[]int{2, 3}, 2, 4}} {
		if _, err := g.RunOrdered(FromTensor(nn.Zeros(tc.shape...))); err != nil {
			t.Fatal(err)
		}
		if shapeRuns != tc.wantShape || addRuns != tc.wAdd {
			t.Errorf("after input %v: got %d Shape and %d Add runs, want %d and %d", tc.shape, shapeRuns, addRuns, tc.wantShape, tc.wAdd)
		}
	}
}

func TestParametersByDottedName(t *testing.T) {
	g := New([]Input{{Name: "x"}}, []string{"y"})
	g.AddParameter("layer1.0.conv.weight", nn.Ones(2))
	g.AddParameter("layer1.0.conv.bias", nn.Ones(2))
	g.AddParameter("onnx::Conv_193", nn.Ones(1))
	g.AddParameter("odd..name", nn.Ones(1))
	g.AddBuffer("bn.running_mean", nn.Zeros(2))
	var names []string
	for _, p := range g.NamedParameters() {
		names = append(names, p.Name)
		if !p.Tensor.RequiresGrad() {
			t.Errorf("%s does not require grad", p.Name)
		}
	}
	// torch's order: a module's own parameters before its children's.
	want := []string{"onnx::Conv_193", "odd__name", "layer1.0.conv.weight", "layer1.0.conv.bias"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("got parameters %v, want %v", names, want)
	}
	sd := g.StateDict()
	if sd.Tensor("bn.running_mean") == nil || sd.Tensor("layer1.0.conv.weight") == nil {
		t.Errorf("got state dict keys %v, want bn.running_mean and layer1.0.conv.weight among them", sd.Names())
	}
}
