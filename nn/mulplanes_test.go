package nn

import (
	"math"
	"testing"
)

// TestMulPlanes checks the product of a tensor by one value per plane (a
// layer scale [C,1,1] or a squeeze-and-excitation scale [N,C,1,1], on
// either side) against the same product and gradients computed element by
// element in float64: the result and the full operand's gradient exactly,
// the per-plane operand's gradient within float32 rounding of the float64
// sums.
func TestMulPlanes(t *testing.T) {
	const n, c, h, w = 3, 5, 7, 6
	for _, tc := range []struct {
		name  string
		scale []int
		left  bool // the scale is the left operand
	}{
		{"layer scale left", []int{c, 1, 1}, true},
		{"layer scale right", []int{c, 1, 1}, false},
		{"per image and channel", []int{n, c, 1, 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := RandN(n, c, h, w).SetRequiresGrad(true)
			s := RandN(tc.scale...).SetRequiresGrad(true)
			var y *Tensor
			if tc.left {
				y = s.Mul(x)
			} else {
				y = x.Mul(s)
			}
			a, b := x, s
			if tc.left {
				a, b = s, x
			}
			os := broadcastShape("mul", a.shape, b.shape)
			if mulPlanes(a.Detach(), b.Detach(), os, makePlan(os, stridesFor(a.shape, os), stridesFor(b.shape, os))) == nil {
				t.Fatal("mulPlanes does not take this product")
			}
			g := RandN(y.Shape()...)
			y.BackwardWith(g)
			sIdx := func(i, j int) int {
				if len(tc.scale) == 3 {
					return j
				}
				return i*c + j
			}
			wantGS := make([]float64, len(s.data))
			for i := range n {
				for j := range c {
					sv := s.data[sIdx(i, j)]
					for k := range h * w {
						e := (i*c+j)*h*w + k
						if got, want := y.data[e], sv*x.data[e]; math.Float32bits(got) != math.Float32bits(want) {
							t.Fatalf("y[%d] = %v, want %v", e, got, want)
						}
						if got, want := x.Grad().data[e], g.data[e]*sv; got != want {
							t.Fatalf("x.grad[%d] = %v, want %v", e, got, want)
						}
						wantGS[sIdx(i, j)] += float64(g.data[e]) * float64(x.data[e])
					}
				}
			}
			for i, want := range wantGS {
				if got := float64(s.Grad().data[i]); math.Abs(got-want) > 1e-6*math.Max(1, math.Abs(want)) {
					t.Errorf("s.grad[%d] = %v, want %v", i, got, want)
				}
			}
		})
	}
}

// TestPermuteTiled checks permutations that are batches of matrix
// transposes (NCHW <-> NHWC among them), which permuteInto copies in tiles,
// against the element-by-element definition, on sizes that leave partial
// tiles.
func TestPermuteTiled(t *testing.T) {
	for _, tc := range []struct {
		shape, perm []int
	}{
		{[]int{2, 40, 9, 7}, []int{0, 2, 3, 1}},
		{[]int{3, 9, 7, 40}, []int{0, 3, 1, 2}},
		{[]int{33, 70}, []int{1, 0}},
		{[]int{12, 10, 35}, []int{2, 0, 1}},
	} {
		x := RandN(tc.shape...)
		y := x.Permute(tc.perm...)
		in := stridesFor(tc.shape, tc.shape)
		out := y.Shape()
		idx := make([]int, len(out))
		for o := range y.data {
			rem, src := o, 0
			for d := len(out) - 1; d >= 0; d-- {
				idx[d] = rem % out[d]
				rem /= out[d]
			}
			for d, p := range tc.perm {
				src += idx[d] * in[p]
			}
			if y.data[o] != x.data[src] {
				t.Fatalf("permute %v of %v: element %d is %v, want %v", tc.perm, tc.shape, o, y.data[o], x.data[src])
			}
		}
	}
}
