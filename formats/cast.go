package formats

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"

	"github.com/ckptkit/ckpt/tensor"
)

// CastStats counts what a cast did to values as they stream. It is safe for
// concurrent use.
type CastStats struct {
	// To is the target dtype.
	To tensor.DType
	// Tensors counts the tensors cast.
	Tensors                     int
	values, overflow, underflow atomic.Int64
}

// Values returns how many values have been converted so far.
func (s *CastStats) Values() int64 { return s.values.Load() }

// Overflow returns how many finite values became ±Inf.
func (s *CastStats) Overflow() int64 { return s.overflow.Load() }

// Underflow returns how many non-zero values were flushed to ±0.
func (s *CastStats) Underflow() int64 { return s.underflow.Load() }

// Cast returns a contiguous tensor holding t's values converted to dtype to
// (float16, bfloat16 or float32) as torch's .to(dtype) converts them:
// float64 is first rounded to float32, then every conversion rounds to
// nearest, ties to even. NaN becomes the NaN torch 1.13's CPU kernels write
// (checked against them by cast.json): float16 keeps the sign with a
// canonical payload (0x7e00); bfloat16 is 0xffff from float32 (the
// vectorized kernel) and 0x7fc0 from float64 and float16 (the scalar one). The conversion happens when the result's bytes are
// read, chunk by chunk; the first full read is counted into stats (which
// may be nil).
func Cast(t *tensor.Tensor, to tensor.DType, stats *CastStats) (*tensor.Tensor, error) {
	if !t.DType.IsFloat() {
		return nil, fmt.Errorf("formats: cannot cast %s tensor: not floating point", t.DType)
	}
	switch to {
	case tensor.Float16, tensor.BFloat16, tensor.Float32:
	default:
		return nil, fmt.Errorf("formats: cannot cast to %s", to)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if stats == nil {
		stats = &CastStats{To: to}
	}
	stats.Tensors++
	n := t.NumElements()
	cr := &castReader{src: t, to: to, stats: stats, numel: n}
	st := tensor.NewStorage(cr, 0, n*int64(to.Size()))
	st.Key = t.Storage.Key
	out := tensor.New(to, append([]int64(nil), t.Shape...), st)
	out.RequiresGrad = t.RequiresGrad
	return out, nil
}

// castReader is the io.ReaderAt behind a cast tensor's storage.
type castReader struct {
	src   *tensor.Tensor
	to    tensor.DType
	stats *CastStats
	numel int64

	mu      sync.Mutex
	counted int64 // elements [0, counted) have been counted
	srcBuf  []byte
	dstBuf  []byte
	f32     []float32
	seq     *io.PipeReader // sequential source for non-contiguous tensors
	seqPos  int64          // next element seq yields
}

func (c *castReader) ReadAt(p []byte, off int64) (int, error) {
	des := int64(c.to.Size())
	ses := int64(c.src.DType.Size())
	size := c.numel * des
	if off < 0 || off > size {
		return 0, fmt.Errorf("formats: cast read at %d outside %d bytes", off, size)
	}
	want := min(int64(len(p)), size-off)
	first, last := off/des, (off+want+des-1)/des
	n := last - first
	c.mu.Lock()
	defer c.mu.Unlock()
	if int64(cap(c.srcBuf)) < n*ses {
		c.srcBuf = make([]byte, n*ses)
		c.dstBuf = make([]byte, n*des)
	}
	src, dst := c.srcBuf[:n*ses], c.dstBuf[:n*des]
	if err := c.readSource(src, first, last); err != nil {
		return 0, err
	}
	count := first <= c.counted && last > c.counted
	skip := int64(0) // elements already counted
	if count {
		skip = c.counted - first
	}
	over, under := convert(c.src.DType, c.to, src, dst, n, skip, &c.f32)
	if count {
		c.stats.values.Add(last - c.counted)
		c.stats.overflow.Add(over)
		c.stats.underflow.Add(under)
		c.counted = last
	}
	k := copy(p, dst[off-first*des:off-first*des+want])
	if last == c.numel {
		// Done with this tensor (a writer reads each once): free the
		// buffers, so a checkpoint of many cast tensors does not keep
		// one set per tensor.
		c.srcBuf, c.dstBuf, c.f32 = nil, nil, nil
	}
	return k, nil
}

// readSource fills b with the source's little-endian elements [first, last)
// in row-major order.
func (c *castReader) readSource(b []byte, first, last int64) error {
	ses := int64(c.src.DType.Size())
	if c.src.IsContiguous() {
		if _, err := c.src.Storage.ReadAt(b, (c.src.Offset+first)*ses); err != nil {
			return err
		}
		if c.src.Storage.BigEndian {
			swap(b, int(ses))
		}
		return nil
	}
	// A strided view: stream it in row-major order, restarting if asked
	// for elements out of order.
	if c.seq == nil || c.seqPos != first {
		if c.seq != nil {
			c.seq.Close()
		}
		pr, pw := io.Pipe()
		go func(t *tensor.Tensor) {
			_, err := t.WriteTo(pw)
			pw.CloseWithError(err)
		}(c.src)
		c.seq, c.seqPos = pr, 0
		if _, err := io.CopyN(io.Discard, pr, first*ses); err != nil {
			return err
		}
		c.seqPos = first
	}
	if _, err := io.ReadFull(c.seq, b); err != nil {
		return err
	}
	c.seqPos = last
	if last == c.numel {
		c.seq.Close()
		c.seq = nil
	}
	return nil
}

func swap(b []byte, size int) {
	for i := 0; i+size <= len(b); i += size {
		for j := 0; j < size/2; j++ {
			b[i+j], b[i+size-1-j] = b[i+size-1-j], b[i+j]
		}
	}
}

// convert converts n little-endian elements of dtype from in src to dtype to
// in dst and counts, from element skip on, finite values that became ±Inf
// (over) and non-zero values that became ±0 (under).
func convert(from, to tensor.DType, src, dst []byte, n, skip int64, scratch *[]float32) (over, under int64) {
	if int64(cap(*scratch)) < n {
		*scratch = make([]float32, n)
	}
	f := (*scratch)[:n]
	le := binary.LittleEndian
	// Round to float32 first, as torch does; count what float64 loses.
	if from == tensor.Float64 {
		for i := range n {
			v := math.Float64frombits(le.Uint64(src[8*i:]))
			f[i] = float32(v)
			if i >= skip {
				if math.IsInf(float64(f[i]), 0) && !math.IsInf(v, 0) {
					over++
				} else if f[i] == 0 && v != 0 {
					under++
				}
			}
		}
	} else {
		tensor.DecodeFloat32s(from, src, f)
	}
	switch to {
	case tensor.Float32:
		for i := range n {
			le.PutUint32(dst[4*i:], math.Float32bits(f[i]))
		}
	case tensor.Float16:
		for i := range n {
			x := f[i]
			h := tensor.Float32ToFloat16(x)
			if x != x {
				h = uint16(math.Float32bits(x)>>16)&0x8000 | 0x7e00
			} else if i >= skip {
				if h&0x7fff == 0x7c00 && !math.IsInf(float64(x), 0) {
					over++
				} else if h&0x7fff == 0 && x != 0 {
					under++
				}
			}
			le.PutUint16(dst[2*i:], h)
		}
	case tensor.BFloat16:
		nan := uint16(0x7fc0) // torch's scalar conversion
		if from == tensor.Float32 {
			nan = 0xffff // torch's vectorized float32 kernel
		}
		for i := range n {
			x := f[i]
			h := tensor.Float32ToBFloat16(x)
			if x != x {
				h = nan
			} else if i >= skip {
				if h&0x7fff == 0x7f80 && !math.IsInf(float64(x), 0) {
					over++
				} else if h&0x7fff == 0 && x != 0 {
					under++
				}
			}
			le.PutUint16(dst[2*i:], h)
		}
	}
	return over, under
}
