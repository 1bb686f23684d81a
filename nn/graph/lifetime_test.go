package graph

import (
	"testing"
	"unsafe"

	"github.com/ckptkit/ckpt/nn"
)

// TestValuePlanning checks the executor's in-place and memory decisions in
// an inference call on small graphs whose kernels note where their results
// live: an activation overwrites an input that dies at it and nothing else
// shares, and only then; a dead value's memory is reused by a later one.
func TestValuePlanning(t *testing.T) {
	addr := map[string]uintptr{}
	spy := func(name string, f func(x *nn.Tensor) *nn.Tensor) Kernel {
		return func(_ *Context, in []*Value) ([]*Value, error) {
			y := f(in[0].Tensor())
			addr[name] = uintptr(unsafe.Pointer(unsafe.SliceData(y.Data())))
			return []*Value{FromTensor(y)}, nil
		}
	}
	neg := func(x *nn.Tensor) *nn.Tensor { return x.MulScalar(-1) }
	// reads notes where its input lives, as name.
	reads := func(name string) Kernel {
		return func(_ *Context, in []*Value) ([]*Value, error) {
			addr[name] = uintptr(unsafe.Pointer(unsafe.SliceData(in[0].Tensor().Data())))
			return []*Value{FromTensor(in[0].Tensor().MulScalar(-1))}, nil
		}
	}
	relu := func(_ *Context, in []*Value) ([]*Value, error) {
		return []*Value{FromTensor(in[0].Tensor().ReLU())}, nil
	}
	identity := func(_ *Context, in []*Value) ([]*Value, error) { return in[:1], nil }
	add := func(_ *Context, in []*Value) ([]*Value, error) {
		return []*Value{FromTensor(in[0].Tensor().Add(in[1].Tensor()))}, nil
	}
	node := func(k int, op string, kern Kernel, f *Fusion, out string, ins ...string) *Node {
		return &Node{Index: k, Op: op, Inputs: ins, Outputs: []string{out}, Kernel: kern, Pure: true, Fuse: f}
	}
	reluFuse := &Fusion{Act: &nn.ReLU{}}
	x := nn.New([]float32{1, -2, 3, -4}, 1, 4)
	for _, tc := range []struct {
		name   string
		nodes  []*Node
		out    string
		want   []float32
		same   [2]string // values that must share memory
		differ [2]string // values that must not
	}{
		{
			name:  "activation over a dying input",
			nodes: []*Node{node(0, "Neg", spy("a", neg), nil, "a", "x"), node(1, "Relu", relu, reluFuse, "b", "a"), node(2, "Neg", reads("b"), nil, "c", "b")},
			out:   "c", want: []float32{0, -2, 0, -4}, same: [2]string{"a", "b"},
		},
		{
			name: "input read later",
			nodes: []*Node{node(0, "Neg", spy("a", neg), nil, "a", "x"), node(1, "Relu", spy("b", func(x *nn.Tensor) *nn.Tensor { return x.ReLU() }), reluFuse, "b", "a"),
				node(2, "Add", add, nil, "c", "b", "a")},
			out: "c", want: []float32{-1, 4, -3, 8}, differ: [2]string{"a", "b"},
		},
		{
			name: "input shared through an identity",
			nodes: []*Node{node(0, "Neg", spy("a", neg), nil, "a", "x"), node(1, "Identity", identity, nil, "i", "a"),
				node(2, "Relu", spy("b", func(x *nn.Tensor) *nn.Tensor { return x.ReLU() }), reluFuse, "b", "a"), node(3, "Add", add, nil, "c", "b", "i")},
			out: "c", want: []float32{-1, 4, -3, 8}, differ: [2]string{"a", "b"},
		},
		{
			name: "dead memory reused",
			nodes: []*Node{node(0, "Neg", spy("a", neg), nil, "a", "x"), node(1, "Neg", spy("b", neg), nil, "b", "a"),
				node(2, "Neg", spy("c", neg), nil, "c", "b")},
			out: "c", want: []float32{-1, 2, -3, 4}, same: [2]string{"a", "c"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := New([]Input{{Name: "x", DType: Float32}}, []string{tc.out})
			for _, n := range tc.nodes {
				g.AddNode(n)
			}
			g.Eval()
			clear(addr)
			y := nn.Infer(g, x).Data()
			for k := range tc.want {
				if y[k] != tc.want[k] {
					t.Fatalf("got %v, want %v", y, tc.want)
				}
			}
			if p := tc.same; p[0] != "" && addr[p[0]] != addr[p[1]] {
				t.Errorf("%s and %s: got different memory, want the same", p[0], p[1])
			}
			if p := tc.differ; p[0] != "" && addr[p[0]] == addr[p[1]] {
				t.Errorf("%s and %s: got the same memory, want different", p[0], p[1])
			}
		})
	}
}
