package nn

import (
	"math"
	"testing"
)

// TestSoftmaxRows checks the one-pass softmax of a matrix against softmaxRow
// on each row, for rows whose maxima are close (the shared shift) and far
// apart (Swin's -100 masks can make one row's logits all much lower; the
// per-row path): the results must agree to float32 rounding of exp (a few
// ulps; 1e-6 relative to the row's largest probability).
func TestSoftmaxRows(t *testing.T) {
	for _, spread := range []float32{0, 5, 39, 41, 200} {
		const rows, l = 7, 49
		s := make([]float32, rows*l)
		for i := range s {
			s[i] = float32(math.Sin(float64(i)*1.7))*3 + float32(i/l)*spread/float32(rows-1)
		}
		want := append([]float32(nil), s...)
		for r := range rows {
			softmaxRow(want[r*l : (r+1)*l])
		}
		softmaxRows(s, l)
		for i := range s {
			if d := math.Abs(float64(s[i] - want[i])); d > 1e-6 || math.IsNaN(float64(s[i])) {
				t.Fatalf("spread %g: element %d: got %g, want %g", spread, i, s[i], want[i])
			}
		}
	}
}
