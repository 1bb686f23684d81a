package onnximport

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/nn/graph"
)

// naiveEinsum is einsum by its definition, independent of the importer:
// for every assignment of the labels, the product of the operands'
// elements added to the output element. Explicit "->" only, no ellipsis.
func naiveEinsum(eq string, xs []*graph.Value) ([]float64, []int) {
	lhs, out, _ := strings.Cut(eq, "->")
	terms := strings.Split(lhs, ",")
	size := map[rune]int{}
	var labels []rune
	for k, term := range terms {
		for j, l := range term {
			if d := xs[k].Shape()[j]; d > size[l] {
				if _, ok := size[l]; !ok {
					labels = append(labels, l)
				}
				size[l] = d
			}
		}
	}
	var shape []int
	for _, l := range out {
		shape = append(shape, size[l])
	}
	flat := func(term string, shape []int, at map[rune]int) int {
		o := 0
		for j, l := range term {
			i := at[l]
			if shape[j] == 1 {
				i = 0 // broadcast
			}
			o = o*shape[j] + i
		}
		return o
	}
	y := make([]float64, numel(shape))
	at := map[rune]int{}
	var walk func(d int)
	walk = func(d int) {
		if d == len(labels) {
			p := 1.0
			for k, term := range terms {
				p *= xs[k].Float64s()[flat(term, xs[k].Shape(), at)]
			}
			y[flat(out, shape, at)] += p
			return
		}
		for i := range size[labels[d]] {
			at[labels[d]] = i
			walk(d + 1)
		}
	}
	walk(0)
	return y, shape
}

// TestEinsum checks Einsum against its definition, on the equations
// attention writes (which run as one batched matrix product) and on ones the
// product cannot express (which run on the generic loop).
func TestEinsum(t *testing.T) {
	for _, c := range []struct {
		eq     string
		shapes [][]int
	}{
		{"bhid,bhjd->bhij", [][]int{{2, 3, 5, 4}, {2, 3, 6, 4}}},          // MaxViT's q·kᵀ
		{"bhij,bhjd->bhid", [][]int{{2, 3, 5, 6}, {2, 3, 6, 4}}},          // and its attn·v
		{"bgnid,bgnjd->bgnij", [][]int{{2, 4, 2, 3, 5}, {2, 4, 2, 3, 5}}}, // its 5-d form
		{"ij,jk->ik", [][]int{{3, 4}, {4, 5}}},
		{"bij,jk->bik", [][]int{{2, 3, 4}, {4, 5}}},
		{"ibj,bjk->kbi", [][]int{{3, 2, 4}, {2, 4, 5}}}, // batch inside, output reordered
		{"ijk,kj->i", [][]int{{3, 4, 5}, {5, 4}}},       // two contracted labels
		{"ij,kl->ijkl", [][]int{{2, 3}, {4, 2}}},        // outer product
		{"ij,ij->", [][]int{{3, 4}, {3, 4}}},            // to a scalar
		{"bij,bjk->bik", [][]int{{2, 3, 4}, {1, 4, 5}}}, // broadcast batch: generic loop
		{"ij,jk->k", [][]int{{3, 4}, {4, 5}}},           // sums A's own label: generic loop
		{"ii,i->i", [][]int{{3, 3}, {3}}},               // diagonal: generic loop
		{"ij->ji", [][]int{{3, 4}}},                     // one operand: generic loop
	} {
		t.Run(c.eq, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			var ins []*onnx.ValueInfo
			var names []string
			var xs []*graph.Value
			for k, s := range c.shapes {
				name := string(rune('a' + k))
				dims := make([]int64, len(s))
				d := make([]float64, numel(s))
				for j := range s {
					dims[j] = int64(s[j])
				}
				for j := range d {
					d[j] = rng.Float64()*2 - 1
				}
				ins = append(ins, vi(name, onnx.Float, dims...))
				names = append(names, name)
				xs = append(xs, graph.FromFloat64s(graph.Float32, s, d))
			}
			m := model(12, []*onnx.Node{node("Einsum", names, []string{"y"}, as("equation", c.eq))}, nil, ins, []*onnx.ValueInfo{{Name: "y"}})
			g, err := Import(m, Options{})
			if err != nil {
				t.Fatal(err)
			}
			outs, err := g.RunOrdered(xs...)
			if err != nil {
				t.Fatal(err)
			}
			want, shape := naiveEinsum(c.eq, xs)
			if !slices.Equal(outs[0].Shape(), shape) {
				t.Fatalf("shape got %v, want %v", outs[0].Shape(), shape)
			}
			got := outs[0].Float64s()
			for k := range want {
				// float32 sums of at most 20 products of |x| <= 1.
				if math.Abs(got[k]-want[k]) > 1e-5*math.Max(1, math.Abs(want[k])) {
					t.Fatalf("element %d: got %g, want %g", k, got[k], want[k])
				}
			}
		})
	}
}

// TestFloat32Paths checks the ops that run on nn's float32 kernels for
// particular attributes against their ONNX definitions: HardSigmoid with
// torch's constants (clamp(x/6 + 1/2, 0, 1)) and Pow with a constant
// exponent of 2.
func TestFloat32Paths(t *testing.T) {
	two := &onnx.Attribute{Name: "value", Type: onnx.AttrTensor, T: mustProto("two", FromF(2))}
	for _, c := range []struct {
		name  string
		nodes []*onnx.Node
		want  func(x float64) float64
	}{
		{"HardSigmoid", []*onnx.Node{node("HardSigmoid", []string{"x"}, []string{"y"}, af("alpha", 1.0/6))},
			func(x float64) float64 { return math.Max(0, math.Min(1, x/6+0.5)) }},
		{"Pow 2", []*onnx.Node{node("Constant", nil, []string{"two"}, two), node("Pow", []string{"x", "two"}, []string{"y"})},
			func(x float64) float64 { return x * x }},
	} {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			d := make([]float64, 64)
			for k := range d {
				d[k] = rng.Float64()*10 - 5 // both sides of HardSigmoid's clamps
			}
			x := graph.FromFloat64s(graph.Float32, []int{4, 16}, d)
			m := model(13, c.nodes, nil, []*onnx.ValueInfo{vi("x", onnx.Float, 4, 16)}, []*onnx.ValueInfo{{Name: "y"}})
			g, err := Import(m, Options{})
			if err != nil {
				t.Fatal(err)
			}
			outs, err := g.RunOrdered(x)
			if err != nil {
				t.Fatal(err)
			}
			got, in := outs[0].Float64s(), x.Float64s()
			if !slices.Equal(outs[0].Shape(), x.Shape()) {
				t.Fatalf("shape got %v, want %v", outs[0].Shape(), x.Shape())
			}
			for k := range in {
				// One float32 rounding of the result (and of x/6 + 1/2).
				if w := c.want(in[k]); math.Abs(got[k]-w) > 2e-7*math.Max(1, math.Abs(w)) {
					t.Fatalf("x = %g: got %g, want %g", in[k], got[k], w)
				}
			}
		})
	}
}
