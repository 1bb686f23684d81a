package pickle

import (
	"fmt"
	"runtime"
	"sync"
)

// Hashes returns the SHA-256 fingerprint (tensor.Tensor.SHA256) of every
// tensor of f, in the order of f.Tensors, computing up to workers of them
// concurrently (GOMAXPROCS when workers <= 0). One SHA-256 stream cannot be
// split, so this is how a listing with hashes uses more than one core.
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
			for i := range next {
				sums[i], errs[i] = f.Tensors[i].Tensor.SHA256()
			}
		}()
	}
	// Largest first would balance better; pickle order keeps memory use
	// predictable and the work is dominated by a few large tensors anyway.
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
