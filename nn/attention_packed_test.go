package nn_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/ckptkit/ckpt/nn"
)

// TestSelfAttentionPacked checks the in-place heads of SelfAttentionPacked
// (no graph) against its composition of differentiable ops (a graph
// recorded), without a bias, with one bias for the batch (ViT-like, Swin's
// position bias) and with one per window (Swin's shift masks, -100s
// included). The two sum the same products in different orders; the
// tolerance is engineTol's.
func TestSelfAttentionPacked(t *testing.T) {
	for _, tc := range []struct {
		b, l, e, heads, g int // g = 0: no bias
	}{
		{1, 197, 96, 12, 0},
		{2, 49, 96, 3, 1},
		{8, 49, 64, 2, 4},
		{3, 5, 12, 3, 3},
	} {
		t.Run(fmt.Sprintf("b%d_l%d_e%d_h%d_g%d", tc.b, tc.l, tc.e, tc.heads, tc.g), func(t *testing.T) {
			r := rand.New(rand.NewSource(11))
			qkv := randomInput(r, tc.b, tc.l, 3*tc.e)
			var bias *nn.Tensor
			if tc.g > 0 {
				bias = randomInput(r, tc.g, tc.heads, tc.l, tc.l)
				for i := range bias.Data() {
					if r.Intn(4) == 0 {
						bias.Data()[i] = -100
					}
				}
			}
			scale := float32(0.3)
			got := nn.SelfAttentionPacked(qkv.Detach(), tc.heads, bias, scale)
			qg := qkv.Detach()
			qg.SetRequiresGrad(true)
			want := nn.SelfAttentionPacked(qg, tc.heads, bias, scale)
			if fmt.Sprint(got.Shape()) != fmt.Sprint(want.Shape()) {
				t.Fatalf("got shape %v, want %v", got.Shape(), want.Shape())
			}
			if d, lim := maxDiff(t, got, want); d > lim {
				t.Errorf("max|diff| = %.3g, want <= %.3g", d, lim)
			}
		})
	}
}
