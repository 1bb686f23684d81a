package nn

import "testing"

// TestEvalAllocs checks that inference (NoGrad, eval mode) allocates only the
// output tensor: its struct, its data and its shape. Layers whose work is
// parallel also start goroutines (parallelFor), which allocate; they are
// measured on inputs below the parallel threshold.
func TestEvalAllocs(t *testing.T) {
	bn := NewBatchNorm2d(nil, 8)
	bn.Eval()
	x := RandN(1, 8, 6, 6)
	conv1x1 := NewConv2d(nil, 8, 4, 1)
	conv3x3 := NewConv2d(nil, 8, 4, 3, Padding(1))
	cases := []struct {
		name string
		f    func()
		max  float64
	}{
		{"batchnorm_eval", func() { bn.Forward(x) }, 3},
		{"relu", func() { x.ReLU() }, 3},
		{"hardswish", func() { x.Hardswish() }, 3},
		{"add", func() { x.Add(x) }, 3},
		// MaxPool2dFn passes a closure to parallelFor: one more allocation.
		{"maxpool", func() { MaxPool2dFn(x, PoolParams{KernelSize: [2]int{2, 2}}) }, 4},
		{"adaptive_avg", func() { AdaptiveAvgPool2dFn(x, 1, 1) }, 3},
		{"reshape", func() { x.Reshape(8, -1) }, 2},
		// Convolutions add whatever gemm.Sgemm allocates (none for small
		// sizes), and a 3×3 one the column source it hands gemm.
		{"conv1x1", func() { conv1x1.Forward(x) }, 3},
		{"conv3x3", func() { conv3x3.Forward(x) }, 4},
	}
	for _, c := range cases {
		var got float64
		NoGrad(func() { got = testing.AllocsPerRun(20, c.f) })
		if got > c.max {
			t.Errorf("%s: got %v allocations per run, want at most %v", c.name, got, c.max)
		}
	}
}
