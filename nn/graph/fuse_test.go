package graph

import (
	"fmt"
	"testing"

	"github.com/ckptkit/ckpt/nn"
)

// TestPlanChains checks which nodes the fusion pass puts into one
// convolution chain: only values nothing else reads are fused away.
func TestPlanChains(t *testing.T) {
	conv := &Fusion{Conv: func(x, w *Value) (nn.ConvParams, bool) { return nn.ConvParams{}, true }}
	relu, sig, add, mul := &Fusion{Act: &nn.ReLU{}}, &Fusion{Act: &nn.Sigmoid{}}, &Fusion{Add: true}, &Fusion{Mul: true}
	type nd struct {
		f   *Fusion
		out string
		in  []string
	}
	for _, tc := range []struct {
		name    string
		nodes   []nd
		outputs []string
		want    string // the chains' members by node index
	}{
		{"conv relu", []nd{{conv, "c", []string{"x", "w"}}, {relu, "r", []string{"c"}}}, []string{"r"}, "[[0 1]]"},
		{"conv output read twice", []nd{{conv, "c", []string{"x", "w"}}, {relu, "r", []string{"c"}}}, []string{"r", "c"}, "[]"},
		{"residual and activation", []nd{{conv, "c", []string{"x", "w"}}, {conv, "d", []string{"x", "w"}},
			{add, "s", []string{"c", "d"}}, {relu, "r", []string{"s"}}}, []string{"r"}, "[[0 2 3]]"},
		{"silu", []nd{{conv, "c", []string{"x", "w"}}, {sig, "g", []string{"c"}}, {mul, "m", []string{"g", "c"}}}, []string{"m"}, "[[0 1 2]]"},
		{"silu input read elsewhere", []nd{{conv, "c", []string{"x", "w"}}, {sig, "g", []string{"c"}}, {mul, "m", []string{"c", "g"}},
			{add, "s", []string{"m", "c"}}}, []string{"s"}, "[]"},
		{"gate read elsewhere", []nd{{conv, "c", []string{"x", "w"}}, {sig, "g", []string{"c"}}, {mul, "m", []string{"c", "g"}},
			{add, "s", []string{"m", "g"}}}, []string{"s"}, "[]"},
		{"product of another value", []nd{{conv, "c", []string{"x", "w"}}, {sig, "g", []string{"c"}}, {mul, "m", []string{"x", "g"}}}, []string{"m"}, "[[0 1]]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := New([]Input{{Name: "x", DType: Float32}, {Name: "w", DType: Float32}}, tc.outputs)
			for k, n := range tc.nodes {
				g.AddNode(&Node{Index: k, Op: fmt.Sprint(k), Inputs: n.in, Outputs: []string{n.out}, Fuse: n.f, Pure: true})
			}
			if err := g.Prepare(); err != nil {
				t.Fatal(err)
			}
			var got [][]int
			for k := range g.nodes {
				if c := g.chains[k]; c != nil {
					got = append(got, c.members())
				}
			}
			if s := fmt.Sprint(got); s != tc.want {
				t.Errorf("got chains %s, want %s", s, tc.want)
			}
		})
	}
}

