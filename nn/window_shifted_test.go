package nn_test

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"

	"github.com/ckptkit/ckpt/nn"
)

// TestWindowShifted checks the one-pass shifted window partition and
// reverse (no graph) against their composition of Roll and
// WindowPartition / WindowReverse (a graph recorded), which are exact
// copies: the results must be equal.
func TestWindowShifted(t *testing.T) {
	for _, tc := range []struct{ b, h, w, c, wh, ww, sh, sw int }{
		{1, 56, 56, 3, 7, 7, 3, 3},
		{2, 14, 21, 5, 7, 7, 0, 0},
		{2, 8, 12, 4, 4, 6, 2, 5},
		{1, 7, 7, 2, 7, 7, 3, 3},
	} {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			r := rand.New(rand.NewSource(13))
			x := randomInput(r, tc.b, tc.h, tc.w, tc.c)
			xg := x.Detach()
			xg.SetRequiresGrad(true)
			got := nn.WindowPartitionShifted(x, tc.wh, tc.ww, tc.sh, tc.sw)
			want := nn.WindowPartitionShifted(xg, tc.wh, tc.ww, tc.sh, tc.sw)
			if !slices.Equal(got.Shape(), want.Shape()) || !slices.Equal(got.Data(), want.Data()) {
				t.Fatalf("partition: got shape %v, want %v, or the data differ", got.Shape(), want.Shape())
			}
			wg := got.Detach()
			wg.SetRequiresGrad(true)
			back := nn.WindowReverseShifted(got, tc.wh, tc.ww, tc.h, tc.w, tc.sh, tc.sw)
			wantBack := nn.WindowReverseShifted(wg, tc.wh, tc.ww, tc.h, tc.w, tc.sh, tc.sw)
			if !slices.Equal(back.Shape(), wantBack.Shape()) || !slices.Equal(back.Data(), wantBack.Data()) {
				t.Fatalf("reverse: got shape %v, want %v, or the data differ", back.Shape(), wantBack.Shape())
			}
			if !slices.Equal(back.Data(), x.Data()) {
				t.Errorf("reverse(partition(x)) differs from x")
			}
		})
	}
}
