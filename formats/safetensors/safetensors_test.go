package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/tensor"
)

// fixtureDesc is what testdata/gen/formats_fixtures.py records of a file,
// as torch sees it.
type fixtureDesc struct {
	Tensors []struct {
		Name   string  `json:"name"`
		DType  string  `json:"dtype"`
		Shape  []int64 `json:"shape"`
		SHA256 string  `json:"sha256"`
	} `json:"tensors"`
	Metadata map[string]string `json:"metadata"`
}

func readDesc(t *testing.T, path string) fixtureDesc {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d fixtureDesc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func checkAgainst(t *testing.T, f *File, d fixtureDesc) {
	t.Helper()
	if len(f.Tensors) != len(d.Tensors) {
		t.Fatalf("got %d tensors, want %d", len(f.Tensors), len(d.Tensors))
	}
	for i, want := range d.Tensors {
		got := f.Tensors[i]
		if got.Name != want.Name {
			t.Errorf("tensor %d: got name %q, want %q", i, got.Name, want.Name)
		}
		if got.Tensor.DType.String() != want.DType {
			t.Errorf("%s: got dtype %s, want %s", want.Name, got.Tensor.DType, want.DType)
		}
		if !reflect.DeepEqual(got.Tensor.Shape, want.Shape) && !(len(got.Tensor.Shape) == 0 && len(want.Shape) == 0) {
			t.Errorf("%s: got shape %v, want %v", want.Name, got.Tensor.Shape, want.Shape)
		}
		sum, err := got.Tensor.SHA256()
		if err != nil {
			t.Fatalf("%s: %v", want.Name, err)
		}
		if h := hex.EncodeToString(sum[:]); h != want.SHA256 {
			t.Errorf("%s: got sha256 %s, want %s", want.Name, h, want.SHA256)
		}
	}
	if !reflect.DeepEqual(f.Metadata, d.Metadata) {
		t.Errorf("got metadata %v, want %v", f.Metadata, d.Metadata)
	}
}

// The fixture was written by the spec-following writer in
// testdata/gen/formats_fixtures.py; dtypes.json is torch's view of it.
func TestReadFixture(t *testing.T) {
	f, err := Open("../../testdata/formats/dtypes.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkAgainst(t, f, readDesc(t, "../../testdata/formats/dtypes.json"))
}

func TestWriteReadBack(t *testing.T) {
	f, err := Open("../../testdata/formats/dtypes.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	n, err := Write(&buf, f.Tensors, f.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("Write returned %d, wrote %d bytes", n, buf.Len())
	}
	if size, _ := Size(f.Tensors, f.Metadata); size != n {
		t.Errorf("Size = %d, Write wrote %d", size, n)
	}
	if hl := binary.LittleEndian.Uint64(buf.Bytes()); hl%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", hl)
	}
	g, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "written")
	if err != nil {
		t.Fatal(err)
	}
	checkAgainst(t, g, readDesc(t, "../../testdata/formats/dtypes.json"))
	// Writing what was read back gives the same bytes.
	var again bytes.Buffer
	if _, err := Write(&again, g.Tensors, g.Metadata); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Errorf("second write differs from the first")
	}
}

// file assembles a safetensors file from a raw header and data.
func file(header string, data int) []byte {
	b := make([]byte, 8, 8+len(header)+data)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, data)...)
}

