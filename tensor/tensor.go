package tensor

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
	"sync"
)

// ChunkSize is the size of the buffers used to stream a tensor's bytes.
const ChunkSize = 1 << 20

// chunkPool holds ChunkSize buffers for copyRange. Writers must not keep
// the slices passed to Write (io.Writer's contract), so reuse is safe.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, ChunkSize); return &b }}

// SpanSlack is how much more storage than its own size a strided view may
// cover and still be read in one piece by WriteTo; beyond it, WriteTo reads
// the view run by run. WriteTo's peak memory is therefore at most the
// tensor's size plus SpanSlack plus ChunkSize.
const SpanSlack = 62 << 20

// MaxElements bounds the number of elements a Tensor may describe, so that
// byte counts never overflow an int64.
const MaxElements = 1 << 58

// Tensor is a view of a Storage: element i (a multi-index) lives at element
// Offset + Σ i[d]*Stride[d] of the storage.
type Tensor struct {
	DType   DType
	Shape   []int64
	Stride  []int64
	Offset  int64
	Storage *Storage
	// RequiresGrad records torch's requires_grad flag where the file has it
	// (a torch.nn.Parameter). It does not change how bytes are read.
	RequiresGrad bool
}

// New returns a contiguous row-major Tensor over s starting at element 0.
func New(dt DType, shape []int64, s *Storage) *Tensor {
	return &Tensor{DType: dt, Shape: shape, Stride: ContiguousStrides(shape), Storage: s}
}

// FromBytes returns a contiguous Tensor over little-endian bytes b, which must
// hold exactly the tensor's elements.
func FromBytes(dt DType, shape []int64, b []byte) (*Tensor, error) {
	t := New(dt, shape, NewStorageBytes(b))
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if t.NumBytes() != int64(len(b)) {
		return nil, fmt.Errorf("tensor: %d bytes for %s%v, want %d", len(b), dt, shape, t.NumBytes())
	}
	return t, nil
}

// ContiguousStrides returns the row-major strides of shape, in elements.
func ContiguousStrides(shape []int64) []int64 {
	st := make([]int64, len(shape))
	acc := int64(1)
	for d := len(shape) - 1; d >= 0; d-- {
		st[d] = acc
		if shape[d] > 0 {
			acc *= shape[d]
		}
	}
	return st
}

// NumElements returns the product of the shape: 1 for a 0-d tensor, 0 when a
// dimension is 0. Call Validate first on tensors from untrusted input.
func (t *Tensor) NumElements() int64 {
	n := int64(1)
	for _, s := range t.Shape {
		n *= s
	}
	return n
}

// NumBytes returns the size of the tensor's elements packed contiguously.
func (t *Tensor) NumBytes() int64 { return t.NumElements() * int64(t.DType.Size()) }

// IsContiguous reports whether the elements are row-major and dense in the
// storage. Dimensions of size 1 may have any stride, as in torch.
func (t *Tensor) IsContiguous() bool {
	acc := int64(1)
	for d := len(t.Shape) - 1; d >= 0; d-- {
		if t.Shape[d] == 1 {
			continue
		}
		if t.Shape[d] == 0 {
			return true
		}
		if t.Stride[d] != acc {
			return false
		}
		acc *= t.Shape[d]
	}
	return true
}

