package nn_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/ckptkit/ckpt/nn"
)

// linGELU runs nn.LinearGELU with its Linear's weights (an MLP's first half).
type linGELU struct {
	nn.Base
	L *nn.Linear
}

func newLinGELU(l *nn.Linear) *linGELU {
	m := &linGELU{L: l}
	m.RegisterModule("l", &m.L)
	return m
}

func (m *linGELU) Forward(x *nn.Tensor) *nn.Tensor { return nn.LinearGELU(x, m.L.Weight, m.L.Bias) }

// TestPrepareLinear checks prepared Linear layers (packed weights, the
// result transposed out of the product's epilogue with bias and GELU)
// against the plain forward pass, over shapes that exercise the product's
// edges: one row, rows that are not a multiple of any tile, more columns
// than one cache block, and inner sizes that are not a multiple of the
// vector width. The tolerance is engineTol's: the same products summed in
// a different order.
func TestPrepareLinear(t *testing.T) {
	for _, tc := range []struct {
		lead      []int
		in, out   int
		bias, act bool
	}{
		{[]int{1}, 8, 5, true, false},
		{[]int{2, 197}, 64, 96, true, false},
		{[]int{3, 7}, 37, 100, false, false},
		{[]int{1, 700}, 24, 40, true, true},
		{[]int{5}, 300, 1000, true, true},
		{[]int{2, 49}, 96, 13, false, true},
	} {
		t.Run(fmt.Sprintf("%v_%dx%d_bias%v_gelu%v", tc.lead, tc.in, tc.out, tc.bias, tc.act), func(t *testing.T) {
			r := rand.New(rand.NewSource(7))
			l := nn.NewLinear(nil, tc.in, tc.out, tc.bias)
			var m nn.Module = l
			if tc.act {
				m = newLinGELU(l)
			}
			m.Eval()
			x := randomInput(r, append(append([]int(nil), tc.lead...), tc.in)...)
			want := plainForward(m, x)
			if tc.act {
				want = plainForward(l, x).GELU("none")
			}
			if err := nn.Prepare(m); err != nil {
				t.Fatal(err)
			}
			for range 2 { // packing, then the packed weights
				got := nn.Infer(m, x)
				if fmt.Sprint(got.Shape()) != fmt.Sprint(want.Shape()) {
					t.Fatalf("got shape %v, want %v", got.Shape(), want.Shape())
				}
				if d, lim := maxDiff(t, got, want); d > lim {
					t.Errorf("max|diff| = %.3g, want <= %.3g", d, lim)
				}
			}
		})
	}
}

// TestPrepareLinearFollowsWeights checks the invalidation rule for Linear
// layers: weights written through Data are not seen until MarkModified
// (which shows the packed copy is what runs), and are after it.
func TestPrepareLinearFollowsWeights(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	l := nn.NewLinear(nil, 16, 12, true)
	l.Eval()
	x := randomInput(r, 3, 16)
	if err := nn.Prepare(l); err != nil {
		t.Fatal(err)
	}
	before := nn.Infer(l, x)
	for i := range l.Weight.Data() {
		l.Weight.Data()[i] = float32(r.NormFloat64())
	}
	want := plainForward(l, x)
	if d, lim := maxDiff(t, want, before); d <= lim {
		t.Fatalf("the new weights changed the output by %.3g only: the test cannot tell", d)
	}
	if d, lim := maxDiff(t, nn.Infer(l, x), before); d > lim {
		t.Errorf("before MarkModified: max|diff| = %.3g from the packed weights' output, want <= %.3g", d, lim)
	}
	nn.MarkModified()
	if d, lim := maxDiff(t, nn.Infer(l, x), want); d > lim {
		t.Errorf("after MarkModified: max|diff| = %.3g from the new weights' output, want <= %.3g", d, lim)
	}
}
