package onnx

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// Protobuf builders for hand-made inputs.

func pbMsg(num int, parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	b := protowire.AppendTag(nil, protowire.Number(num), protowire.BytesType)
	return protowire.AppendBytes(b, body)
}

func pbVarint(num int, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, protowire.Number(num), protowire.VarintType), v)
}

func pbStr(num int, s string) []byte {
	return protowire.AppendString(protowire.AppendTag(nil, protowire.Number(num), protowire.BytesType), s)
}

func pbPackedFloats(num int, vs ...float32) []byte {
	var body []byte
	for _, v := range vs {
		body = protowire.AppendFixed32(body, math.Float32bits(v))
	}
	return protowire.AppendBytes(protowire.AppendTag(nil, protowire.Number(num), protowire.BytesType), body)
}

// modelWith wraps TensorProto fields as the one initializer "w" of a graph.
func modelWith(tensorFields ...[]byte) []byte {
	fields := append([][]byte{pbStr(8, "w")}, tensorFields...)
	return bytes.Join([][]byte{pbVarint(1, 8), pbMsg(7, pbStr(2, "g"), pbMsg(5, fields...))}, nil)
}

func dims(ds ...int64) []byte {
	var b []byte
	for _, d := range ds {
		b = append(b, pbVarint(1, uint64(d))...)
	}
	return b
}

func deepModel(levels int) []byte {
	g := pbStr(2, "leaf")
	for range levels {
		// graph { node { attribute { g: graph } } }
		g = pbMsg(1, pbMsg(5, pbStr(1, "body"), pbMsg(6, g)))
	}
	return pbMsg(7, g)
}

func TestMalformed(t *testing.T) {
	fl := pbVarint(2, uint64(Float))
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"truncated varint", []byte{0x08, 0x80}, "bad varint"},
		{"field number 0", []byte{0x00, 0x01}, "invalid field number 0"},
		{"wire type 6", []byte{0x0e}, "invalid wire type 6"},
		{"length past the end", append(protowire.AppendTag(nil, 7, protowire.BytesType), 100, 1, 2), "length 100 exceeds the 2 bytes left"},
		{"huge length", append(protowire.AppendTag(nil, 7, protowire.BytesType), 0xff, 0xff, 0xff, 0xff, 0x0f), "exceeds"},
		{"nesting", deepModel(40), "nested deeper than 100"},
		{"stray end group", protowire.AppendTag(nil, 9, protowire.EndGroupType), "unexpected end group"},
		{"unterminated group", protowire.AppendTag(nil, 99, protowire.StartGroupType), "unterminated group 99"},
		{"mismatched group", append(protowire.AppendTag(nil, 99, protowire.StartGroupType), protowire.AppendTag(nil, 98, protowire.EndGroupType)...), "group 99 ended by end group 98"},
		{"raw_data size", modelWith(dims(2, 3), fl, pbStr(9, "12345")), `onnx: initializer "w": 5 bytes of raw_data for FLOAT[2 3], want 24`},
		{"float_data count", modelWith(dims(4), fl, pbPackedFloats(4, 1, 2, 3)), `onnx: initializer "w": 3 values in float_data for FLOAT[4], want 4`},
		{"no data", modelWith(dims(4), fl), `0 values in float_data for FLOAT[4], want 4`},
		{"negative dim", modelWith(pbVarint(1, uint64(math.MaxUint64)), fl), "negative dimension"},
		{"too many elements", modelWith(dims(1<<40, 1<<40), fl), "too many elements"},
		{"raw and typed", modelWith(dims(1), fl, pbPackedFloats(4, 1), pbStr(9, "1234")), "both raw_data and typed data"},
		{"packed float length", modelWith(dims(1), fl, pbStr(4, "12345")), "packed float field 4 of 5 bytes"},
		{"data_location", modelWith(dims(1), fl, pbStr(9, "1234"), pbVarint(14, 5)), "unknown data_location 5"},
		{"message overrun", append(pbMsg(7, pbMsg(1, pbStr(3, "n"))[:4]), 0x00), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Unmarshal(tc.in)
			if err == nil {
				t.Fatalf("got a model (%d initializers), want an error", len(m.Graph.Initializer))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestMaxMessages(t *testing.T) {
	in := pbMsg(7, bytes.Repeat([]byte{0x0a, 0x00}, 100))
	for _, tc := range []struct {
		max  int
		want string
	}{{101, ""}, {100, "more than 100 messages"}} {
		d := newDecoder(bytes.NewReader(in), int64(len(in)))
		d.maxMsg = tc.max
		err := d.decodeModel(&Model{})
		if (tc.want == "" && err != nil) || (tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want))) {
			t.Errorf("limit %d: got error %v, want %q", tc.max, err, tc.want)
		}
	}
}

