package nn

import (
	"math"
	"sync"
	"testing"
)

// gradModeNet is a small conv-bn-relu-linear network for the grad-mode
// tests, built from a seeded generator so two builds are identical.
func gradModeNet() Module {
	ManualSeed(7)
	return NewSequential(
		NewConv2d(nil, 3, 8, 3, Padding(1)),
		NewBatchNorm2d(nil, 8),
		NewReLU(true),
		NewAdaptiveAvgPool2d(1, 1),
		NewFlatten(1, -1),
		NewLinear(nil, 8, 4, true),
	)
}

// trainGrads runs one forward and backward pass of m on x and returns a
// copy of every parameter's gradient (nil where there is none).
func trainGrads(m Module, x *Tensor) [][]float32 {
	m.ZeroGrad()
	NewCrossEntropyLoss().Forward(m.Forward(x), []int{0, 3}).Backward()
	var gs [][]float32
	for _, p := range m.Parameters() {
		if p.Grad() == nil {
			gs = append(gs, nil)
			continue
		}
		gs = append(gs, append([]float32(nil), p.Grad().Data()...))
	}
	return gs
}

// TestGradModePerGoroutine checks that an evaluation under NoGrad or Infer
// in one goroutine leaves another goroutine's training with its gradients:
// every training pass, run while evaluations keep starting and ending
// beside it, gets exactly the gradients of a pass run alone. Run it with
// -race: the goroutines share the grad-mode state.
func TestGradModePerGoroutine(t *testing.T) {
	x := RandN(2, 3, 8, 8)
	ref := gradModeNet()
	ref.Train()
	want := trainGrads(ref, x)

	train, eval := gradModeNet(), gradModeNet()
	train.Train()
	eval.Eval()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, infer := range []bool{false, true} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if infer {
					Infer(eval, x)
				} else {
					NoGrad(func() {
						if eval.Forward(x).RequiresGrad() {
							t.Error("NoGrad: got an output that requires grad")
						}
					})
				}
			}
		}()
	}
	for i := range 30 {
		// Train mode updates BatchNorm's running statistics but the
		// gradients of one pass do not depend on them.
		got := trainGrads(train, x)
		for j := range want {
			if got[j] == nil {
				t.Fatalf("pass %d: parameter %d got no gradient beside an evaluation", i, j)
			}
			for k := range want[j] {
				if got[j][k] != want[j][k] {
					t.Fatalf("pass %d: parameter %d element %d: got %v, want %v", i, j, k, got[j][k], want[j][k])
				}
			}
		}
	}
	close(stop)
	wg.Wait()
}

// TestNoGradNested checks GradEnabled through nested NoGrad calls, and that
// a goroutine started inside NoGrad records as usual.
func TestNoGradNested(t *testing.T) {
	w := Ones(2).SetRequiresGrad(true)
	if !GradEnabled() {
		t.Fatal("GradEnabled outside NoGrad: got false, want true")
	}
	NoGrad(func() {
		NoGrad(func() {})
		if GradEnabled() {
			t.Error("GradEnabled after a nested NoGrad returned: got true, want false")
		}
		if w.Mul(w).RequiresGrad() {
			t.Error("op inside NoGrad: got a result that requires grad")
		}
		done := make(chan bool)
		go func() { done <- w.Mul(w).RequiresGrad() }()
		if !<-done {
			t.Error("op in a goroutine started inside NoGrad: got no graph, want one (grad mode is per goroutine)")
		}
	})
	if !GradEnabled() || !w.Mul(w).RequiresGrad() {
		t.Error("after NoGrad: grad mode still off")
	}
}

