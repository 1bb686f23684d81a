package onnx

import (
	"encoding/binary"
	"slices"
	"testing"
)

func TestUnsigned(t *testing.T) {
	raw16 := binary.LittleEndian.AppendUint16(binary.LittleEndian.AppendUint16(nil, 7), 65535)
	raw64 := binary.LittleEndian.AppendUint64(nil, 1<<63+5)
	cases := []struct {
		name string
		data []byte // raw_data, nil for the typed fields
		t    TensorProto
		want []uint64
	}{
		{"uint16 int32_data", nil, TensorProto{DataType: Uint16, Dims: []int64{2}, Int32Data: []int32{7, 65535}}, []uint64{7, 65535}},
		{"uint32 uint64_data", nil, TensorProto{DataType: Uint32, Dims: []int64{1}, Uint64Data: []uint64{1 << 31}}, []uint64{1 << 31}},
		{"uint16 raw", raw16, TensorProto{DataType: Uint16, Dims: []int64{2}}, []uint64{7, 65535}},
		{"uint64 raw", raw64, TensorProto{DataType: Uint64, Dims: []int64{1}}, []uint64{1<<63 + 5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tp := tc.t
			if tc.data != nil {
				// Round-trip through the codec to set raw_data as a file would.
				tp.Name = "t"
				b, err := MarshalTensor(&tp)
				if err != nil {
					t.Fatal(err)
				}
				b = append(b, pbStr(9, string(tc.data))...)
				got, err := UnmarshalTensor(b)
				if err != nil {
					t.Fatal(err)
				}
				tp = *got
			}
			got, err := tp.Unsigned()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	bad := TensorProto{DataType: Int32, Dims: []int64{1}, Int32Data: []int32{1}}
	if _, err := bad.Unsigned(); err == nil {
		t.Error("Unsigned on an INT32 tensor succeeded")
	}
	short := TensorProto{DataType: Uint32, Dims: []int64{3}, Uint64Data: []uint64{1}}
	if _, err := short.Unsigned(); err == nil {
		t.Error("3 dims with 1 value succeeded")
	}
}