func TestReadInvalid(t *testing.T) {
	tests := []struct {
		name string
		file []byte
		want string // substring of the error
	}{
		{"short", []byte{1, 2, 3}, "shorter than the 8-byte"},
		{"huge header", binary.LittleEndian.AppendUint64(nil, MaxHeaderSize+1), "exceeds the 100000000-byte limit"},
		{"header past end", append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...), "exceeds the 2 bytes after it"},
		{"not json", file("{nope}", 0), "invalid JSON"},
		{"not object start", file(` {"a":1}`, 0), "does not start with '{'"},
		{"bad utf8", file("{\"\xff\":1}", 0), "not valid UTF-8"},
		{"trailing garbage", file(`{}x`, 0), "unexpected bytes after"},
		{"duplicate", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2), `tensor "a": name appears twice`},
		{"fractional offset", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1.5]}}`, 1), `tensor "a": invalid entry: "data_offsets" holds a JSON number 1.5, want a list of two non-negative integers`},
		{"string shape", file(`{"a":{"dtype":"U8","shape":"1","data_offsets":[0,1]}}`, 1), `invalid entry: "shape" holds a JSON string, want a list of non-negative integers`},
		{"unknown dtype", file(`{"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}`, 1), `unsupported dtype "F4"`},
		{"skipped dtype, wrong size", file(`{"a":{"dtype":"U16","shape":[2],"data_offsets":[0,2]}}`, 2), `data_offsets [0, 2] hold 2 bytes, U16[2] needs 4`},
		{"missing field", file(`{"a":{"dtype":"U8","shape":[1]}}`, 1), "needs dtype, shape and data_offsets"},
		{"negative dim", file(`{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}`, 1), "negative dimension"},
		{"three offsets", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, 1), "has 3 values"},
		{"gap", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2), "gap or overlap"},
		{"overlap", file(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}`, 3), `tensor "b": data_offsets [1, 3] do not start`},
		{"size mismatch", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 4), "hold 4 bytes, float32[2] needs 8"},
		{"overflow", file(`{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, 8), "overflows"},
		{"trailing data", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 2), "incomplete or trailing"},
		{"missing data", file(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, 2), "incomplete or trailing"},
		{"metadata not string", file(`{"__metadata__":{"k":1}}`, 0), `__metadata__["k"] is not a string`},
		{"entry not object", file(`{"a":[1]}`, 0), `tensor "a": invalid entry`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tt.file), int64(len(tt.file)), "x.safetensors")
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "safetensors: x.safetensors: ") {
				t.Errorf("got error %q, want one naming the file and containing %q", err, tt.want)
			}
		})
	}
}

// TestReadSkipped: tensors of a dtype package tensor lacks but whose size
// the format defines are listed apart, in offset order, and their offsets
// still tile the data.
func TestReadSkipped(t *testing.T) {
	b := file(`{"f8":{"dtype":"F8_E4M3","shape":[3],"data_offsets":[8,11]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"u":{"dtype":"U64","shape":[1],"data_offsets":[11,19]}}`, 19)
	f, err := Read(bytes.NewReader(b), int64(len(b)), "x")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != 1 || f.Tensors[0].Name != "a" {
		t.Errorf("got tensors %v, want [a]", f.Tensors)
	}
	got := fmt.Sprint(f.Skipped)
	if want := "[{f8 F8_E4M3 [3]} {u U64 [1]}]"; got != want {
		t.Errorf("got skipped %s, want %s", got, want)
	}
}