// TestTrainStep checks that training steps run through TrainStep, whose
// activations come from a reused arena, give bit for bit the losses and
// parameters of the same steps run without it, on a batch whose data
// changes between steps (so stale arena contents would show).
func TestTrainStep(t *testing.T) {
	run := func(arena bool) ([]float32, []*Tensor) {
		m := gradModeNet()
		m.Train()
		var losses []float32
		for i := range 4 {
			x := RandN(2, 3, 8, 8)
			step := func(x *Tensor) {
				m.ZeroGrad()
				loss := NewCrossEntropyLoss().Forward(m.Forward(x), []int{i % 4, 1})
				loss.Backward()
				losses = append(losses, loss.Item())
				for _, p := range m.Parameters() {
					for j, g := range p.Grad().Data() {
						p.Data()[j] -= 0.1 * g
					}
				}
			}
			if arena {
				TrainStep(x, step)
			} else {
				step(x)
			}
		}
		return losses, m.Parameters()
	}
	ManualSeed(1)
	wantLoss, wantP := run(false)
	ManualSeed(1)
	gotLoss, gotP := run(true)
	for i := range wantLoss {
		if gotLoss[i] != wantLoss[i] {
			t.Errorf("step %d: got loss %v, want %v", i, gotLoss[i], wantLoss[i])
		}
	}
	for i := range wantP {
		for j := range wantP[i].data {
			if gotP[i].data[j] != wantP[i].data[j] {
				t.Fatalf("parameter %d element %d: got %v, want %v", i, j, gotP[i].data[j], wantP[i].data[j])
			}
		}
	}
}

// TestTrainArenaAccumulates checks a TrainArena step with two forward and
// backward passes in it (gradient accumulation over two micro-batches of
// different sizes), steps of a smaller batch in between and a Free before
// the last step, against the same steps on ordinary memory, bit for bit: the second pass allocates
// after the first's spare gradient buffers, which the arena must keep
// apart from the results it drops at the end of the step.
func TestTrainArenaAccumulates(t *testing.T) {
	run := func(arena bool) ([]float32, []*Tensor) {
		ManualSeed(5)
		m := NewSequential(
			NewConv2d(nil, 3, 16, 3, Padding(1)),
			NewBatchNorm2d(nil, 16),
			NewReLU(true),
			NewConv2d(nil, 16, 16, 3, Padding(1)),
			NewReLU(false),
			NewAdaptiveAvgPool2d(1, 1),
			NewFlatten(1, -1),
			NewLinear(nil, 16, 4, true),
		)
		m.Train()
		var mem TrainArena
		var losses []float32
		for i := range 5 {
			batch := 4
			if i == 2 {
				batch = 3
			}
			x := RandN(batch, 3, 20, 20)
			step := func(x *Tensor) {
				m.ZeroGrad()
				for _, part := range [][2]int{{0, 1}, {1, batch}} {
					xs := x.Narrow(0, part[0], part[1]-part[0])
					labels := make([]int, part[1]-part[0])
					for j := range labels {
						labels[j] = (i + j) % 4
					}
					loss := NewCrossEntropyLoss().Forward(m.Forward(xs), labels)
					losses = append(losses, loss.Item())
					loss.Backward()
				}
				for _, p := range m.Parameters() {
					for j, g := range p.Grad().Data() {
						p.Data()[j] -= 0.05 * g
					}
				}
			}
			if arena {
				mem.Step(x, step)
				if i == 3 {
					mem.Free() // the next step starts from fresh memory
				}
			} else {
				step(x)
			}
		}
		return losses, m.Parameters()
	}
	wantLoss, wantP := run(false)
	gotLoss, gotP := run(true)
	for i := range wantLoss {
		if math.Float32bits(gotLoss[i]) != math.Float32bits(wantLoss[i]) {
			t.Errorf("pass %d: loss %v with the arena, %v without", i, gotLoss[i], wantLoss[i])
		}
	}
	for i := range wantP {
		for j := range wantP[i].data {
			if math.Float32bits(gotP[i].data[j]) != math.Float32bits(wantP[i].data[j]) {
				t.Fatalf("parameter %d element %d: %v with the arena, %v without", i, j, gotP[i].data[j], wantP[i].data[j])
			}
		}
	}
}
