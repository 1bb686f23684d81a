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
