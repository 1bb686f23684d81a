package data

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"

	"github.com/ckptkit/ckpt/data/transforms"
)

// Batch is a batch of preprocessed images.
type Batch struct {
	// X holds len(Labels) images of 3×Size×Size floats, channel-major.
	X      []float32
	Size   int
	Labels []int
	// Indices are the images' indices in the dataset.
	Indices []int
}

// Len returns the number of images in the batch.
func (b *Batch) Len() int { return len(b.Labels) }

// Loader reads a dataset in batches. Decoding and the transform run on
// Workers goroutines, Prefetch batches ahead of the consumer. The batches of
// an epoch depend only on the dataset, BatchSize, Shuffle, Seed and the
// epoch number (each sample's random transform has its own generator seeded
// from Seed, the epoch and the sample's index), never on Workers or timing.
type Loader struct {
	Data      *Dataset
	Transform Transform
	BatchSize int
	// Shuffle draws a new order every epoch from Seed and the epoch.
	Shuffle bool
	Seed    uint64
	// DropLast drops the last incomplete batch.
	DropLast bool
	// Workers is the number of decoding goroutines; 0 means GOMAXPROCS.
	Workers int
	// Prefetch is the number of batches prepared ahead; 0 means 2.
	Prefetch int
	// SkipBad leaves unreadable images out of their batch, recording them
	// in Bad, instead of failing.
	SkipBad bool

	mu  sync.Mutex
	bad map[string]error
}

// Bad returns the unreadable images skipped so far (path -> error).
func (l *Loader) Bad() map[string]error {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]error, len(l.bad))
	for k, v := range l.bad {
		out[k] = v
	}
	return out
}

// Order returns the sample order of epoch: 0..n-1, or a permutation drawn
// from Seed and the epoch when Shuffle.
func (l *Loader) Order(epoch int) []int {
	n := l.Data.Len()
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	if l.Shuffle {
		r := rand.New(rand.NewPCG(l.Seed, uint64(epoch)+0x5eed))
		r.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	return order
}

// NumBatches returns the number of batches in an epoch.
func (l *Loader) NumBatches() int {
	n, b := l.Data.Len(), l.BatchSize
	if l.DropLast {
		return n / b
	}
	return (n + b - 1) / b
}

// Load decodes the image at path and converts it to RGB as Pillow's
// convert("RGB") does.
func Load(path string) (*transforms.RGB, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	img, _, err := transforms.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("data: %s: %w", path, err)
	}
	rgb := transforms.ToRGB(img)
	if rgb.W == 0 || rgb.H == 0 {
		return nil, fmt.Errorf("data: %s: empty image", path)
	}
	return rgb, nil
}

// SampleRand returns the generator of sample i's random transform in epoch.
func SampleRand(seed uint64, epoch, i int) *rand.Rand {
	return rand.New(rand.NewPCG(seed^uint64(epoch)*0x9e3779b97f4a7c15, uint64(i)))
}

// Epoch streams the batches of epoch on the returned channel, in order,
// until they are done or ctx is cancelled; then the channel is closed and
// the error function, called after the channel is drained, returns the first
// error (nil after a complete epoch, ctx.Err() after a cancellation). A
// consumer that stops early must cancel ctx and drain the channel.
func (l *Loader) Epoch(ctx context.Context, epoch int) (<-chan *Batch, func() error) {
	if l.BatchSize <= 0 {
		l.BatchSize = 1
	}
	workers := l.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	prefetch := l.Prefetch
	if prefetch <= 0 {
		prefetch = 2
	}
	order := l.Order(epoch)
	nb := l.NumBatches()
	size := l.Transform.Size()
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan *Batch, prefetch)
	var errMu sync.Mutex
	var firstErr error
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel()
	}

	// Every batch is a slot filled by the workers; batches are handed out
	// in order, at most prefetch+1 in flight.
	type job struct {
		b   *batchWork
		pos int
	}
	jobs := make(chan job, workers)
	slots := make(chan *batchWork, prefetch)
	go func() { // producer: batches in order, their samples as jobs
		defer close(jobs)
		defer close(slots)
		for bi := range nb {
			lo, hi := bi*l.BatchSize, min((bi+1)*l.BatchSize, len(order))
			bw := &batchWork{idx: order[lo:hi], x: make([]float32, (hi-lo)*3*size*size), ok: make([]bool, hi-lo)}
			bw.wg.Add(hi - lo)
			select {
			case slots <- bw:
			case <-ctx.Done():
				return
			}
			for p := range hi - lo {
				select {
				case jobs <- job{bw, p}:
				case <-ctx.Done():
					bw.wg.Add(p - (hi - lo)) // the jobs never sent
					return
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if ctx.Err() == nil {
					if err := l.fill(j.b, j.pos, epoch, size); err != nil {
						fail(err)
					}
				}
				j.b.wg.Done()
			}
		}()
	}
	go func() { // assembler: wait for each batch in order
		defer close(out)
		defer wg.Wait()
		defer cancel()
		for bw := range slots {
			bw.wg.Wait()
			if ctx.Err() != nil {
				continue // drain: the workers finish their jobs
			}
			b := &Batch{Size: size}
			per := 3 * size * size
			for p, i := range bw.idx {
				if !bw.ok[p] {
					continue
				}
				b.X = append(b.X, bw.x[p*per:(p+1)*per]...)
				b.Labels = append(b.Labels, l.Data.Samples[i].Label)
				b.Indices = append(b.Indices, i)
			}
			if b.Len() == 0 {
				continue
			}
			select {
			case out <- b:
			case <-ctx.Done():
			}
		}
	}()
	return out, func() error {
		errMu.Lock()
		defer errMu.Unlock()
		if firstErr != nil {
			return firstErr
		}
		return parent.Err()
	}
}

type batchWork struct {
	idx []int
	x   []float32
	ok  []bool
	wg  sync.WaitGroup
}

func (l *Loader) fill(b *batchWork, pos, epoch, size int) error {
	i := b.idx[pos]
	path := l.Data.Samples[i].Path
	img, err := Load(path)
	var x []float32
	if err == nil {
		x, err = l.Transform.Apply(img, SampleRand(l.Seed, epoch, i))
		if err != nil {
			err = fmt.Errorf("data: %s: %w", path, err)
		}
	}
	if err != nil {
		if !l.SkipBad {
			return err
		}
		l.mu.Lock()
		if l.bad == nil {
			l.bad = map[string]error{}
		}
		l.bad[path] = err
		l.mu.Unlock()
		return nil
	}
	if len(x) != 3*size*size {
		return fmt.Errorf("data: %s: transform gave %d values, want %d", path, len(x), 3*size*size)
	}
	copy(b.x[pos*3*size*size:], x)
	b.ok[pos] = true
	return nil
}
