package optim

import (
	"math"
	"runtime"
	"testing"

	"github.com/ckptkit/ckpt/nn"
)

// TestSGDStepSplitSame checks that SGD's update split across goroutines
// (parameters over stepChunk elements, several threads) gives the bits of
// the one-goroutine update, for the plain-momentum fast path and the
// general loop (weight decay, Nesterov), over three steps (the first
// initialises the momentum buffers).
func TestSGDStepSplitSame(t *testing.T) {
	opts := map[string][]Option{
		"momentum":                {LR(0.1), Momentum(0.9)},
		"momentum+decay+nesterov": {LR(0.1), Momentum(0.9), WeightDecay(1e-2), Nesterov()},
	}
	for name, o := range opts {
		var got [2][]float32
		for k, threads := range []int{1, 2} {
			prev := runtime.GOMAXPROCS(threads)
			w := nn.Zeros(3*stepChunk + 17)
			small := nn.Zeros(5)
			for i := range w.Data() {
				w.Data()[i] = float32(math.Sin(float64(i)))
			}
			params := []*nn.Tensor{w, small}
			for _, p := range params {
				p.SetRequiresGrad(true)
			}
			opt, err := NewSGD(params, o...)
			if err != nil {
				t.Fatal(err)
			}
			for step := range 3 {
				opt.ZeroGrad()
				w.Mul(w).Sum(false).Add(small.Sum(false).MulScalar(float32(step))).Backward()
				opt.Step()
			}
			runtime.GOMAXPROCS(prev)
			got[k] = append(append([]float32(nil), w.Data()...), small.Data()...)
		}
		for i := range got[0] {
			if math.Float32bits(got[1][i]) != math.Float32bits(got[0][i]) {
				t.Fatalf("%s: element %d: got %v on two threads, want %v (one thread)", name, i, got[1][i], got[0][i])
			}
		}
	}
}
