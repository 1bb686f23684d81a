package safetensors

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzSafetensorsHeader feeds whole files to Read. It must not panic, and
// whatever it accepts must survive a write and read back with the same
// names, dtypes, shapes, bytes and metadata. Seeds: testdata/formats/*.safetensors
// (made by testdata/gen/formats_fixtures.py) and small hand-made headers.
func FuzzSafetensorsHeader(f *testing.F) {
	seeds, _ := filepath.Glob("../../testdata/formats/*.safetensors")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(file(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"__metadata__":{"k":"v"}}`, 2))
	f.Add(file(`{"a":{"dtype":"BF16","shape":[],"data_offsets":[0,2]}}   `, 2))
	f.Fuzz(func(t *testing.T, b []byte) {
		sf, err := Read(bytes.NewReader(b), int64(len(b)), "fuzz")
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if _, err := Write(&buf, sf.Tensors, sf.Metadata); err != nil {
			t.Fatalf("write of an accepted file: %v", err)
		}
		back, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "back")
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		if len(back.Tensors) != len(sf.Tensors) || len(back.Metadata) != len(sf.Metadata) {
			t.Fatalf("got %d tensors %d metadata back, want %d %d", len(back.Tensors), len(back.Metadata), len(sf.Tensors), len(sf.Metadata))
		}
		for k, v := range sf.Metadata {
			if back.Metadata[k] != v {
				t.Errorf("metadata %q: got %q, want %q", k, back.Metadata[k], v)
			}
		}
		for i, nt := range sf.Tensors {
			bt := back.Tensors[i]
			if bt.Name != nt.Name || bt.Tensor.DType != nt.Tensor.DType || len(bt.Tensor.Shape) != len(nt.Tensor.Shape) {
				t.Fatalf("tensor %d: got %q %s%v, want %q %s%v", i, bt.Name, bt.Tensor.DType, bt.Tensor.Shape, nt.Name, nt.Tensor.DType, nt.Tensor.Shape)
			}
			x, err1 := nt.Tensor.Bytes()
			y, err2 := bt.Tensor.Bytes()
			if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
				t.Fatalf("tensor %q: bytes differ (%v, %v)", nt.Name, err1, err2)
			}
		}
	})
}
