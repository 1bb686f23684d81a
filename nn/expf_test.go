package nn

import (
	"math"
	"testing"
)

// TestExpf32 checks the float32 exponential against math.Exp over its whole
// range: within 2 ulp of the correctly rounded result (Cephes documents 1).
func TestExpf32(t *testing.T) {
	worst := 0.0
	for x := float32(-87.3); x < 88.7; x += 0.0137 {
		want := math.Exp(float64(x))
		got := float64(expf32(x))
		ulp := math.Abs(float64(math.Nextafter32(float32(want), float32(math.Inf(1)))) - float64(float32(want)))
		if e := math.Abs(got-want) / ulp; e > worst {
			worst = e
		}
	}
	if worst > 2 {
		t.Errorf("got max error %.2f ulp, want at most 2", worst)
	}
	for _, c := range []struct{ x, want float32 }{
		{0, 1}, {float32(math.Inf(-1)), 0}, {100, float32(math.Inf(1))}, {-200, 0},
	} {
		if got := expf32(c.x); got != c.want {
			t.Errorf("expf32(%v): got %v, want %v", c.x, got, c.want)
		}
	}
	if got := expf32(float32(math.NaN())); got == got {
		t.Errorf("expf32(NaN): got %v, want NaN", got)
	}
}
