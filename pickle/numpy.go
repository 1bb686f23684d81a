package pickle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"

	"github.com/nlpodyssey/gopickle/types"

	"github.com/ckptkit/ckpt/tensor"
)

// Numpy scalars (np.float64(0.75), np.int64(42)) are common in training
// checkpoints. They pickle as
//
//	numpy.core.multiarray.scalar(numpy.dtype("f8", False, True) + BUILD
//	    (3, "<", ...), raw bytes)
//
// with the bytes as BINBYTES or, in protocol 2, _codecs.encode(str,
// "latin1"). They decode to float64, int64 (*big.Int above int64), or bool;
// numpy arrays are not supported.

// npDType is a numpy.dtype during unpickling.
type npDType struct {
	code  string // "f8", "<i4", "b1", ...
	order byte   // '<', '>', '|' or '='
}

func (d *npDType) PySetState(state any) error {
	items, err := sequence(state)
	if err != nil || len(items) < 2 {
		return errors.New("numpy.dtype: invalid state")
	}
	if s, ok := items[1].(string); ok && len(s) == 1 {
		d.order = s[0]
	}
	return nil
}

func numpyDType(args []any) (any, error) {
	if len(args) < 1 {
		return nil, errors.New("no arguments")
	}
	s, ok := args[0].(string)
	if !ok || len(s) == 0 || len(s) > 8 {
		return nil, errors.New("dtype code is not a short string")
	}
	d := &npDType{code: s, order: '<'}
	if c := s[0]; c == '<' || c == '>' || c == '|' || c == '=' {
		d.order, d.code = c, s[1:]
	}
	return d, nil
}

func numpyScalar(args []any) (any, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("want 2 arguments, got %d", len(args))
	}
	d, ok := args[0].(*npDType)
	if !ok {
		return nil, errors.New("first argument is not a numpy dtype")
	}
	b, err := bytesOf(args[1])
	if err != nil {
		return nil, err
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if d.order == '>' {
		bo = binary.BigEndian
	}
	size := map[string]int{"f2": 2, "f4": 4, "f8": 8, "i1": 1, "i2": 2, "i4": 4, "i8": 8,
		"u1": 1, "u2": 2, "u4": 4, "u8": 8, "b1": 1}[d.code]
	if size == 0 {
		return nil, fmt.Errorf("unsupported numpy dtype %q", d.code)
	}
	if len(b) != size {
		return nil, fmt.Errorf("numpy %s scalar of %d bytes", d.code, len(b))
	}
	var u uint64
	switch size {
	case 1:
		u = uint64(b[0])
	case 2:
		u = uint64(bo.Uint16(b))
	case 4:
		u = uint64(bo.Uint32(b))
	case 8:
		u = bo.Uint64(b)
	}
	switch d.code[0] {
	case 'f':
		switch size {
		case 2:
			return float64(tensor.Float16ToFloat32(uint16(u))), nil
		case 4:
			return float64(math.Float32frombits(uint32(u))), nil
		}
		return math.Float64frombits(u), nil
	case 'b':
		return u != 0, nil
	case 'i':
		shift := 64 - 8*size
		return int(int64(u<<shift) >> shift), nil
	}
	if u > math.MaxInt64 {
		return new(big.Int).SetUint64(u), nil
	}
	return int(u), nil
}

// Numpy arrays pickle as
//
//	numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b"b") + BUILD
//	    (1, shape, dtype, is_fortran, raw bytes)
//
// or, in protocol 5, numpy.core.numeric._frombuffer(bytearray, dtype,
// shape, order). They become tensors over their bytes, which live in the
// pickle (so they are read with it, not lazily). Object arrays and dtypes
// torch has no name for are refused.

// npArray is a numpy.ndarray during unpickling, until BUILD gives it data.
type npArray struct {
	t *tensor.Tensor
}

func npTensorDType(d *npDType) (tensor.DType, error) {
	dt := map[string]tensor.DType{"f2": tensor.Float16, "f4": tensor.Float32, "f8": tensor.Float64,
		"i1": tensor.Int8, "i2": tensor.Int16, "i4": tensor.Int32, "i8": tensor.Int64,
		"u1": tensor.Uint8, "b1": tensor.Bool}[d.code]
	if dt == tensor.Invalid {
		return dt, fmt.Errorf("unsupported numpy array dtype %q", d.code)
	}
	return dt, nil
}

func bytesOf(v any) ([]byte, error) {
	switch x := v.(type) {
	case []byte:
		return x, nil
	case *types.ByteArray:
		return *x, nil
	case *pyBytes:
		return *x, nil
	case string: // Python 2 str
		return []byte(x), nil
	}
	return nil, fmt.Errorf("array data is %T, not bytes", v)
}

// npTensor builds the tensor of a numpy array from its parts.
func npTensor(shapeV any, d *npDType, fortran bool, data []byte) (*tensor.Tensor, error) {
	dt, err := npTensorDType(d)
	if err != nil {
		return nil, err
	}
	shape, err := intsOf(shapeV)
	if err != nil {
		return nil, fmt.Errorf("array shape: %w", err)
	}
	st := tensor.NewStorageBytes(data)
	st.BigEndian = d.order == '>' && dt.Size() > 1
	t := tensor.New(dt, shape, st)
	if fortran {
		acc := int64(1)
		for i, s := range shape {
			t.Stride[i] = acc
			acc *= max(s, 1)
		}
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if t.NumBytes() != int64(len(data)) {
		return nil, fmt.Errorf("numpy array %s%v has %d bytes of data, want %d", dt, shape, len(data), t.NumBytes())
	}
	return t, nil
}

func (a *npArray) PySetState(state any) error {
	items, err := sequence(state)
	if err != nil || len(items) != 5 {
		return errors.New("numpy.ndarray: state is not (version, shape, dtype, fortran, data)")
	}
	d, ok := items[2].(*npDType)
	if !ok {
		return errors.New("numpy.ndarray: state has no dtype")
	}
	fortran, _ := items[3].(bool)
	data, err := bytesOf(items[4])
	if err != nil {
		return fmt.Errorf("numpy.ndarray: %w", err)
	}
	a.t, err = npTensor(items[1], d, fortran, data)
	if err != nil {
		return fmt.Errorf("numpy.ndarray: %w", err)
	}
	return nil
}

func numpyReconstruct(args []any) (any, error) {
	if len(args) != 3 {
		return nil, fmt.Errorf("want 3 arguments, got %d", len(args))
	}
	if c, ok := args[0].(*classRef); !ok || c.name != "ndarray" || c.module != "numpy" {
		return nil, errors.New("only numpy.ndarray can be reconstructed")
	}
	return &npArray{}, nil
}

func numpyFromBuffer(args []any) (any, error) {
	if len(args) != 4 {
		return nil, fmt.Errorf("want 4 arguments, got %d", len(args))
	}
	data, err := bytesOf(args[0])
	if err != nil {
		return nil, err
	}
	d, ok := args[1].(*npDType)
	if !ok {
		return nil, errors.New("second argument is not a numpy dtype")
	}
	order, _ := args[3].(string)
	t, err := npTensor(args[2], d, order == "F", data)
	if err != nil {
		return nil, err
	}
	return &npArray{t: t}, nil
}
