package nn

import (
	"testing"
	"unsafe"
)

// twoIn is a module of two inputs for InferCall: x*2 + y.
type twoIn struct{ Base }

func (m *twoIn) Forward(x *Tensor) *Tensor { panic("twoIn takes two inputs") }

func TestInferCall(t *testing.T) {
	m := &twoIn{}
	m.Eval()
	x, y := New([]float32{1, 2}, 2), New([]float32{10, 20}, 2)
	var inCall, gradOn bool
	outs := InferCall(m, []*Tensor{x, y}, func(in []*Tensor) []*Tensor {
		inCall = in[0].arena != nil && in[0].arena.noGrad
		gradOn = GradEnabled()
		return []*Tensor{in[0].MulScalar(2).Add(in[1]), in[1]}
	})
	if !inCall || gradOn {
		t.Fatalf("got inputs in an inference arena %v, grad enabled %v; want true, false", inCall, gradOn)
	}
	if got := outs[0].Data(); got[0] != 12 || got[1] != 24 {
		t.Errorf("got %v, want [12 24]", got)
	}
	if outs[0].arena != nil {
		t.Error("got a result in the call's arena, want it copied out")
	}
	if outs[1] != y {
		t.Error("got a copy of an input returned as is, want the caller's tensor")
	}
	// Nested: a tensor already in a call runs f in that call.
	var nested []*Tensor
	InferCall(m, []*Tensor{x}, func(in []*Tensor) []*Tensor {
		nested = InferCall(m, in, func(in2 []*Tensor) []*Tensor { return []*Tensor{in2[0]} })
		if nested[0] != in[0] {
			t.Error("got a nested call with tensors of its own, want the outer call's")
		}
		return nil
	})
}

func TestRelease(t *testing.T) {
	m := &twoIn{}
	x := New([]float32{1, 2, 3, 4}, 4)
	addr := func(t *Tensor) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(t.data))) }
	for _, tc := range []struct {
		name    string
		release bool
		same    bool
	}{{"released", true, true}, {"kept", false, false}} {
		t.Run(tc.name, func(t *testing.T) {
			InferCall(m, []*Tensor{x}, func(in []*Tensor) []*Tensor {
				a := in[0].MulScalar(2)
				if tc.release {
					Release(a)
					Release(a) // a second release must not hand the memory out twice
				}
				b := in[0].MulScalar(3)
				c := in[0].MulScalar(4)
				if got := addr(a) == addr(b); got != tc.same {
					t.Errorf("a and b share memory: got %v, want %v", got, tc.same)
				}
				if addr(b) == addr(c) {
					t.Error("b and c share memory, want distinct buffers")
				}
				Release(in[0]) // the caller's memory: ignored
				if d := in[0].MulScalar(1); addr(d) == addr(x) {
					t.Error("got the input's memory handed out, want it left alone")
				}
				return nil
			})
		})
	}
}