// Validate checks that the tensor is well formed and that every element it
// views lies inside its storage. It uses overflow-checked arithmetic and is
// meant for tensors described by untrusted files.
func (t *Tensor) Validate() error {
	if !t.DType.Valid() {
		return fmt.Errorf("tensor: invalid dtype %d", uint8(t.DType))
	}
	if len(t.Stride) != len(t.Shape) {
		return fmt.Errorf("tensor: %d strides for %d dimensions", len(t.Stride), len(t.Shape))
	}
	if t.Offset < 0 {
		return fmt.Errorf("tensor: negative storage offset %d", t.Offset)
	}
	numel := uint64(1)
	for d, s := range t.Shape {
		if s < 0 {
			return fmt.Errorf("tensor: negative size %d in shape %v", s, t.Shape)
		}
		if t.Stride[d] < 0 {
			return fmt.Errorf("tensor: negative stride %d in strides %v", t.Stride[d], t.Stride)
		}
		hi, lo := bits.Mul64(numel, uint64(s))
		if hi != 0 || lo > MaxElements {
			return fmt.Errorf("tensor: shape %v has too many elements", t.Shape)
		}
		numel = lo
	}
	if t.Storage == nil {
		return fmt.Errorf("tensor: no storage")
	}
	if numel == 0 {
		return nil
	}
	// Highest element index reached, checked for overflow.
	last := uint64(t.Offset)
	for d, s := range t.Shape {
		hi, lo := bits.Mul64(uint64(s-1), uint64(t.Stride[d]))
		if hi != 0 || lo > MaxElements {
			return fmt.Errorf("tensor: view %v strides %v overflows", t.Shape, t.Stride)
		}
		last += lo
		if last > MaxElements {
			return fmt.Errorf("tensor: view %v strides %v offset %d overflows", t.Shape, t.Stride, t.Offset)
		}
	}
	need := (last + 1) * uint64(t.DType.Size())
	if need > uint64(t.Storage.Size()) {
		return fmt.Errorf("tensor: view %s%v strides %v offset %d needs %d bytes, storage %q has %d",
			t.DType, t.Shape, t.Stride, t.Offset, need, t.Storage.Key, t.Storage.Size())
	}
	return nil
}

// span returns the first and one-past-last byte of the storage that the
// tensor's elements touch. The tensor must be valid and non-empty.
func (t *Tensor) span() (lo, hi int64) {
	es := int64(t.DType.Size())
	last := t.Offset
	for d, s := range t.Shape {
		last += (s - 1) * t.Stride[d]
	}
	return t.Offset * es, (last + 1) * es
}

// WriteTo writes the tensor's elements to w as contiguous row-major
// little-endian bytes, NumBytes in all. Contiguous tensors stream in chunks
// of ChunkSize; a strided view holds at most its own size plus SpanSlack of
// storage in memory (see SpanSlack).
func (t *Tensor) WriteTo(w io.Writer) (int64, error) {
	if err := t.Validate(); err != nil {
		return 0, err
	}
	if t.NumElements() == 0 {
		return 0, nil
	}
	es := int64(t.DType.Size())
	swap := t.Storage.BigEndian && es > 1
	if t.IsContiguous() {
		return t.copyRange(w, t.Offset*es, t.NumBytes(), swap)
	}
	lo, hi := t.span()
	// A dense view (transposed, channels_last, expanded) covers about its
	// own size of storage: read that span once and gather from memory, so
	// peak memory is the tensor's size plus SpanSlack. Sparser views are
	// read run by run.
	if span := hi - lo; span <= t.NumBytes()+SpanSlack {
		buf := make([]byte, span)
		if _, err := t.Storage.ReadAt(buf, lo); err != nil {
			return 0, err
		}
		return t.gather(w, func(dst []byte, elem int64) error {
			copy(dst, buf[elem*es-lo:elem*es-lo+int64(len(dst))])
			return nil
		}, swap)
	}
	return t.gather(w, func(dst []byte, elem int64) error {
		_, err := t.Storage.ReadAt(dst, elem*es)
		return err
	}, swap)
}