// Values decoded lazily are checked when read.
func TestTypedValueRange(t *testing.T) {
	tests := []struct {
		dt   DataType
		vals []int32
		want string
	}{
		{Int8, []int32{-129}, "int32_data[0] = -129 does not fit INT8"},
		{Uint8, []int32{0, 256}, "int32_data[1] = 256 does not fit UINT8"},
		{Float16, []int32{65536}, "does not fit FLOAT16"},
		{Int16, []int32{-32769}, "does not fit INT16"},
	}
	for _, tc := range tests {
		t.Run(tc.dt.String(), func(t *testing.T) {
			var packed []byte
			for _, v := range tc.vals {
				packed = protowire.AppendVarint(packed, uint64(int64(v)))
			}
			in := modelWith(dims(int64(len(tc.vals))), pbVarint(2, uint64(tc.dt)), protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), packed))
			m, err := Unmarshal(in)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = m.Initializers()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestExternalDataChecks(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m")
	if err := os.Mkdir(model, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(model, "w.bin"), make([]byte, 32), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret"), make([]byte, 32), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "secret"), filepath.Join(model, "link.bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("w.bin", filepath.Join(model, "inside.bin")); err != nil {
		t.Fatal(err)
	}
	ext := func(kv ...string) []byte {
		var b []byte
		for i := 0; i < len(kv); i += 2 {
			b = append(b, pbMsg(13, pbStr(1, kv[i]), pbStr(2, kv[i+1]))...)
		}
		return modelWith(dims(2, 2), pbVarint(2, uint64(Float)), b, pbVarint(14, 1))
	}
	tests := []struct {
		name string
		in   []byte
		want string // "" for success
	}{
		{"whole file at offset 16", ext("location", "w.bin", "offset", "16"), ""},
		{"offset and length", ext("location", "w.bin", "offset", "8", "length", "16"), ""},
		{"parent", ext("location", "../secret"), "not a relative path inside the model directory"},
		{"absolute", ext("location", filepath.Join(dir, "secret")), "not a relative path inside the model directory"},
		{"empty", ext("location", ""), "not a relative path"},
		{"symlink out", ext("location", "link.bin", "length", "16"), "is a symbolic link to"},
		{"symlink inside", ext("location", "inside.bin", "offset", "16"), ""},
		{"parent inside the name", ext("location", "a/../../secret"), "not a relative path inside the model directory"},
		{"parent with backslashes", ext("location", `..\secret`), "not a relative path inside the model directory"},
		{"drive letter", ext("location", "C:secret"), "not a relative path inside the model directory"},
		{"last location wins", ext("location", "w.bin", "location", "../secret"), "not a relative path inside the model directory"},
		{"missing file", ext("location", "nope.bin"), "external data"},
		{"offset past end", ext("location", "w.bin", "offset", "33"), "offset 33 is past the end"},
		{"length past end", ext("location", "w.bin", "offset", "20", "length", "16"), "is past the end"},
		{"length mismatch", ext("location", "w.bin"), "32 bytes of external data for FLOAT[2 2], want 16"},
		{"bad offset", ext("location", "w.bin", "offset", "-1"), "is not a byte count"},
		{"data in the tensor too", modelWith(dims(1), pbVarint(2, uint64(Float)), pbStr(9, "1234"), pbMsg(13, pbStr(1, "location"), pbStr(2, "w.bin")), pbVarint(14, 1)), "external data and data in the tensor"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(bytes.NewReader(tc.in), int64(len(tc.in)), model)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got error %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			inits, _, err := m.Initializers()
			if err != nil {
				t.Fatal(err)
			}
			if got := inits[0].Tensor.NumBytes(); got != 16 {
				t.Fatalf("got %d bytes, want 16", got)
			}
		})
	}
	// Without a directory, the reference is kept as is and cannot be read.
	in := ext("location", "w.bin", "offset", "16")
	m, err := Unmarshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Initializers(); err == nil || !strings.Contains(err.Error(), "was not resolved") {
		t.Errorf("got error %v, want an unresolved external data error", err)
	}
	out, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Unmarshal(out)
	if err != nil {
		t.Fatal(err)
	}
	w := back.Graph.Initializer[0]
	if w.DataLocation != LocationExternal || w.externalLocation() != "w.bin" || len(w.ExternalData) != 2 {
		t.Errorf("got data_location %d, external data %v, want the reference kept", w.DataLocation, w.ExternalData)
	}
}
