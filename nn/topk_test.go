package nn

import (
	"math"
	"slices"
	"testing"
)

func TestTopK(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		name string
		v    []float32
		k    int
		want []int
	}{
		{"nan first, ties by lower index", []float32{0.5, 3, -1, 3, nan, 2}, 4, []int{4, 1, 3, 5}},
		{"k above length", []float32{1, 2}, 5, []int{1, 0}},
		{"k zero", []float32{1, 2}, 0, []int{}},
		{"negative k", []float32{1, 2}, -1, []int{}},
		{"infinities", []float32{float32(math.Inf(-1)), 0, float32(math.Inf(1))}, 3, []int{2, 1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := TopK(tt.v, tt.k); !slices.Equal(got, tt.want) {
				t.Fatalf("TopK(%v, %d) = %v, want %v", tt.v, tt.k, got, tt.want)
			}
		})
	}
}

func TestTensorTopK(t *testing.T) {
	x := New([]float32{0, 5, 1, 9, 2, 3, 7, 7}, 2, 4)
	got := x.TopK(2)
	want := [][]int{{3, 1}, {2, 3}}
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d", len(got), len(want))
	}
	for r := range want {
		if !slices.Equal(got[r], want[r]) {
			t.Errorf("row %d: got %v, want %v", r, got[r], want[r])
		}
	}
	if got := New([]float32{1, 3, 2}, 3).TopK(1); len(got) != 1 || !slices.Equal(got[0], []int{1}) {
		t.Errorf("1-d: got %v, want [[1]]", got)
	}
}