// TestChainsConcurrent runs a prepared graph of Conv -> BatchNormalization
// -> Add -> Relu nodes from several goroutines at once (each call has its
// own arena and value plan; the chain's batch-norm description is shared)
// and checks every result against the graph run op by op in grad mode,
// where nothing is fused.
func TestChainsConcurrent(t *testing.T) {
	p := nn.ConvParams{Stride: [2]int{1, 1}, Padding: [2]int{1, 1}, Dilation: [2]int{1, 1}, Groups: 1}
	conv := &Fusion{Conv: func(x, w *Value) (nn.ConvParams, bool) { return p, true }}
	convK := func(_ *Context, in []*Value) ([]*Value, error) {
		return []*Value{FromTensor(nn.Conv2dFn(in[0].Tensor(), in[1].Tensor(), in[2].Tensor(), p))}, nil
	}
	bnK := func(_ *Context, in []*Value) ([]*Value, error) {
		return []*Value{FromTensor(nn.BatchNormFn(in[0].Tensor(), in[3].Tensor(), in[4].Tensor(), in[1].Tensor(), in[2].Tensor(), false, 0, 1e-5))}, nil
	}
	addK := func(_ *Context, in []*Value) ([]*Value, error) {
		return []*Value{FromTensor(in[0].Tensor().Add(in[1].Tensor()))}, nil
	}
	reluK := func(_ *Context, in []*Value) ([]*Value, error) {
		return []*Value{FromTensor(in[0].Tensor().ReLU())}, nil
	}
	g := New([]Input{{Name: "x", DType: Float32}}, []string{"y"})
	seq := func(n int, f func(k int) float32) []float32 {
		d := make([]float32, n)
		for k := range d {
			d[k] = f(k)
		}
		return d
	}
	g.AddParameter("w", nn.Parameter(nn.New(seq(4*4*9, func(k int) float32 { return float32(k%7-3) / 10 }), 4, 4, 3, 3)))
	g.AddParameter("b", nn.Parameter(nn.New(seq(4, func(k int) float32 { return float32(k) / 10 }), 4)))
	g.AddParameter("scale", nn.Parameter(nn.New(seq(4, func(k int) float32 { return 1 + float32(k)/4 }), 4)))
	g.AddParameter("shift", nn.Parameter(nn.New(seq(4, func(k int) float32 { return -float32(k) / 8 }), 4)))
	g.AddBuffer("mean", nn.New(seq(4, func(k int) float32 { return float32(k) / 5 }), 4))
	g.AddBuffer("var", nn.New(seq(4, func(k int) float32 { return 0.5 + float32(k) }), 4))
	g.AddNode(&Node{Index: 0, Op: "Conv", Inputs: []string{"x", "w", "b"}, Outputs: []string{"c"}, Kernel: convK, Pure: true, Fuse: conv})
	g.AddNode(&Node{Index: 1, Op: "BatchNormalization", Inputs: []string{"c", "scale", "shift", "mean", "var"}, Outputs: []string{"n"}, Kernel: bnK, Fuse: &Fusion{BatchNorm: true, Eps: 1e-5}})
	g.AddNode(&Node{Index: 2, Op: "Add", Inputs: []string{"n", "x"}, Outputs: []string{"s"}, Kernel: addK, Pure: true, Fuse: &Fusion{Add: true}})
	g.AddNode(&Node{Index: 3, Op: "Relu", Inputs: []string{"s"}, Outputs: []string{"y"}, Kernel: reluK, Pure: true, Fuse: &Fusion{Act: &nn.ReLU{}}})
	g.Eval()
	if n := FusedChains(g); n != 1 {
		t.Fatalf("got %d fused chains, want 1", n)
	}
	if err := nn.Prepare(g); err != nil {
		t.Fatal(err)
	}
	const workers = 4
	xs := make([]*nn.Tensor, workers)
	want := make([][]float32, workers)
	for i := range xs {
		xs[i] = nn.New(seq(2*4*6*6, func(k int) float32 { return float32((k*(i+3))%11-5) / 4 }), 2, 4, 6, 6)
		want[i] = g.Forward(xs[i]).Data() // grad mode: node by node
	}
	got := make([][]float32, workers)
	done := make(chan int)
	for i := range workers {
		go func() {
			for range 20 {
				got[i] = nn.Infer(g, xs[i]).Data()
			}
			done <- i
		}()
	}
	for range workers {
		<-done
	}
	for i := range workers {
		for k := range want[i] {
			// The fused path folds the batch norm into the weights: float32
			// rounding of a 36-term sum, far below 1e-5 for values of order 1.
			if d := got[i][k] - want[i][k]; d > 1e-5 || d < -1e-5 {
				t.Fatalf("worker %d, element %d: got %v, want %v", i, k, got[i][k], want[i][k])
			}
		}
	}
}
