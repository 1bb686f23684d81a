package optim

import (
	"math"
	"runtime"
	"testing"

	"github.com/ckptkit/ckpt/nn"
)

// TestStepSplitSame checks that the updates split across goroutines
// (parameters over stepChunk elements, several threads) give the bits of
// the one-goroutine update: SGD's plain-momentum fast path and its general
// loop (weight decay, Nesterov), Adam and AdamW (with AMSGrad), over three
// steps (the first initialises the state).
func TestStepSplitSame(t *testing.T) {
	opts := map[string]struct {
		alg Algorithm
		o   []Option
	}{
		"sgd momentum":                {SGD, []Option{LR(0.1), Momentum(0.9)}},
		"sgd momentum+decay+nesterov": {SGD, []Option{LR(0.1), Momentum(0.9), WeightDecay(1e-2), Nesterov()}},
		"adam":                        {Adam, []Option{LR(0.01)}},
		"adamw amsgrad":               {AdamW, []Option{LR(0.01), WeightDecay(1e-2), AMSGrad()}},
	}
	for name, c := range opts {
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
			opt, err := New(c.alg, params, c.o...)
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