// copyRange streams n contiguous bytes of the storage from byte off.
func (t *Tensor) copyRange(w io.Writer, off, n int64, swap bool) (int64, error) {
	var buf []byte
	if n >= ChunkSize {
		// Full chunks are recycled: hashing or writing a checkpoint streams
		// hundreds of tensors, and a fresh zeroed megabyte for each costs
		// as much as a tenth of the hashing itself.
		p := chunkPool.Get().(*[]byte)
		defer chunkPool.Put(p)
		buf = *p
	} else {
		buf = make([]byte, n)
	}
	var written int64
	for written < n {
		c := buf[:min(int64(len(buf)), n-written)]
		if _, err := t.Storage.ReadAt(c, off+written); err != nil {
			return written, err
		}
		if swap {
			swapBytes(c, t.DType.Size())
		}
		m, err := w.Write(c)
		written += int64(m)
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// gather walks the elements in row-major order. The innermost dimension is
// read as one run when its stride is 1; read fills dst from element elem.
func (t *Tensor) gather(w io.Writer, read func(dst []byte, elem int64) error, swap bool) (int64, error) {
	es := int64(t.DType.Size())
	nd := len(t.Shape)
	inner, innerStride := int64(1), int64(1)
	if nd > 0 {
		inner, innerStride = t.Shape[nd-1], t.Stride[nd-1]
	}
	out := make([]byte, 0, ChunkSize)
	var written int64
	flush := func() error {
		if swap {
			swapBytes(out, int(es))
		}
		m, err := w.Write(out)
		written += int64(m)
		out = out[:0]
		return err
	}
	idx := make([]int64, max(nd-1, 0))
	base := t.Offset
	for {
		if innerStride == 1 {
			// One run of inner elements, split to respect the chunk size.
			for done := int64(0); done < inner; {
				room := (int64(cap(out)) - int64(len(out))) / es
				if room == 0 {
					if err := flush(); err != nil {
						return written, err
					}
					continue
				}
				k := min(room, inner-done)
				dst := out[len(out) : int64(len(out))+k*es]
				if err := read(dst, base+done); err != nil {
					return written, err
				}
				out = out[:int64(len(out))+k*es]
				done += k
			}
		} else {
			for j := int64(0); j < inner; j++ {
				if int64(cap(out)-len(out)) < es {
					if err := flush(); err != nil {
						return written, err
					}
				}
				dst := out[len(out) : int64(len(out))+es]
				if err := read(dst, base+j*innerStride); err != nil {
					return written, err
				}
				out = out[:int64(len(out))+es]
			}
		}
		// Advance the odometer over the outer dimensions.
		d := nd - 2
		for ; d >= 0; d-- {
			idx[d]++
			base += t.Stride[d]
			if idx[d] < t.Shape[d] {
				break
			}
			base -= idx[d] * t.Stride[d]
			idx[d] = 0
		}
		if d < 0 {
			break
		}
	}
	if len(out) > 0 {
		if err := flush(); err != nil {
			return written, err
		}
	}
	return written, nil
}

func swapBytes(b []byte, size int) {
	switch size {
	case 2:
		for i := 0; i+1 < len(b); i += 2 {
			b[i], b[i+1] = b[i+1], b[i]
		}
	case 4:
		for i := 0; i+3 < len(b); i += 4 {
			binary.LittleEndian.PutUint32(b[i:], binary.BigEndian.Uint32(b[i:]))
		}
	case 8:
		for i := 0; i+7 < len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], binary.BigEndian.Uint64(b[i:]))
		}
	}
}

// sliceWriter appends to a preallocated slice.
type sliceWriter struct{ b []byte }

func (s *sliceWriter) Write(p []byte) (int, error) { s.b = append(s.b, p...); return len(p), nil }

// Bytes returns the tensor's elements as contiguous row-major little-endian
// bytes, in a new slice of NumBytes bytes.
func (t *Tensor) Bytes() ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	w := &sliceWriter{b: make([]byte, 0, t.NumBytes())}
	if _, err := t.WriteTo(w); err != nil {
		return nil, err
	}
	return w.b, nil
}

