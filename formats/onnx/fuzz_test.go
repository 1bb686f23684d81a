package onnx

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead feeds arbitrary bytes to the reader, seeded with the fixtures of
// testdata/onnx (made by testdata/gen/onnx_fixtures.py) and the malformed
// inputs of TestMalformed. It must never panic; what it reads must write
// and read back to the same encoding, and its initializers must be readable
// or give an error.
func FuzzRead(f *testing.F) {
	for _, name := range fixtureFiles {
		b, err := os.ReadFile(filepath.Join(fixtures, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(modelWith(dims(2), pbVarint(2, uint64(Float16)), pbStr(9, "abcd")))
	f.Add(deepModel(3))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := Unmarshal(in)
		if err != nil {
			return
		}
		if inits, _, err := m.Initializers(); err == nil {
			for _, n := range inits {
				if _, err := n.Tensor.Bytes(); err != nil {
					t.Fatalf("initializer %q accepted but unreadable: %v", n.Name, err)
				}
			}
		}
		out, err := Marshal(m)
		if err != nil {
			t.Fatalf("read but cannot write: %v", err)
		}
		m2, err := Unmarshal(out)
		if err != nil {
			t.Fatalf("cannot read what was written: %v", err)
		}
		out2, err := Marshal(m2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("write-read-write changed %d bytes into %d", len(out), len(out2))
		}
	})
}

// FuzzReadTensor does the same for a lone TensorProto (the .pb files of
// ONNX test data sets), seeded with every initializer of the fixtures.
func FuzzReadTensor(f *testing.F) {
	for _, name := range fixtureFiles {
		b, err := os.ReadFile(filepath.Join(fixtures, name))
		if err != nil {
			f.Fatal(err)
		}
		m, err := Unmarshal(b)
		if err != nil {
			f.Fatal(err)
		}
		for _, t := range m.Graph.Initializer {
			tb, err := MarshalTensor(t)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(tb)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		tp, err := UnmarshalTensor(in)
		if err != nil {
			return
		}
		if x, err := tp.Tensor(); err == nil {
			if _, err := x.Bytes(); err != nil {
				t.Fatalf("tensor accepted but unreadable: %v", err)
			}
		}
		out, err := MarshalTensor(tp)
		if err != nil {
			t.Fatalf("read but cannot write: %v", err)
		}
		tp2, err := UnmarshalTensor(out)
		if err != nil {
			t.Fatalf("cannot read what was written: %v", err)
		}
		out2, err := MarshalTensor(tp2)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("write-read-write changed the encoding (%v)", err)
		}
	})
}
