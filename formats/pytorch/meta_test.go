package pytorch

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/pickle"
	"github.com/ckptkit/ckpt/tensor"
)

// TestWriteMetaRoundTrip writes metadata with WriteMeta and WriteObjectMeta
// and reads it back with package pickle, in order, with the tensors
// unchanged; without metadata the archive has no record.
func TestWriteMetaRoundTrip(t *testing.T) {
	w := tensor.New(tensor.Float32, []int64{2}, tensor.NewStorageBytes(f32s(1, 2)))
	ts := []Named{{Name: "w", Tensor: w}}
	meta := []Meta{{Key: "z", Value: "last key first"}, {Key: "classes", Value: `["cat","dog"]`}, {Key: "html", Value: "<a & b>"}, {Key: "", Value: ""}, {Key: "ünï", Value: "\x00\n"}}
	obj := &pickle.Dict{Keys: []any{"epoch", "model"}, Values: []any{int64(3), &pickle.Dict{Ordered: true, Keys: []any{"w"}, Values: []any{w}}}}
	for _, tc := range []struct {
		name  string
		write func(*bytes.Buffer, []Meta) (int64, error)
	}{
		{"WriteMeta", func(b *bytes.Buffer, m []Meta) (int64, error) { return WriteMeta(b, ts, m) }},
		{"WriteObjectMeta", func(b *bytes.Buffer, m []Meta) (int64, error) { return WriteObjectMeta(b, obj, m) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, m := range [][]Meta{meta, nil} {
				var buf bytes.Buffer
				n, err := tc.write(&buf, m)
				if err != nil {
					t.Fatal(err)
				}
				if n != int64(buf.Len()) {
					t.Errorf("returned %d, wrote %d", n, buf.Len())
				}
				f, err := pickle.Load(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(f.Metadata, m) {
					t.Errorf("got metadata %q, want %q", f.Metadata, m)
				}
				if got := strings.Contains(buf.String(), pickle.MetadataRecord); got != (m != nil) {
					t.Errorf("archive names the record: %v, want %v", got, m != nil)
				}
				if len(f.Tensors) != 1 || !strings.HasSuffix(f.Tensors[0].Name, "w") {
					t.Fatalf("got tensors %v, want w", tensor.Names(f.Tensors))
				}
				if b, err := f.Tensors[0].Tensor.Bytes(); err != nil || !bytes.Equal(b, f32s(1, 2)) {
					t.Errorf("tensor w reads %v, %v; want %v", b, err, f32s(1, 2))
				}
			}
		})
	}
}

// TestWriteMetaRefuses checks that metadata the reader would not take back
// is refused when writing.
func TestWriteMetaRefuses(t *testing.T) {
	ts := []Named{{Name: "w", Tensor: tensor.New(tensor.Float32, []int64{1}, tensor.NewStorageBytes(f32s(1)))}}
	for _, tc := range []struct {
		name string
		meta []Meta
		want string
	}{
		{"duplicate key", []Meta{{Key: "a", Value: "1"}, {Key: "a", Value: "2"}}, `metadata key "a" given twice`},
		{"invalid UTF-8 value", []Meta{{Key: "a", Value: "\xff"}}, `metadata "a": not valid UTF-8`},
		{"invalid UTF-8 key", []Meta{{Key: "\xfe", Value: "x"}}, "not valid UTF-8"},
		{"too large", []Meta{{Key: "a", Value: strings.Repeat("x", pickle.MaxMetadataSize)}}, "exceeds limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := WriteMeta(&bytes.Buffer{}, ts, tc.meta)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
