package nn

import "testing"

func TestLinearBackward(t *testing.T) {
	l := NewLinear(nil, 3, 2, true)
	x := New([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	y := l.Forward(x).Sum(false)
	y.Backward()
	if l.Weight.Grad() == nil || l.Bias.Grad() == nil {
		t.Fatalf("got no gradients for weight or bias, want both")
	}
	// d sum(xWᵀ+b)/dW[j][i] = sum_r x[r][i]
	want := []float32{5, 7, 9, 5, 7, 9}
	for i, v := range l.Weight.Grad().Data() {
		if v != want[i] {
			t.Fatalf("got %v, want %v", l.Weight.Grad().Data(), want)
		}
	}
}
