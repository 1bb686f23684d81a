package nn

import (
	"math"
	"testing"
)

// TestDepthwisePaddingOnlyColumns covers depthwise kernels wider than the
// input, whose outer columns only ever see padding (mobilenet_v3 at 32 px,
// convnext below 96 px). On a 1×1 input with padding 2, a 5×5 kernel's
// output is, by definition, the center tap times the input plus the bias.
func TestDepthwisePaddingOnlyColumns(t *testing.T) {
	ManualSeed(5)
	conv := NewConv2d(nil, 8, 8, 5, Padding(2), Groups(8))
	x := RandN(2, 8, 1, 1)
	var y *Tensor
	NoGrad(func() { y = conv.Forward(x) })
	if got := y.Shape(); len(got) != 4 || got[0] != 2 || got[1] != 8 || got[2] != 1 || got[3] != 1 {
		t.Fatalf("output shape %v, want [2 8 1 1]", got)
	}
	w, b := conv.Weight.Data(), conv.Bias.Data()
	for n := range 2 {
		for c := range 8 {
			want := x.Data()[n*8+c]*w[c*25+12] + b[c]
			if got := y.Data()[n*8+c]; math.Abs(float64(got-want)) > 1e-6 {
				t.Errorf("sample %d channel %d: got %v, want %v", n, c, got, want)
			}
		}
	}
}
