package onnx

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/tensor"
)

// Fixtures in testdata/onnx are made by testdata/gen/onnx_fixtures.py
// (torch.onnx.export and onnx.helper); manifest.json holds the names, data
// types, dims and SHA-256 of the little-endian element bytes that numpy
// computed for every initializer.
const fixtures = "../../testdata/onnx"

var fixtureFiles = []string{"cnn.onnx", "dtypes.onnx", "attrs.onnx", "ext.onnx"}

type manifestEntry struct {
	Name     string  `json:"name"`
	DataType string  `json:"data_type"`
	Dims     []int64 `json:"dims"`
	DType    string  `json:"dtype"`
	SHA256   string  `json:"sha256"`
}

func loadManifest(t *testing.T) map[string][]manifestEntry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string][]manifestEntry
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func hashOf(t *testing.T, x *tensor.Tensor) string {
	t.Helper()
	sum, err := x.SHA256()
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(sum[:])
}

// checkAgainstManifest compares every initializer of m with the manifest.
func checkAgainstManifest(t *testing.T, m *Model, want []manifestEntry) {
	t.Helper()
	inits := m.Graph.Initializer
	if len(inits) != len(want) {
		t.Fatalf("got %d initializers, want %d", len(inits), len(want))
	}
	for i, w := range want {
		got := inits[i]
		if got.Name != w.Name || got.DataType.String() != w.DataType || !slices.Equal(got.Dims, w.Dims) {
			t.Errorf("initializer %d: got %q %s %v, want %q %s %v", i, got.Name, got.DataType, got.Dims, w.Name, w.DataType, w.Dims)
			continue
		}
		x, err := got.Tensor()
		if w.DType == "" {
			if err == nil {
				t.Errorf("%s: got a %s tensor for data type %s, want an error", w.Name, x.DType, w.DataType)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", w.Name, err)
			continue
		}
		if x.DType.String() != w.DType || !slices.Equal(x.Shape, w.Dims) {
			t.Errorf("%s: got tensor %s%v, want %s%v", w.Name, x.DType, x.Shape, w.DType, w.Dims)
		}
		if h := hashOf(t, x); h != w.SHA256 {
			t.Errorf("%s: got sha256 %s, want %s", w.Name, h, w.SHA256)
		}
	}
}

func TestOpenMatchesManifest(t *testing.T) {
	manifest := loadManifest(t)
	for _, name := range fixtureFiles {
		t.Run(name, func(t *testing.T) {
			m, err := Open(filepath.Join(fixtures, name))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			checkAgainstManifest(t, m, manifest[name])
		})
	}
}

// TestInitializersExposable checks that Initializers exposes every
// initializer with a tensor dtype and lists the others by name, data type
// and dims, both in graph order; the expectations are the manifest
// onnx_fixtures.py wrote (an entry without "dtype" has none in torch).
func TestInitializersExposable(t *testing.T) {
	manifest := loadManifest(t)
	for _, name := range []string{"cnn.onnx", "ext.onnx", "attrs.onnx", "dtypes.onnx"} {
		t.Run(name, func(t *testing.T) {
			m, err := Open(filepath.Join(fixtures, name))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			got, skipped, err := m.Initializers()
			if err != nil {
				t.Fatal(err)
			}
			var wantNames, wantSkipped, gotNames, gotSkipped []string
			for _, e := range manifest[name] {
				if e.DType == "" {
					wantSkipped = append(wantSkipped, fmt.Sprintf("%s %s %v", e.Name, e.DataType, e.Dims))
				} else {
					wantNames = append(wantNames, e.Name)
				}
			}
			for _, nt := range got {
				gotNames = append(gotNames, nt.Name)
			}
			for _, u := range skipped {
				gotSkipped = append(gotSkipped, fmt.Sprintf("%s %s %v", u.Name, u.DataType, u.Dims))
			}
			if !slices.Equal(gotNames, wantNames) {
				t.Errorf("tensors: got %v, want %v", gotNames, wantNames)
			}
			if !slices.Equal(gotSkipped, wantSkipped) {
				t.Errorf("unsupported: got %v, want %v", gotSkipped, wantSkipped)
			}
		})
	}
}

// A model read and written unchanged keeps its bytes: fixtures serialized by
// protobuf (onnx, torch), including unknown fields, explicit zero values,
// every attribute type and external data references.
func TestRoundTripBytes(t *testing.T) {
	for _, name := range fixtureFiles {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(fixtures, name))
			if err != nil {
				t.Fatal(err)
			}
			m, err := Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, b) {
				t.Fatalf("got %d bytes differing from the %d read (first difference at %d)", len(out), len(b), firstDiff(out, b))
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestUnknownFieldsKept(t *testing.T) {
	m, err := Open(filepath.Join(fixtures, "attrs.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// onnx_fixtures.py adds field 100 = 7 (bytes a0 06 07) at each level.
	want := []byte{0xa0, 0x06, 0x07}
	for _, tc := range []struct {
		where string
		got   []byte
	}{
		{"model", m.Unknown()},
		{"graph", m.Graph.Unknown()},
		{"node", m.Graph.Node[0].Unknown()},
		{"initializer", m.Graph.Initializer[0].Unknown()},
	} {
		if !bytes.Equal(tc.got, want) {
			t.Errorf("%s: got unknown fields %x, want %x", tc.where, tc.got, want)
		}
	}
	a := m.Graph.Node[0].Attribute
	byName := map[string]*Attribute{}
	for _, x := range a {
		byName[x.Name] = x
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"f", byName["f"].Type == AttrFloat && byName["f"].F == 0.25},
		{"i", byName["i"].Type == AttrInt && byName["i"].I == -7},
		{"s", byName["s"].Type == AttrString && string(byName["s"].S) == "bytes\x00ok"},
		{"t", byName["t"].Type == AttrTensor && byName["t"].T.Name == "t1"},
		{"g", byName["g"].Type == AttrGraph && byName["g"].G.Node[0].Name == "inner"},
		{"floats", byName["floats"].Type == AttrFloats && len(byName["floats"].Floats) == 3},
		{"ints", byName["ints"].Type == AttrInts && slices.Equal(byName["ints"].Ints, []int64{0, -1, 1 << 40})},
		{"strings", byName["strings"].Type == AttrStrings && len(byName["strings"].Strings) == 2},
		{"tensors", byName["tensors"].Type == AttrTensors && byName["tensors"].Tensors[1].DataType == Float16},
		{"graphs", byName["graphs"].Type == AttrGraphs && len(byName["graphs"].Graphs) == 2},
		{"sparse_tensor", byName["sparse_tensor"].Type == AttrSparseTensor && len(byName["sparse_tensor"].SparseTensor) > 0},
		{"sparse_tensors", byName["sparse_tensors"].Type == AttrSparseTensors && len(byName["sparse_tensors"].SparseTensors) == 1},
		{"tp", byName["tp"].Type == AttrTypeProto && byName["tp"].TP.Sequence.ElemType.Tensor.Shape.Dim[0].Param == "N"},
		{"type_protos", byName["type_protos"].Type == AttrTypeProtos && byName["type_protos"].TypeProtos[1].Tensor.ElemType == Int8},
		{"zero_f", byName["zero_f"].present(2)},
		{"zero_i", byName["zero_i"].present(3)},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("attribute %q not decoded as written by onnx_fixtures.py", c.name)
		}
	}
	if len(m.Functions) != 1 || len(m.TrainingInfo) != 1 || len(m.Graph.SparseInitializer) != 1 {
		t.Errorf("got %d functions, %d training infos, %d sparse initializers, want 1 each", len(m.Functions), len(m.TrainingInfo), len(m.Graph.SparseInitializer))
	}
	t16, err := byName["tensors"].Tensors[1].Tensor()
	if err != nil {
		t.Fatal(err)
	}
	f, err := t16.Float32s()
	if err != nil || !slices.Equal(f, []float32{0.5, -1}) {
		t.Errorf("got attribute tensor t2 = %v, %v, want [0.5 -1]", f, err)
	}
}

// Writing embeds external data; writing with ExternalData moves it out
// again. Either way the elements are unchanged.
func TestWriteExternalData(t *testing.T) {
	manifest := loadManifest(t)
	for _, name := range []string{"cnn.onnx", "ext.onnx", "dtypes.onnx"} {
		for _, opts := range []WriteOptions{{}, {ExternalData: "w.bin"}, {ExternalData: "sub.bin", ExternalThreshold: 64}} {
			t.Run(name+"/"+opts.ExternalData, func(t *testing.T) {
				m, err := Open(filepath.Join(fixtures, name))
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				dir := t.TempDir()
				out := filepath.Join(dir, "out.onnx")
				if err := WriteFile(out, m, opts); err != nil {
					t.Fatal(err)
				}
				back, err := Open(out)
				if err != nil {
					t.Fatal(err)
				}
				defer back.Close()
				checkAgainstManifest(t, back, manifest[name])
				for i, init := range back.Graph.Initializer {
					n, ok := m.Graph.Initializer[i].streamable()
					want := opts.ExternalData != "" && ok && n > 0 && n >= opts.ExternalThreshold
					if got := init.DataLocation == LocationExternal; got != want {
						t.Errorf("%s (%d bytes): got external %v, want %v", init.Name, n, got, want)
					}
				}
			})
		}
	}
}

func TestWriteRefusesItsSource(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"ext.onnx", "ext.data"} {
		b, err := os.ReadFile(filepath.Join(fixtures, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := Open(filepath.Join(dir, "ext.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, tc := range []struct {
		path string
		opts WriteOptions
	}{
		{filepath.Join(dir, "ext.onnx"), WriteOptions{}},
		{filepath.Join(dir, "other.onnx"), WriteOptions{ExternalData: "ext.data"}},
		{filepath.Join(dir, "other.onnx"), WriteOptions{ExternalData: "../escape.data"}},
	} {
		if err := WriteFile(tc.path, m, tc.opts); err == nil {
			t.Errorf("WriteFile(%s, %+v): got no error, want one", tc.path, tc.opts)
		}
	}
}

// cnnB reads the state_dict of the second CNN instance that
// onnx_fixtures.py wrote as raw bytes plus a JSON index.
func cnnB(t *testing.T) ([]Named, map[string]string) {
	t.Helper()
	return loadRawCheckpoint(t, filepath.Join(fixtures, "cnn_b.bin"), filepath.Join(fixtures, "cnn_b.json"))
}

// loadRawCheckpoint reads tensors written by testdata/gen scripts as
// little-endian bytes back to back (bin) with a JSON index; it returns them
// and their SHA-256 by name.
func loadRawCheckpoint(t *testing.T, bin, index string) ([]Named, map[string]string) {
	t.Helper()
	blob, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	var entries []struct {
		Name   string  `json:"name"`
		DType  string  `json:"dtype"`
		Shape  []int64 `json:"shape"`
		Offset int64   `json:"offset"`
		NBytes int64   `json:"nbytes"`
		SHA256 string  `json:"sha256"`
	}
	if err := json.Unmarshal(idx, &entries); err != nil {
		t.Fatal(err)
	}
	var out []Named
	hashes := map[string]string{}
	for _, e := range entries {
		dt, err := tensor.ParseDType(e.DType)
		if err != nil {
			t.Fatal(err)
		}
		x, err := tensor.FromBytes(dt, e.Shape, blob[e.Offset:e.Offset+e.NBytes])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Named{Name: e.Name, Tensor: x})
		hashes[e.Name] = e.SHA256
	}
	return out, hashes
}

func TestReplaceInitializers(t *testing.T) {
	m, err := Open(filepath.Join(fixtures, "cnn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ckpt, hashes := cnnB(t)
	rep, err := m.ReplaceInitializers(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"bn1.num_batches_tracked", "bn2.num_batches_tracked"}; !slices.Equal(rep.Unused, want) {
		t.Errorf("got unused %v, want %v", rep.Unused, want)
	}
	if len(rep.Replaced) != 13 {
		t.Errorf("got %d replaced, want 13", len(rep.Replaced))
	}
	out := filepath.Join(t.TempDir(), "b.onnx")
	if err := Write(out, m); err != nil {
		t.Fatal(err)
	}
	back, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	inits, _, err := back.Initializers()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range inits {
		if got := hashOf(t, n.Tensor); got != hashes[n.Name] {
			t.Errorf("%s: got sha256 %s, want the checkpoint's %s", n.Name, got, hashes[n.Name])
		}
	}
	// Everything but the initializers' elements is unchanged.
	orig, _ := os.ReadFile(filepath.Join(fixtures, "cnn.onnx"))
	written, _ := os.ReadFile(out)
	if len(orig) != len(written) {
		t.Errorf("got %d bytes, want %d (same structure, new elements)", len(written), len(orig))
	}
}

func TestReplaceInitializersProblems(t *testing.T) {
	m, err := Open(filepath.Join(fixtures, "cnn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ckpt, _ := cnnB(t)
	var edited []Named
	for _, n := range ckpt {
		switch n.Name {
		case "conv1.bias": // missing
			continue
		case "fc.weight": // shape mismatch
			x, _ := tensor.FromBytes(tensor.Float32, []int64{16, 10}, make([]byte, 640))
			n.Tensor = x
		case "bn1.weight": // dtype mismatch
			x, _ := tensor.FromBytes(tensor.Float16, []int64{8}, make([]byte, 16))
			n.Tensor = x
		}
		edited = append(edited, n)
	}
	before, _ := Marshal(m)
	_, err = m.ReplaceInitializers(edited)
	var re *ReplaceError
	if !errors.As(err, &re) {
		t.Fatalf("got error %v, want a *ReplaceError", err)
	}
	want := []Problem{
		{Name: "conv1.bias", Kind: Missing},
		{Name: "bn1.weight", Kind: DTypeMismatch, Graph: "FLOAT", Checkpoint: "float16"},
		{Name: "fc.weight", Kind: ShapeMismatch, Graph: "[10 16]", Checkpoint: "[16 10]"},
	}
	if !slices.Equal(re.Problems, want) {
		t.Errorf("got problems %+v, want %+v", re.Problems, want)
	}
	for _, line := range []string{`"conv1.bias" is missing from the checkpoint`, `"bn1.weight": data type FLOAT in the graph, float16`, `"fc.weight": shape [10 16] in the graph, [16 10]`} {
		if !strings.Contains(err.Error(), line) {
			t.Errorf("error %q does not say %q", err, line)
		}
	}
	after, _ := Marshal(m)
	if !bytes.Equal(before, after) {
		t.Errorf("a failed replacement changed the model")
	}
}

func TestFromTensors(t *testing.T) {
	ckpt, hashes := cnnB(t)
	m, err := FromTensors(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []WriteOptions{{}, {ExternalData: "w.bin"}} {
		out := filepath.Join(t.TempDir(), "weights.onnx")
		if err := WriteFile(out, m, opts); err != nil {
			t.Fatal(err)
		}
		back, err := Open(out)
		if err != nil {
			t.Fatal(err)
		}
		inits, _, err := back.Initializers()
		if err != nil {
			t.Fatal(err)
		}
		if len(inits) != len(ckpt) {
			t.Fatalf("got %d tensors, want %d", len(inits), len(ckpt))
		}
		for i, n := range inits {
			if n.Name != ckpt[i].Name || n.Tensor.DType != ckpt[i].Tensor.DType || !slices.Equal(n.Tensor.Shape, ckpt[i].Tensor.Shape) {
				t.Errorf("tensor %d: got %s %s%v, want %s %s%v", i, n.Name, n.Tensor.DType, n.Tensor.Shape, ckpt[i].Name, ckpt[i].Tensor.DType, ckpt[i].Tensor.Shape)
			}
			if h := hashOf(t, n.Tensor); h != hashes[n.Name] {
				t.Errorf("%s: got sha256 %s, want %s", n.Name, h, hashes[n.Name])
			}
		}
		back.Close()
	}
	if _, err := FromTensors([]Named{ckpt[0], ckpt[0]}); err == nil {
		t.Errorf("got no error for a duplicate name")
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name string
		head []byte
		want bool
	}{
		{"zip", []byte("PK\x03\x04\x14\x00"), false},
		{"pickle", []byte("\x80\x02}q\x00"), false},
		{"safetensors", []byte("\x08\x07\x00\x00\x00\x00\x00\x00{\"a\""), false},
		{"empty", nil, false},
		{"ir_version only", []byte{0x08, 0x07}, false},
		{"ir_version 0", []byte{0x08, 0x00, 0x12, 0x00}, false},
	}
	for _, name := range fixtureFiles {
		b, err := os.ReadFile(filepath.Join(fixtures, name))
		if err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name string
			head []byte
			want bool
		}{name, b[:min(len(b), 16)], true})
	}
	for _, tc := range tests {
		if got := Detect(tc.head); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// zeros is an endless source of zero bytes.
type zeros struct{}

func (zeros) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	return len(p), nil
}

// A model over protobuf's 2 GiB limit is refused unless its initializers
// go to external data, which then holds them all.
func TestOver2GiB(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping in -short mode: streams 2 GiB of zeros")
	}
	n := int64(1)<<29 + 1 // float32 elements: 2 GiB + 4 bytes
	x := tensor.New(tensor.Float32, []int64{n}, tensor.NewStorage(zeros{}, 0, 4*n))
	m, err := FromTensors([]Named{{Name: "big", Tensor: x}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Encode(io.Discard, m, WriteOptions{}, nil); err == nil || !strings.Contains(err.Error(), "exceeds protobuf's 2 GiB limit") {
		t.Fatalf("got error %v, want the 2 GiB limit", err)
	}
	var model bytes.Buffer
	var data countWriter
	if _, err := Encode(&model, m, WriteOptions{ExternalData: "big.bin"}, &data); err != nil {
		t.Fatal(err)
	}
	if data.n != 4*n || model.Len() > 200 {
		t.Fatalf("got %d bytes of external data and a %d-byte model, want %d and a small model", data.n, model.Len(), 4*n)
	}
	back, err := Unmarshal(model.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	got := back.Graph.Initializer[0]
	if got.DataLocation != LocationExternal || got.externalLocation() != "big.bin" {
		t.Errorf("got data_location %d at %q, want external in big.bin", got.DataLocation, got.externalLocation())
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// TestReplaceKeepsUntyped: a UINT16 initializer, which no checkpoint can
// hold, keeps its values and is reported kept rather than missing.
func TestReplaceKeepsUntyped(t *testing.T) {
	a, _ := tensor.FromBytes(tensor.Float32, []int64{1}, make([]byte, 4))
	m, err := FromTensors([]Named{{Name: "w", Tensor: a}})
	if err != nil {
		t.Fatal(err)
	}
	m.Graph.Initializer = append(m.Graph.Initializer, &TensorProto{Name: "q", DataType: Uint16, Dims: []int64{2}, Int32Data: []int32{7, 9}})
	b, _ := tensor.FromBytes(tensor.Float32, []int64{1}, []byte{0, 0, 128, 63})
	rep, err := m.ReplaceInitializers([]Named{{Name: "w", Tensor: b}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Replaced, []string{"w"}) || !slices.Equal(rep.Kept, []string{"q"}) {
		t.Errorf("got replaced %v kept %v, want [w] and [q]", rep.Replaced, rep.Kept)
	}
	back, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Unmarshal(back)
	if err != nil {
		t.Fatal(err)
	}
	if q := m2.Graph.Initializer[1]; q.Name != "q" || !slices.Equal(q.Int32Data, []int32{7, 9}) {
		t.Errorf("got %s %v, want q kept as [7 9]", q.Name, q.Int32Data)
	}
	// Named by the checkpoint, it is a dtype mismatch like any other.
	if _, err := m.ReplaceInitializers([]Named{{Name: "w", Tensor: b}, {Name: "q", Tensor: b}}); err == nil || !strings.Contains(err.Error(), `"q": data type UINT16 in the graph, float32`) {
		t.Errorf("got %v, want a data type mismatch for q", err)
	}
}

func TestReplaceSplitsIdentityAliases(t *testing.T) {
	build := func() *Model {
		a, _ := tensor.FromBytes(tensor.Float32, []int64{2}, make([]byte, 8))
		m, err := FromTensors([]Named{{Name: "bn1.weight", Tensor: a}})
		if err != nil {
			t.Fatal(err)
		}
		m.Graph.Node = []*Node{
			{OpType: "Identity", Input: []string{"bn1.weight"}, Output: []string{"bn2.weight"}},
			{OpType: "Mul", Input: []string{"bn1.weight", "bn2.weight"}, Output: []string{"y"}},
		}
		return m
	}
	f32 := func(shape []int64, vals ...float32) *tensor.Tensor {
		b := make([]byte, 4*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		x, err := tensor.FromBytes(tensor.Float32, shape, b)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	m := build()
	rep, err := m.ReplaceInitializers([]Named{{Name: "bn1.weight", Tensor: f32([]int64{2}, 1, 2)}, {Name: "bn2.weight", Tensor: f32([]int64{2}, 3, 4)}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Replaced, []string{"bn1.weight"}) || !slices.Equal(rep.Unaliased, []string{"bn2.weight"}) || len(rep.Unused) != 0 {
		t.Errorf("got report %+v, want bn1.weight replaced and bn2.weight unaliased", rep)
	}
	if len(m.Graph.Node) != 1 || m.Graph.Node[0].OpType != "Mul" {
		t.Errorf("got %d nodes, want the Identity removed", len(m.Graph.Node))
	}
	inits, _, err := m.Initializers()
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]float32{{1, 2}, {3, 4}} {
		got, _ := inits[i].Tensor.Float32s()
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", inits[i].Name, got, want)
		}
	}
	// A mismatched alias is a problem like a mismatched initializer.
	m = build()
	_, err = m.ReplaceInitializers([]Named{{Name: "bn1.weight", Tensor: f32([]int64{2}, 1, 2)}, {Name: "bn2.weight", Tensor: f32([]int64{3}, 3, 4, 5)}})
	var re *ReplaceError
	if !errors.As(err, &re) || len(re.Problems) != 1 || re.Problems[0].Kind != ShapeMismatch || re.Problems[0].Name != "bn2.weight" {
		t.Errorf("got %v, want a shape mismatch for bn2.weight", err)
	}
	if len(m.Graph.Node) != 2 {
		t.Errorf("a failed replacement removed nodes")
	}
}
