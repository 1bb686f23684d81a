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

// TestSoftmaxNoSubnormals checks that the attention softmaxes leave no
// subnormal probability for a masked logit (-100 below the row's others,
// whose exponential is about 4e-44): a subnormal slows the product by v
// twentyfold. The masked entries must be exactly 0 and the others sum to 1
// within float32 rounding.
func TestSoftmaxNoSubnormals(t *testing.T) {
	const rows, l = 4, 49
	mk := func() []float32 {
		s := make([]float32, rows*l)
		for i := range s {
			s[i] = float32(math.Sin(float64(i) * 0.3))
			if i%l >= 30 {
				s[i] -= 100
			}
		}
		return s
	}
	check := func(name string, s []float32) {
		t.Helper()
		for r := range rows {
			sum := 0.0
			for j, v := range s[r*l : (r+1)*l] {
				if j >= 30 && v != 0 {
					t.Errorf("%s: row %d, masked column %d: got %g, want 0", name, r, j, v)
				}
				sum += float64(v)
			}
			if math.Abs(sum-1) > 1e-5 {
				t.Errorf("%s: row %d sums to %g, want 1", name, r, sum)
			}
		}
	}
	s := mk()
	softmaxRows(s, l)
	check("softmaxRows", s)
	s = mk()
	for r := range rows {
		softmaxRow(s[r*l : (r+1)*l])
	}
	check("softmaxRow", s)
	x := New(mk(), rows, l)
	check("softmaxRowsInPlace", softmaxRowsInPlace(x).data)
}