func TestReadValidEdgeCases(t *testing.T) {
	tests := []struct {
		name  string
		file  []byte
		names []string
	}{
		{"empty object", file(`{}`, 0), nil},
		{"padded", file(`{}      `, 0), nil},
		{"null metadata", file(`{"__metadata__":null}`, 0), nil},
		// Sorted by offset, not by header order.
		{"out of order", file(`{"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"a":{"dtype":"I16","shape":[],"data_offsets":[0,1]}}`, 2), nil},
		{"zero-size tensors", file(`{"e":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 1), []string{"e", "a"}},
	}
	tests[3].file = file(`{"b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]},"a":{"dtype":"I16","shape":[],"data_offsets":[0,2]}}`, 3)
	tests[3].names = []string{"a", "b"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Read(bytes.NewReader(tt.file), int64(len(tt.file)), "x")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, nt := range f.Tensors {
				names = append(names, nt.Name)
			}
			if !reflect.DeepEqual(names, tt.names) {
				t.Errorf("got names %v, want %v", names, tt.names)
			}
		})
	}
}

func TestWriteStridedTensorContiguous(t *testing.T) {
	// A transposed 2x3 view of 0..5 (uint8) is written row-major.
	st := tensor.NewStorageBytes([]byte{0, 1, 2, 3, 4, 5})
	tt := &tensor.Tensor{DType: tensor.Uint8, Shape: []int64{3, 2}, Stride: []int64{1, 3}, Storage: st}
	var buf bytes.Buffer
	if _, err := Write(&buf, []Named{{Name: "t", Tensor: tt}}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "x")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := f.Tensors[0].Tensor.Bytes()
	if want := []byte{0, 3, 1, 4, 2, 5}; !bytes.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestWriteRefuses(t *testing.T) {
	one, _ := tensor.FromBytes(tensor.Uint8, []int64{1}, []byte{1})
	tests := []struct {
		name    string
		tensors []Named
		want    string
	}{
		{"duplicate", []Named{{Name: "a", Tensor: one}, {Name: "a", Tensor: one}}, `tensor "a" given twice`},
		{"reserved", []Named{{Name: MetadataKey, Tensor: one}}, "reserved"},
		{"invalid view", []Named{{Name: "v", Tensor: &tensor.Tensor{DType: tensor.Float32, Shape: []int64{2}, Stride: []int64{1}, Storage: tensor.NewStorageBytes(make([]byte, 4))}}}, `tensor "v"`},
		// FuzzONNXCheckpoint: an ONNX initializer named so came back
		// from the safetensors file under another name (U+FFFD).
		{"name not UTF-8", []Named{{Name: "bn\xff.w", Tensor: one}}, "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Write(&bytes.Buffer{}, tt.tensors, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := Write(&bytes.Buffer{}, []Named{{Name: "a", Tensor: one}}, map[string]string{"k": "v\xfe"}); err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Errorf("metadata not UTF-8: got error %v, want one saying so", err)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"1000", 1000, false},
		{"5GB", 5_000_000_000, false},
		{"5gb", 5_000_000_000 / 8, false}, // lowercase b: bits, as HF reads it
		{"5Gb", 5_000_000_000 / 8, false},
		{"2GiB", 2 << 30, false},
		{"2gib", 2 << 30, false},
		{"500MB", 500_000_000, false},
		{"500MiB", 500 << 20, false},
		{"10KB", 10_000, false},
		{"10KiB", 10 << 10, false},
		{"1TB", 1_000_000_000_000, false},
		{"1.5GB", 0, true},
		{"GB", 0, true},
		{"-1MB", 0, true},
		{"9999999999999GiB", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("got error %v, want error %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func u8(n int) *tensor.Tensor {
	t, _ := tensor.FromBytes(tensor.Uint8, []int64{int64(n)}, make([]byte, n))
	return t
}

func TestPlanShards(t *testing.T) {
	ts := []Named{{Name: "a", Tensor: u8(4)}, {Name: "b", Tensor: u8(4)}, {Name: "c", Tensor: u8(9)}, {Name: "d", Tensor: u8(1)}, {Name: "e", Tensor: u8(5)}}
	tests := []struct {
		max  int64
		want [][]string
	}{
		{0, [][]string{{"a", "b", "c", "d", "e"}}},
		{100, [][]string{{"a", "b", "c", "d", "e"}}},
		{8, [][]string{{"a", "b"}, {"c"}, {"d", "e"}}},
		{9, [][]string{{"a", "b"}, {"c"}, {"d", "e"}}},
		{10, [][]string{{"a", "b"}, {"c", "d"}, {"e"}}},
		{1, [][]string{{"a"}, {"b"}, {"c"}, {"d"}, {"e"}}},
	}
	for _, tt := range tests {
		var got [][]string
		for _, s := range PlanShards(ts, tt.max) {
			var names []string
			for _, nt := range s {
				names = append(names, nt.Name)
			}
			got = append(got, names)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("max %d: got %v, want %v", tt.max, got, tt.want)
		}
	}
}

func TestShardPaths(t *testing.T) {
	s, idx := ShardPaths("d/model.safetensors", 3)
	want := []string{"d/model-00001-of-00003.safetensors", "d/model-00002-of-00003.safetensors", "d/model-00003-of-00003.safetensors"}
	if !reflect.DeepEqual(s, want) || idx != "d/model.safetensors.index.json" {
		t.Errorf("got %v %q, want %v %q", s, idx, want, "d/model.safetensors.index.json")
	}
	if s, idx := ShardPaths("d/model.safetensors", 1); len(s) != 1 || s[0] != "d/model.safetensors" || idx != "" {
		t.Errorf("one shard: got %v %q", s, idx)
	}
}

func writeShards(t *testing.T, dir string, ts []Named, max int64) string {
	t.Helper()
	plan := PlanShards(ts, max)
	paths, index := ShardPaths(filepath.Join(dir, "model.safetensors"), len(plan))
	x := &Index{Metadata: map[string]any{"total_size": 0}, WeightMap: map[string]string{}}
	var total int64
	for i, shard := range plan {
		var buf bytes.Buffer
		if _, err := Write(&buf, shard, map[string]string{"format": "pt"}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(paths[i], buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, nt := range shard {
			x.WeightMap[nt.Name] = filepath.Base(paths[i])
			total += nt.Tensor.NumBytes()
		}
	}
	x.Metadata["total_size"] = total
	b, err := x.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(index, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return index
}

func TestOpenIndex(t *testing.T) {
	dir := t.TempDir()
	ts := []Named{{Name: "a", Tensor: u8(4)}, {Name: "b", Tensor: u8(4)}, {Name: "c", Tensor: u8(9)}}
	index := writeShards(t, dir, ts, 8)
	f, err := OpenIndex(index)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	for _, nt := range f.Tensors {
		names = append(names, nt.Name)
	}
	if want := []string{"a", "b", "c"}; !reflect.DeepEqual(names, want) {
		t.Errorf("got %v, want %v", names, want)
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf("got metadata %v, want format=pt", f.Metadata)
	}
	b, _ := os.ReadFile(index)
	if !strings.Contains(string(b), `"total_size": 17`) {
		t.Errorf("index %s lacks total_size 17", b)
	}
}

func TestOpenIndexInvalid(t *testing.T) {
	dir := t.TempDir()
	index := writeShards(t, dir, []Named{{Name: "a", Tensor: u8(4)}, {Name: "b", Tensor: u8(4)}}, 4)
	tests := []struct {
		name, index, want string
	}{
		{"missing tensor", `{"weight_map":{"a":"model-00001-of-00002.safetensors","zz":"model-00001-of-00002.safetensors"}}`, `tensor "zz" is not in shard`},
		{"path escape", `{"weight_map":{"a":"../x.safetensors"}}`, "not a file name"},
		{"no weight map", `{"metadata":{}}`, "no weight_map"},
		{"missing shard", `{"weight_map":{"a":"nope.safetensors"}}`, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(index, []byte(tt.index), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := OpenIndex(index)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestHeaderAsRustReadsIt: header entries the Rust crate's serde derive
// refuses are refused, where encoding/json alone would accept them.
func TestHeaderAsRustReadsIt(t *testing.T) {
	tests := []struct {
		name, header, want string
	}{
		{"field name case", `{"a":{"DTYPE":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"Dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, "entry needs dtype"},
		{"duplicate field", `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"data_offsets":[0,8]}}`, "appears twice"},
		{"lone high surrogate", `{"a\ud800":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, "lone surrogate"},
		{"lone low surrogate", `{"__metadata__":{"k":"\udc00"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, "lone surrogate"},
		{"entry not an object", `{"a":[1,2]}`, "want a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := file(tt.header, 8)
			_, err := Read(bytes.NewReader(b), int64(len(b)), "x.safetensors")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	// A paired surrogate escape and an escaped backslash before "u" are fine.
	b := file(`{"a\ud83d\ude00\\ud800":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4)
	if _, err := Read(bytes.NewReader(b), int64(len(b)), "x.safetensors"); err != nil {
		t.Errorf("got %v, want a valid file", err)
	}
}

// TestDivergenceCorpus reads every file of testdata/malicious/st_div_*
// (made by testdata/gen/safetensors_divergence.py): each header that the
// Rust crate refuses and a naive JSON reader accepts is refused with a
// one-line error.
func TestDivergenceCorpus(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "malicious")
	b, err := os.ReadFile(filepath.Join(dir, "st_divergence.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		File  string `json:"file"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.File, func(t *testing.T) {
			f, err := Open(filepath.Join(dir, c.File))
			if err == nil {
				f.Close()
				t.Fatalf("got success, want an error containing %q", c.Error)
			}
			if msg := err.Error(); !strings.Contains(msg, c.Error) || strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "safetensors: ") {
				t.Errorf("got error %q, want one line starting \"safetensors: \" containing %q", msg, c.Error)
			}
		})
	}
}