// SHA256 returns the SHA-256 of the tensor's contiguous little-endian bytes:
// a fingerprint of dtype-exact values that is the same whatever the file
// format, layout or byte order they were stored in.
func (t *Tensor) SHA256() ([32]byte, error) {
	var sum [32]byte
	h := sha256.New()
	if _, err := t.WriteTo(h); err != nil {
		return sum, err
	}
	h.Sum(sum[:0])
	return sum, nil
}

// Float32s returns the elements converted to float32 in row-major order:
// float16 and bfloat16 are widened exactly, float64 and integers are rounded
// to the nearest float32, bools become 0 or 1.
func (t *Tensor) Float32s() ([]float32, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	d := &decoder{dt: t.DType, dst: make([]float32, t.NumElements())}
	if _, err := t.WriteTo(d); err != nil {
		return nil, err
	}
	if d.n != len(d.dst) || len(d.carry) != 0 {
		return nil, fmt.Errorf("tensor: decoded %d of %d elements", d.n, len(d.dst))
	}
	return d.dst, nil
}

// decoder converts streamed little-endian elements to float32 as they
// arrive, so Float32s holds the result and one chunk, not a byte copy too.
type decoder struct {
	dt    DType
	dst   []float32
	n     int
	carry []byte // a partial element split across writes
}

func (d *decoder) Write(p []byte) (int, error) {
	total := len(p)
	es := d.dt.Size()
	if len(d.carry) > 0 {
		k := min(es-len(d.carry), len(p))
		d.carry = append(d.carry, p[:k]...)
		p = p[k:]
		if len(d.carry) < es {
			return total, nil
		}
		if err := d.decode(d.carry); err != nil {
			return 0, err
		}
		d.carry = d.carry[:0]
	}
	whole := len(p) / es * es
	if err := d.decode(p[:whole]); err != nil {
		return 0, err
	}
	d.carry = append(d.carry, p[whole:]...)
	return total, nil
}

func (d *decoder) decode(b []byte) error {
	n := len(b) / d.dt.Size()
	if d.n+n > len(d.dst) {
		return fmt.Errorf("tensor: more elements than the shape holds")
	}
	if _, err := DecodeFloat32s(d.dt, b, d.dst[d.n:d.n+n]); err != nil {
		return err
	}
	d.n += n
	return nil
}

// DecodeFloat32s converts little-endian elements of type dt in b to float32,
// writing them to dst, which must hold len(b)/dt.Size() values; it returns dst.
func DecodeFloat32s(dt DType, b []byte, dst []float32) ([]float32, error) {
	es := dt.Size()
	if es == 0 || len(b)%es != 0 || len(dst) < len(b)/es {
		return nil, fmt.Errorf("tensor: cannot decode %d bytes of %s into %d values", len(b), dt, len(dst))
	}
	n := len(b) / es
	le := binary.LittleEndian
	switch dt {
	case Float32:
		for i := range n {
			dst[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
	case Float64:
		for i := range n {
			dst[i] = float32(math.Float64frombits(le.Uint64(b[8*i:])))
		}
	case Float16:
		for i := range n {
			dst[i] = Float16ToFloat32(le.Uint16(b[2*i:]))
		}
	case BFloat16:
		for i := range n {
			dst[i] = BFloat16ToFloat32(le.Uint16(b[2*i:]))
		}
	case Int8:
		for i := range n {
			dst[i] = float32(int8(b[i]))
		}
	case Uint8:
		for i := range n {
			dst[i] = float32(b[i])
		}
	case Bool:
		for i := range n {
			if b[i] != 0 {
				dst[i] = 1
			} else {
				dst[i] = 0
			}
		}
	case Int16:
		for i := range n {
			dst[i] = float32(int16(le.Uint16(b[2*i:])))
		}
	case Int32:
		for i := range n {
			dst[i] = float32(int32(le.Uint32(b[4*i:])))
		}
	case Int64:
		for i := range n {
			dst[i] = float32(int64(le.Uint64(b[8*i:])))
		}
	}
	return dst[:n], nil
}
