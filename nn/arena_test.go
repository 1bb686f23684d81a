package nn

import (
	"fmt"
	"slices"
	"testing"
	"unsafe"
)

// arenaNet is a small network whose forward pass goes through every kind of
// result allocation Infer redirects: conv (written whole), batch norm,
// activations, pooling, reshape views, broadcasting and same-shape binary
// ops, concatenation, reduction and linear.
type arenaNet struct {
	Base
	conv *Conv2d
	dw   *Conv2d
	bn   *BatchNorm2d
	fc   *Linear
}

func newArenaNet() *arenaNet {
	m := &arenaNet{
		conv: NewConv2d(nil, 3, 4, 3, Padding(1)),
		dw:   NewConv2d(nil, 4, 4, 3, Padding(1), Groups(4), NoBias()), // accumulates into its output
		bn:   NewBatchNorm2d(nil, 4),
		fc:   NewLinear(nil, 8*3*3, 5, true),
	}
	m.bn.Eval()
	return m
}

func (m *arenaNet) Forward(x *Tensor) *Tensor {
	y := m.bn.Forward(m.conv.Forward(x)).ReLU()
	y = y.Add(m.dw.Forward(y).Sigmoid()).Mul(Scalar(0.5))
	y = MaxPool2dFn(Cat([]*Tensor{y, y.Tanh()}, 1), PoolParams{KernelSize: [2]int{2, 2}, Stride: [2]int{2, 2}})
	y = y.Sub(y.Mean(true, 2, 3))
	return m.fc.Forward(y.Flatten(1, -1))
}

func TestInferMatchesForward(t *testing.T) {
	m := newArenaNet()
	x1, x2 := RandN(2, 3, 6, 6), RandN(2, 3, 6, 6)
	var want1, want2 *Tensor
	NoGrad(func() { want1, want2 = m.Forward(x1), m.Forward(x2) })
	in1 := append([]float32(nil), x1.data...)
	got1 := Infer(m, x1)
	got2 := Infer(m, x2) // reuses the memory of the first call
	if !slices.Equal(got1.data, want1.data) {
		t.Errorf("first call: got %v, want %v", got1.data, want1.data)
	}
	if !slices.Equal(got2.data, want2.data) {
		t.Errorf("second call: got %v, want %v", got2.data, want2.data)
	}
	if !slices.Equal(x1.data, in1) {
		t.Error("Infer changed its input")
	}
	if got1.arena != nil || got2.arena != nil {
		t.Error("Infer returned a tensor tied to an arena")
	}
	if got1.RequiresGrad() || got1.fn != nil {
		t.Error("Infer recorded a graph")
	}
}

// TestArenaReuse runs one forward pass twice on one arena, as Infer does,
// and checks that the second pass allocates nothing new: every result of
// the first pass's ops is handed out again.
func TestArenaReuse(t *testing.T) {
	m := newArenaNet()
	a := new(arena)
	run := func(x *Tensor) []uintptr {
		NoGrad(func() { m.Forward(&Tensor{data: x.data, shape: x.shape, arena: a}) })
		var ptrs []uintptr
		for _, b := range a.bufs[:a.next] {
			ptrs = append(ptrs, uintptr(unsafe.Pointer(unsafe.SliceData(b))))
		}
		a.reset()
		return ptrs
	}
	first := run(RandN(2, 3, 6, 6))
	second := run(RandN(2, 3, 6, 6))
	if len(first) < 10 {
		t.Fatalf("the pass drew %d results from the arena, want every op's (at least 10)", len(first))
	}
	if !slices.Equal(first, second) {
		t.Errorf("second pass used other buffers: got %x, want %x", second, first)
	}
	// A larger input outgrows the buffers: they are replaced, not overrun.
	third := run(RandN(3, 3, 6, 6))
	if len(third) != len(first) || slices.Equal(third, first) {
		t.Errorf("a larger batch reused buffers too small for it: got %x after %x", third, first)
	}
}

// TestInferOutputViews covers outputs that are the input itself or a view
// of arena memory: the first must come back as the caller's tensor, the
// second as a copy the next call cannot overwrite.
func TestInferOutputViews(t *testing.T) {
	x := RandN(2, 3)
	if got := Infer(NewIdentity(), x); got != x {
		t.Errorf("Identity: got a new tensor, want the input back")
	}
	sq := &squareView{}
	got := Infer(sq, x)
	want := append([]float32(nil), got.data...)
	Infer(sq, RandN(2, 3))
	if !slices.Equal(got.data, want) {
		t.Errorf("output view was overwritten by the next call: got %v, want %v", got.data, want)
	}
}

// squareView returns x*x reshaped: a view of arena memory.
type squareView struct{ Base }

func (*squareView) Forward(x *Tensor) *Tensor { return x.Mul(x).Reshape(6) }

// TestInferConcurrent runs Infer from several goroutines on one model:
// each call has an arena of its own, so every result must be its input's.
func TestInferConcurrent(t *testing.T) {
	m := newArenaNet()
	const workers, calls = 4, 25
	xs := make([]*Tensor, workers)
	wants := make([]*Tensor, workers)
	for i := range xs {
		xs[i] = RandN(2, 3, 6, 6)
		NoGrad(func() { wants[i] = m.Forward(xs[i]) })
	}
	errs := make(chan string, workers)
	for i := range workers {
		go func() {
			for range calls {
				if got := Infer(m, xs[i]); !slices.Equal(got.data, wants[i].data) {
					errs <- fmt.Sprintf("worker %d: got %v, want %v", i, got.data, wants[i].data)
					return
				}
			}
			errs <- ""
		}()
	}
	for range workers {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
}
