package onnx

import (
	"encoding/binary"
	"fmt"
)

// Unsigned returns the elements of a UINT16, UINT32 or UINT64 tensor, the
// types that have no tensor.DType, from raw_data, external data or
// uint64_data/int32_data.
func (t *TensorProto) Unsigned() ([]uint64, error) {
	var size int
	switch t.DataType {
	case Uint16:
		size = 2
	case Uint32:
		size = 4
	case Uint64:
		size = 8
	default:
		return nil, fmt.Errorf("onnx: tensor %q: %s is not an unsigned type of 16 bits or more", t.Name, t.DataType)
	}
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("onnx: tensor %q: %w", t.Name, err)
	}
	n, _ := t.numElements()
	s := t.raw
	if t.DataLocation == LocationExternal {
		if t.ext == nil {
			return nil, fmt.Errorf("onnx: tensor %q: external data %q was not resolved (open the model from its file)", t.Name, t.externalLocation())
		}
		s = t.ext
	}
	// Allocate only for elements that are present.
	if s != nil && s.Size() != n*int64(size) || s == nil && n != 0 && len(t.Int32Data) != int(n) && len(t.Uint64Data) != int(n) {
		return nil, fmt.Errorf("onnx: tensor %q: the data does not hold %d elements of %s", t.Name, n, t.DataType)
	}
	out := make([]uint64, n)
	if s == nil {
		switch {
		case t.DataType == Uint16 && len(t.Int32Data) == int(n):
			for i, v := range t.Int32Data {
				out[i] = uint64(uint16(v))
			}
		case len(t.Uint64Data) == int(n):
			copy(out, t.Uint64Data)
		case n != 0:
			return nil, fmt.Errorf("onnx: tensor %q: no data for %d elements", t.Name, n)
		}
		return out, nil
	}
	b := make([]byte, n*int64(size))
	if _, err := s.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("onnx: tensor %q: %w", t.Name, err)
	}
	for i := range out {
		switch size {
		case 2:
			out[i] = uint64(binary.LittleEndian.Uint16(b[2*i:]))
		case 4:
			out[i] = uint64(binary.LittleEndian.Uint32(b[4*i:]))
		default:
			out[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
	}
	return out, nil
}
