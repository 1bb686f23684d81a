package tensor

import (
	"bytes"
	"fmt"
	"io"
)

// Storage is a run of bytes in a file (or in memory) that one or more Tensors
// view. Its bytes are read only when a Tensor's elements are asked for.
//
// A Storage is safe for concurrent use if its io.ReaderAt is (files and
// byte slices are).
type Storage struct {
	// Key names the storage in its file (a zip entry such as "data/3", a
	// legacy storage key, a safetensors tensor name). It is informational.
	Key string
	// BigEndian is set when the storage holds big-endian elements (a torch
	// file whose byteorder record says "big"). Tensors viewing it are
	// byte-swapped on read.
	BigEndian bool

	r    io.ReaderAt
	off  int64
	size int64
}

// NewStorage returns a Storage of size bytes that starts at byte off of r.
// It reads nothing.
func NewStorage(r io.ReaderAt, off, size int64) *Storage {
	return &Storage{r: r, off: off, size: size}
}

// NewStorageBytes returns a Storage over b. The Storage does not copy b.
func NewStorageBytes(b []byte) *Storage {
	return &Storage{r: bytes.NewReader(b), size: int64(len(b))}
}

// Size returns the storage's length in bytes.
func (s *Storage) Size() int64 { return s.size }

// Source returns the reader and the offset of the storage's first byte in it,
// for writers that copy a storage without decoding it.
func (s *Storage) Source() (io.ReaderAt, int64) { return s.r, s.off }

// ReadAt reads len(p) bytes of the storage starting at byte off. Reading past
// the end of the storage is an error, even when the underlying reader has more
// bytes; a read that ends exactly at the end returns a nil error.
func (s *Storage) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > s.size || int64(len(p)) > s.size-off {
		return 0, fmt.Errorf("tensor: read of %d bytes at %d is outside storage %q of %d bytes", len(p), off, s.Key, s.size)
	}
	n, err := s.r.ReadAt(p, s.off+off)
	if n == len(p) {
		return n, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, fmt.Errorf("tensor: storage %q: %w", s.Key, err)
}
