package nn

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ckptkit/ckpt/tensor"
)

// Int64Tensor is an integer tensor held by a module as a buffer, such as
// Swin's and MaxViT's relative_position_index (torch.int64 in the
// state_dict). It takes no part in autograd: ops use its values as indices.
type Int64Tensor struct {
	Shape []int
	Data  []int64
}

// NewInt64Tensor returns an integer tensor of the given shape over data,
// which it adopts. len(data) must equal the product of shape.
func NewInt64Tensor(data []int64, shape ...int) *Int64Tensor {
	if numel(shape) != len(data) {
		shapeErr("NewInt64Tensor", fmt.Sprintf("%d values do not fill the shape", len(data)), cloneInts(shape))
	}
	return &Int64Tensor{Shape: cloneInts(shape), Data: data}
}

// RegisterInt64TensorBuffer registers the field *p as a persistent integer
// buffer, stored in the state dict as an int64 tensor of *p's shape. As with
// other registrations the field is read at each use; a nil field is skipped.
func (b *Base) RegisterInt64TensorBuffer(name string, p **Int64Tensor) {
	b.checkName(name)
	b.buffers = append(b.buffers, bufReg{name: name, i64t: p, persistent: true})
}

// Int64Tensor returns the integer tensor stored at the builder's path plus
// name when the source has one of def's shape (the values are loaded, as
// torch's load_state_dict copies buffers), or def itself when there is no
// source. An absent key is reported missing and a mis-shaped or non-integer
// one mismatched; def is returned for both.
func (b *Builder) Int64Tensor(name string, def *Int64Tensor) *Int64Tensor {
	if b == nil || b.src == nil {
		return def
	}
	key := b.Path(name)
	b.st.used[key] = true
	st := b.src.Tensor(key)
	if st == nil {
		b.st.report.Missing = append(b.st.report.Missing, key)
		return def
	}
	want := shape64(def.Shape)
	if !sameShape64(want, st.Shape) || st.DType.IsFloat() || st.DType == tensor.Bool {
		b.st.report.Mismatched = append(b.st.report.Mismatched, Mismatch{Key: key, WantShape: want, GotShape: st.Shape, WantDType: tensor.Int64, GotDType: st.DType})
		return def
	}
	v, err := int64Values(st)
	if err != nil || len(v) != len(def.Data) {
		if b.st.err == nil {
			b.st.err = fmt.Errorf("nn: loading %q: %w", key, errors.Join(err, errors.New("integer values do not fill the shape")))
		}
		return def
	}
	b.st.report.Loaded++
	return NewInt64Tensor(v, def.Shape...)
}

// stored returns t as a contiguous int64 stored tensor.
func (t *Int64Tensor) stored() *tensor.Tensor {
	raw := make([]byte, 8*len(t.Data))
	for i, v := range t.Data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	st, err := tensor.FromBytes(tensor.Int64, shape64(t.Shape), raw)
	if err != nil {
		panic(err) // unreachable: sizes are consistent by construction
	}
	return st
}

func shape64(s []int) []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		out[i] = int64(d)
	}
	return out
}

// int64Values reads a stored integer tensor of any integer dtype exactly.
func int64Values(st *tensor.Tensor) ([]int64, error) {
	raw, err := st.Bytes()
	if err != nil {
		return nil, err
	}
	size := map[tensor.DType]int{tensor.Int64: 8, tensor.Int32: 4, tensor.Int16: 2, tensor.Int8: 1, tensor.Uint8: 1}[st.DType]
	if size == 0 {
		return nil, fmt.Errorf("dtype %s is not an integer type", st.DType)
	}
	n := len(raw) / size
	out := make([]int64, n)
	le := binary.LittleEndian
	for i := range out {
		p := raw[i*size:]
		switch st.DType {
		case tensor.Int64:
			out[i] = int64(le.Uint64(p))
		case tensor.Int32:
			out[i] = int64(int32(le.Uint32(p)))
		case tensor.Int16:
			out[i] = int64(int16(le.Uint16(p)))
		case tensor.Int8:
			out[i] = int64(int8(p[0]))
		case tensor.Uint8:
			out[i] = int64(p[0])
		}
	}
	return out, nil
}

// StoredShape returns the shape of the tensor the builder's source holds at
// its path plus name, and false when there is no source or no such tensor.
// Constructors whose sizes follow from their weights (a ViT's image size from
// its position embedding) read it before building.
func (b *Builder) StoredShape(name string) ([]int64, bool) {
	if b == nil || b.src == nil {
		return nil, false
	}
	st := b.src.Tensor(b.Path(name))
	if st == nil {
		return nil, false
	}
	return append([]int64(nil), st.Shape...), true
}
