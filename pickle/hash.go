package pickle

import (
	"crypto/sha256"
	"fmt"
	"runtime"
	"sync"

	"github.com/ckptkit/ckpt/tensor"
)

// Hashes returns the SHA-256 fingerprint (tensor.Tensor.SHA256) of every
// tensor of f, in the order of f.Tensors, computing up to workers of them
// concurrently (GOMAXPROCS when workers <= 0). One SHA-256 stream cannot be
// split, so this is how a listing with hashes uses more than one core.
// Contiguous little-endian tensors are streamed from their storage through
// one reused buffer per worker; others go through Tensor.SHA256.
func (f *File) Hashes(workers int) ([][32]byte, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	sums := make([][32]byte, len(f.Tensors))
	errs := make([]error, len(f.Tensors))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(f.Tensors)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := range next {
				sums[i], errs[i] = hashTensor(f.Tensors[i].Tensor, &buf)
			}
		}()
	}
	for i := range f.Tensors {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("pickle: hashing %s: %w", f.Tensors[i].Name, err)
		}
	}
	return sums, nil
}

// hashTensor is Tensor.SHA256 with a caller-owned buffer for the common
// case of a contiguous tensor whose stored bytes are already the
// little-endian row-major bytes the fingerprint is defined over.
func hashTensor(t *tensor.Tensor, buf *[]byte) ([32]byte, error) {
	es := int64(t.DType.Size())
	if !t.IsContiguous() || t.Storage == nil || t.Storage.BigEndian && es > 1 {
		return t.SHA256()
	}
	var sum [32]byte
	if err := t.Validate(); err != nil {
		return sum, err
	}
	if *buf == nil {
		*buf = make([]byte, tensor.ChunkSize)
	}
	h := sha256.New()
	off, n := t.Offset*es, t.NumBytes()
	for done := int64(0); done < n; {
		c := (*buf)[:min(int64(len(*buf)), n-done)]
		if _, err := t.Storage.ReadAt(c, off+done); err != nil {
			return sum, err
		}
		h.Write(c)
		done += int64(len(c))
	}
	h.Sum(sum[:0])
	return sum, nil
}
