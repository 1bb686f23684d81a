package onnximport

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
)

// FuzzImport feeds arbitrary bytes to the codec and the importer, seeded
// with the fixtures of testdata/onnx (testdata/gen/onnx_fixtures.py) and
// the small graphs of the gradient tests. Import must fail cleanly or give
// a graph that runs (or fails cleanly) on inputs of its declared shapes,
// within the element limit; a graph it imports must import again, with the
// same parameters, after WriteBack and a write-read round trip.
func FuzzImport(f *testing.F) {
	files, _ := filepath.Glob("../../../testdata/onnx/*.onnx")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil && len(b) < 1<<16 {
			f.Add(b)
		}
	}
	for _, tc := range gradCases() {
		m := model(tc.opset, tc.nodes, tc.inits(rand.New(rand.NewPCG(1, 2))), []*onnx.ValueInfo{vi("x", onnx.Float, int64ToDims(tc.x)...)}, []*onnx.ValueInfo{vi("y", onnx.Float)})
		if b, err := onnx.Marshal(m); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := onnx.Unmarshal(in)
		if err != nil {
			return
		}
		opts := Options{MaxElements: 1 << 12}
		g, err := Import(m, opts)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		var inputs []*graph.Value
		for _, gi := range g.Inputs() {
			shape := []int{}
			n := 1
			for _, d := range gi.Shape {
				if d < 0 {
					d = 2
				}
				shape = append(shape, d)
				n *= d
			}
			if len(shape) > 6 || n > 1<<10 {
				return
			}
			dt := gi.DType
			if dt == graph.Invalid {
				dt = graph.Float32
			}
			inputs = append(inputs, graph.Make(dt, shape, make([]float64, n)))
		}
		nn.NoGrad(func() { _, _ = g.RunOrdered(inputs...) })
		if err := WriteBack(m, g); err != nil {
			t.Fatalf("write back: %v", err)
		}
		b, err := onnx.Marshal(m)
		if err != nil {
			t.Fatalf("imported but cannot write: %v", err)
		}
		m2, err := onnx.Unmarshal(b)
		if err != nil {
			t.Fatalf("cannot read what was written: %v", err)
		}
		g2, err := Import(m2, opts)
		if err != nil {
			t.Fatalf("imported once, not after write back: %v", err)
		}
		p1, p2 := g.NamedParameters(), g2.NamedParameters()
		if len(p1) != len(p2) {
			t.Fatalf("got %d parameters after write back, want %d", len(p2), len(p1))
		}
		for k := range p1 {
			a, b := p1[k].Tensor.Data(), p2[k].Tensor.Data()
			if p1[k].Name != p2[k].Name || len(a) != len(b) {
				t.Fatalf("parameter %q became %q in the round trip", p1[k].Name, p2[k].Name)
			}
			for j := range a {
				if math.Float32bits(a[j]) != math.Float32bits(b[j]) {
					t.Fatalf("parameter %q element %d changed from %g to %g in the round trip", p1[k].Name, j, a[j], b[j])
				}
			}
		}
	})
}

func int64ToDims(s []int) []int64 {
	out := make([]int64, len(s))
	for k, d := range s {
		out[k] = int64(d)
	}
	return out
}
