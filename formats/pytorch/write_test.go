package pytorch

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/tensor"
	gp "github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// decoded is one state_dict entry as an independent unpickler
// (gopickle) sees data.pkl.
type decoded struct {
	name        string
	storageType string
	key         string
	numel       int
	offset      int
	shape       []int
	stride      []int
}

type rebuildFunc struct{}

func (rebuildFunc) Call(args ...any) (any, error) { return args, nil }

func ints(v any) []int {
	var out []int
	for _, x := range *(v.(*types.Tuple)) {
		out = append(out, x.(int))
	}
	return out
}

// decode unpickles data.pkl, allowing only what the writer should emit.
func decode(t *testing.T, pkl []byte) []decoded {
	t.Helper()
	u := gp.NewUnpickler(bytes.NewReader(pkl))
	u.FindClass = func(module, name string) (any, error) {
		switch {
		case module == "collections" && name == "OrderedDict":
			return &types.OrderedDictClass{}, nil
		case module == "torch._utils" && name == "_rebuild_tensor_v2":
			return rebuildFunc{}, nil
		case module == "torch" && strings.HasSuffix(name, "Storage"):
			return name, nil
		}
		return nil, fmt.Errorf("unexpected global %s.%s", module, name)
	}
	u.PersistentLoad = func(pid any) (any, error) { return pid, nil }
	obj, err := u.Load()
	if err != nil {
		t.Fatalf("unpickling data.pkl: %v", err)
	}
	od, ok := obj.(*types.OrderedDict)
	if !ok {
		t.Fatalf("data.pkl holds %T, want an OrderedDict", obj)
	}
	var out []decoded
	for e := od.List.Front(); e != nil; e = e.Next() {
		ent := e.Value.(*types.OrderedDictEntry)
		args := ent.Value.([]any)
		if len(args) != 6 {
			t.Fatalf("%v: _rebuild_tensor_v2 got %d args, want 6", ent.Key, len(args))
		}
		pid := *(args[0].(*types.Tuple))
		if len(pid) != 5 || pid[0] != "storage" || pid[3] != "cpu" {
			t.Fatalf("%v: persistent id %v", ent.Key, pid)
		}
		if args[4] != false {
			t.Errorf("%v: requires_grad %v, want false", ent.Key, args[4])
		}
		if hooks, ok := args[5].(*types.OrderedDict); !ok || hooks.Len() != 0 {
			t.Errorf("%v: backward hooks %v, want an empty OrderedDict", ent.Key, args[5])
		}
		out = append(out, decoded{
			name: ent.Key.(string), storageType: pid[1].(string), key: pid[2].(string), numel: pid[4].(int),
			offset: args[1].(int), shape: ints(args[2]), stride: ints(args[3]),
		})
	}
	return out
}

