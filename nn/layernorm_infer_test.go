package nn_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/ckptkit/ckpt/nn"
)

// TestLayerNormInfer checks LayerNorm's no-graph path (parallel rows,
// float32 output map) against its recording path (float64 throughout,
// which TestParity checks against torch), with and without the affine
// parameters, over row lengths that are and are not multiples of its
// four-way sums, and inputs offset far from zero so a cancellation in the
// variance would show. The tolerance is float32 rounding of the output map,
// a few ulps of max(1, |y|).
func TestLayerNormInfer(t *testing.T) {
	for _, tc := range []struct {
		shape, norm []int
		affine      bool
	}{
		{[]int{1, 197, 768}, []int{768}, true},
		{[]int{2, 56, 56, 96}, []int{96}, true},
		{[]int{3, 7}, []int{7}, false},
		{[]int{4, 3, 5}, []int{3, 5}, true},
		{[]int{2, 5}, []int{5}, true},
	} {
		t.Run(fmt.Sprintf("%v_%v_affine%v", tc.shape, tc.norm, tc.affine), func(t *testing.T) {
			r := rand.New(rand.NewSource(9))
			x := randomInput(r, tc.shape...)
			for i := range x.Data() {
				x.Data()[i] = x.Data()[i]*3 + 20
			}
			var opts []nn.Option
			if !tc.affine {
				opts = append(opts, nn.NoAffine())
			}
			m := nn.NewLayerNorm(nil, tc.norm, opts...)
			for _, p := range m.Parameters() {
				for i := range p.Data() {
					p.Data()[i] = float32(r.NormFloat64())
				}
			}
			xg := x.Detach()
			xg.SetRequiresGrad(true)
			want := m.Forward(xg) // records: the float64 path
			got := plainForward(m, x)
			if d, lim := maxDiff(t, got, want); d > lim/20 {
				t.Errorf("max|diff| = %.3g, want <= %.3g", d, lim/20)
			}
		})
	}
}
