package onnx

import (
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/ckptkit/ckpt/tensor"
)

// benchModel is a weights-only model of 16 float32 tensors of 4 MiB.
func benchModel(b *testing.B) (*Model, int64) {
	b.Helper()
	var ts []Named
	var total int64
	for i := range 16 {
		x, err := tensor.FromBytes(tensor.Float32, []int64{1024, 1024}, make([]byte, 4<<20))
		if err != nil {
			b.Fatal(err)
		}
		ts = append(ts, Named{Name: fmt.Sprintf("layer%d.weight", i), Tensor: x})
		total += x.NumBytes()
	}
	m, err := FromTensors(ts)
	if err != nil {
		b.Fatal(err)
	}
	return m, total
}

// BenchmarkEncode measures streaming a 64 MiB model's tensors through the
// writer (size pass plus write pass).
func BenchmarkEncode(b *testing.B) {
	m, total := benchModel(b)
	b.SetBytes(total)
	for b.Loop() {
		if _, err := Encode(io.Discard, m, WriteOptions{}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen measures opening a 64 MiB model file and hashing every
// initializer (reads all bytes once).
func BenchmarkOpen(b *testing.B) {
	m, total := benchModel(b)
	path := filepath.Join(b.TempDir(), "bench.onnx")
	if err := Write(path, m); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	for b.Loop() {
		m, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		inits, _, err := m.Initializers()
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range inits {
			if _, err := n.Tensor.SHA256(); err != nil {
				b.Fatal(err)
			}
		}
		m.Close()
	}
}
