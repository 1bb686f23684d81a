package models

import (
	"math"
	"testing"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/optim"
)

// TestTrainArenaMatchesHeap checks, for an architecture of each family,
// that training steps run through nn.TrainArena (activations in reused
// arena memory, given back to gradients as Backward passes them) give bit
// for bit the losses, parameters and running statistics of the same steps
// on ordinary memory. Every step draws a new batch, so that a buffer read
// after it was lent to a gradient, or a stale one read before it was
// written, would show.
func TestTrainArenaMatchesHeap(t *testing.T) {
	for _, c := range []struct {
		arch string
		size int
	}{
		{"resnet18", 64}, {"mobilenet_v2", 64}, {"efficientnet_b0", 64}, {"convnext_tiny", 64},
		{"densenet121", 64}, {"shufflenet_v2_x0_5", 64}, {"googlenet", 96}, {"swin_t", 224},
	} {
		t.Run(c.arch, func(t *testing.T) {
			if testing.Short() && c.arch == "swin_t" {
				t.Skip("large model in -short mode")
			}
			run := func(arena bool) ([]float32, map[string][]float32) {
				nn.ManualSeed(7)
				m, err := Build(c.arch, Config{NumClasses: 10})
				if err != nil {
					t.Fatal(err)
				}
				m.Train()
				opt, err := optim.NewSGD(m.Parameters(), optim.LR(0.01), optim.Momentum(0.9))
				if err != nil {
					t.Fatal(err)
				}
				loss := nn.NewCrossEntropyLoss()
				var mem nn.TrainArena
				var losses []float32
				for i := range 3 {
					x := nn.RandN(2, 3, c.size, c.size)
					labels := []int{i, 9 - i}
					step := func(x *nn.Tensor) {
						y := m.Forward(x)
						l := loss.Forward(y, labels)
						losses = append(losses, l.Item())
						l.Backward()
					}
					opt.ZeroGrad()
					if arena {
						mem.Step(x, step)
					} else {
						step(x)
					}
					opt.Step()
				}
				state := map[string][]float32{}
				type named interface {
					NamedParameters() []nn.NamedTensor
					NamedBuffers() []nn.NamedTensor
				}
				nm := m.(named)
				for _, kv := range append(nm.NamedParameters(), nm.NamedBuffers()...) {
					state[kv.Name] = append([]float32(nil), kv.Tensor.Data()...)
				}
				return losses, state
			}
			wantLoss, want := run(false)
			gotLoss, got := run(true)
			for i := range wantLoss {
				if math.Float32bits(gotLoss[i]) != math.Float32bits(wantLoss[i]) {
					t.Errorf("step %d: loss %v with the arena, %v without", i+1, gotLoss[i], wantLoss[i])
				}
			}
			bad := 0
			for name, w := range want {
				g := got[name]
				for j := range w {
					if math.Float32bits(g[j]) != math.Float32bits(w[j]) {
						if bad++; bad <= 5 {
							t.Errorf("%s[%d]: %v with the arena, %v without", name, j, g[j], w[j])
						}
						break
					}
				}
			}
		})
	}
}