func f32s(vs ...float32) []byte {
	b := make([]byte, 0, 4*len(vs))
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func TestWriteLayout(t *testing.T) {
	base := tensor.NewStorageBytes(f32s(0, 1, 2, 3, 4, 5))
	full := tensor.New(tensor.Float32, []int64{2, 3}, base)
	row := &tensor.Tensor{DType: tensor.Float32, Shape: []int64{3}, Stride: []int64{1}, Offset: 3, Storage: base}
	tr := &tensor.Tensor{DType: tensor.Float32, Shape: []int64{3, 2}, Stride: []int64{1, 3}, Storage: base}
	big := tensor.New(tensor.Int64, []int64{2}, tensor.NewStorageBytes(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 1<<40), math.MaxUint64)))
	bf, _ := tensor.FromBytes(tensor.BFloat16, nil, []byte{0x80, 0x3f})
	empty, _ := tensor.FromBytes(tensor.Bool, []int64{0, 4}, nil)
	in := []Named{{Name: "w", Tensor: full}, {Name: "tied", Tensor: full}, {Name: "row", Tensor: row}, {Name: "t", Tensor: tr}, {Name: "big", Tensor: big}, {Name: "scalar", Tensor: bf}, {Name: "empty", Tensor: empty}}

	var buf bytes.Buffer
	n, err := Write(&buf, in)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("Write returned %d, wrote %d", n, buf.Len())
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string][]byte{}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		if f.Method != zip.Store {
			t.Errorf("%s: method %d, want STORED", f.Name, f.Method)
		}
		off, err := f.DataOffset()
		if err != nil {
			t.Fatal(err)
		}
		if off%Alignment != 0 {
			t.Errorf("%s: data at %d, not a multiple of %d", f.Name, off, Alignment)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc) // checks the CRC
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		entries[f.Name] = b
	}
	wantNames := []string{"archive/data.pkl", "archive/byteorder", "archive/data/0", "archive/data/1", "archive/data/2", "archive/data/3", "archive/data/4", "archive/version"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("got entries %v, want %v", names, wantNames)
	}
	if got := string(entries["archive/version"]); got != "3\n" {
		t.Errorf("version %q, want %q", got, "3\n")
	}
	if got := string(entries["archive/byteorder"]); got != "little" {
		t.Errorf("byteorder %q, want little", got)
	}

	want := []decoded{
		{"w", "FloatStorage", "0", 6, 0, []int{2, 3}, []int{3, 1}},
		{"tied", "FloatStorage", "0", 6, 0, []int{2, 3}, []int{3, 1}},
		{"row", "FloatStorage", "0", 6, 3, []int{3}, []int{1}},
		{"t", "FloatStorage", "1", 6, 0, []int{3, 2}, []int{2, 1}},
		{"big", "LongStorage", "2", 2, 0, []int{2}, []int{1}},
		{"scalar", "BFloat16Storage", "3", 1, 0, nil, nil},
		{"empty", "BoolStorage", "4", 0, 0, []int{0, 4}, []int{4, 1}},
	}
	got := decode(t, entries["archive/data.pkl"])
	if !reflect.DeepEqual(got, want) {
		t.Errorf("data.pkl:\n got %v\nwant %v", got, want)
	}
	storageWant := map[string][]byte{
		"archive/data/0": f32s(0, 1, 2, 3, 4, 5),
		"archive/data/1": f32s(0, 3, 1, 4, 2, 5), // the transpose, written contiguous
		"archive/data/2": binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 1<<40), math.MaxUint64),
		"archive/data/3": {0x80, 0x3f},
		"archive/data/4": {},
	}
	for k, v := range storageWant {
		if !bytes.Equal(entries[k], v) {
			t.Errorf("%s: got % x, want % x", k, entries[k], v)
		}
	}
	if db, _ := DataBytes(in); db != 24+24+16+2 {
		t.Errorf("DataBytes = %d, want %d", db, 24+24+16+2)
	}

	// Deterministic: a second write is byte-identical.
	var again bytes.Buffer
	if _, err := Write(&again, in); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Error("two writes of the same tensors differ")
	}
}

func TestWriteBigEndianStorage(t *testing.T) {
	st := tensor.NewStorageBytes([]byte{0x3f, 0x80, 0, 0, 0x40, 0, 0, 0}) // 1.0, 2.0 big-endian
	st.BigEndian = true
	var buf bytes.Buffer
	if _, err := Write(&buf, []Named{{Name: "x", Tensor: tensor.New(tensor.Float32, []int64{2}, st)}}); err != nil {
		t.Fatal(err)
	}
	zr, _ := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	for _, f := range zr.File {
		if f.Name == "archive/data/0" {
			rc, _ := f.Open()
			b, _ := io.ReadAll(rc)
			if !bytes.Equal(b, f32s(1, 2)) {
				t.Errorf("got % x, want little-endian % x", b, f32s(1, 2))
			}
			return
		}
	}
	t.Fatal("no archive/data/0")
}

func TestWriteRefuses(t *testing.T) {
	one, _ := tensor.FromBytes(tensor.Uint8, []int64{1}, []byte{1})
	tests := []struct {
		name string
		in   []Named
		want string
	}{
		{"duplicate", []Named{{Name: "a", Tensor: one}, {Name: "a", Tensor: one}}, `"a" given twice`},
		{"nil", []Named{{Name: "a", Tensor: nil}}, "nil"},
		{"out of bounds", []Named{{Name: "v", Tensor: &tensor.Tensor{DType: tensor.Float32, Shape: []int64{2}, Stride: []int64{1}, Storage: tensor.NewStorageBytes(make([]byte, 4))}}}, `tensor "v"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Write(io.Discard, tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestPaddingAligns(t *testing.T) {
	for off := int64(0); off < 200; off += 7 {
		for _, nl := range []int{1, 16, 63, 64, 100} {
			p := padding(off, nl)
			if start := off + 30 + int64(nl) + int64(len(p)); start%Alignment != 0 {
				t.Fatalf("off %d name %d: data at %d", off, nl, start)
			}
			if string(p[:2]) != "FB" || int(binary.LittleEndian.Uint16(p[2:])) != len(p)-4 {
				t.Fatalf("off %d name %d: bad FB block % x", off, nl, p[:4])
			}
		}
	}
}
