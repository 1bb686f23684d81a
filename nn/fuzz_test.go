package nn

import (
	"testing"

	"github.com/ckptkit/ckpt/tensor"
)

// FuzzLoadStateDict feeds stored tensors of arbitrary dtype, shape and bytes
// (including storages too short for their view) to LoadStateDict and a
// Builder: they must report or return errors, never panic, and a successful
// load must round-trip through StateDict.
func FuzzLoadStateDict(f *testing.F) {
	f.Add(uint8(tensor.Float32), int64(4), int64(3), []byte("0123456789abcdef0123456789abcdef0123456789abcdef"), true)
	f.Add(uint8(tensor.Float16), int64(4), int64(3), make([]byte, 24), false)
	f.Add(uint8(tensor.Int64), int64(1), int64(1), make([]byte, 8), true)
	f.Add(uint8(tensor.BFloat16), int64(-1), int64(3), []byte{1, 2, 3}, false)
	f.Fuzz(func(t *testing.T, dt uint8, d0, d1 int64, raw []byte, strict bool) {
		// Not validated: readers validate before a tensor escapes, but
		// loading an invalid one must still fail cleanly.
		st := tensor.New(tensor.DType(dt), []int64{d0, d1}, tensor.NewStorageBytes(raw))
		m := NewLinear(nil, 3, 4, true)
		src := TensorMap{"weight": st, "bias": ToStored(Zeros(4))}
		r, err := m.LoadStateDict(src, strict)
		if err == nil {
			if r.Loaded != 2 {
				t.Fatalf("loaded %d tensors without error, want 2", r.Loaded)
			}
			back, err := FromStored(m.StateDict().Tensor("weight"))
			if err != nil || !sameShape(back.Shape(), []int{4, 3}) {
				t.Fatalf("round trip: %v, shape %v", err, back)
			}
		}
		b := NewBuilder(src)
		NewLinear(b, 3, 4, true)
		_ = b.Err()
	})
}
