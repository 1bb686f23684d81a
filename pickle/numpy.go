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
	var b []byte
	switch x := args[1].(type) {
	case []byte:
		b = x
	case *types.ByteArray:
		b = *x
	case string: // Python 2 str
		b = []byte(x)
	default:
		return nil, fmt.Errorf("data is %T, not bytes", args[1])
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
