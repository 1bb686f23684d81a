package tensor

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// f16Value computes a binary16 value from its fields with float64 arithmetic,
// independently of Float16ToFloat32's bit manipulation.
func f16Value(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	man := float64(h & 0x3ff)
	switch exp {
	case 0x1f:
		if man != 0 {
			return math.NaN()
		}
		return math.Inf(int(sign))
	case 0:
		return sign * math.Ldexp(man, -24)
	}
	return sign * math.Ldexp(1+man/1024, exp-15)
}

func TestFloat16ToFloat32Exhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		got := Float16ToFloat32(h)
		want := f16Value(h)
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) {
				t.Fatalf("Float16ToFloat32(%#04x) = %v, want NaN", h, got)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Fatalf("Float16ToFloat32(%#04x) = %v, want %v", h, got, want)
		}
	}
}

func TestFloat16RoundTripExhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := Float16ToFloat32(h)
		got := Float32ToFloat16(f)
		if math.IsNaN(float64(f)) {
			if got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
				t.Fatalf("NaN %#04x became %#04x", h, got)
			}
			continue
		}
		if got != h {
			t.Fatalf("Float32ToFloat16(Float16ToFloat32(%#04x)) = %#04x", h, got)
		}
	}
}

// TestFloat32ToFloat16Nearest checks rounding on random float32 values: the
// result must be a nearest float16 neighbour, ties to the even mantissa.
func TestFloat32ToFloat16Nearest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const maxHalf = 65504.0
	for n := 0; n < 200000; n++ {
		// Spread exponents over the float16 range and a little beyond.
		f := float32(math.Ldexp(r.Float64()*2-1, r.IntN(44)-26))
		got := Float32ToFloat16(f)
		gv := f16Value(got)
		if math.Abs(float64(f)) >= maxHalf+16 { // beyond the rounding midpoint to Inf
			if !math.IsInf(gv, 0) {
				t.Fatalf("Float32ToFloat16(%g) = %g, want Inf", f, gv)
			}
			continue
		}
		// Neighbours of the result in the float16 grid.
		up, down := f16Value(got+1), f16Value(got-1)
		d := math.Abs(gv - float64(f))
		for _, nb := range []float64{up, down} {
			if math.IsNaN(nb) || math.IsInf(nb, 0) {
				continue
			}
			dn := math.Abs(nb - float64(f))
			if dn < d || (dn == d && got&1 == 1) {
				t.Fatalf("Float32ToFloat16(%g) = %g (%#04x), neighbour %g is nearer or even", f, gv, got, nb)
			}
		}
	}
}

func TestBFloat16(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		b := uint16(i)
		f := BFloat16ToFloat32(b)
		if math.Float32bits(f)>>16 != uint32(b) || math.Float32bits(f)&0xffff != 0 {
			t.Fatalf("BFloat16ToFloat32(%#04x) = %#08x", b, math.Float32bits(f))
		}
		if math.IsNaN(float64(f)) {
			if g := Float32ToBFloat16(f); !math.IsNaN(float64(BFloat16ToFloat32(g))) {
				t.Fatalf("NaN %#04x became %#04x", b, g)
			}
			continue
		}
		if g := Float32ToBFloat16(f); g != b {
			t.Fatalf("Float32ToBFloat16(BFloat16ToFloat32(%#04x)) = %#04x", b, g)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for n := 0; n < 100000; n++ {
		f := math.Float32frombits(r.Uint32() &^ 0x40000000) // keep clear of Inf/NaN exponents
		got := Float32ToBFloat16(f)
		gv := float64(BFloat16ToFloat32(got))
		d := math.Abs(gv - float64(f))
		for _, nb := range []uint16{got + 1, got - 1} {
			nv := float64(BFloat16ToFloat32(nb))
			if math.IsNaN(nv) || math.IsInf(nv, 0) || math.Signbit(nv) != math.Signbit(gv) {
				continue
			}
			dn := math.Abs(nv - float64(f))
			if dn < d || (dn == d && got&1 == 1) {
				t.Fatalf("Float32ToBFloat16(%g) = %g, neighbour %g is nearer or even", f, gv, nv)
			}
		}
	}
}

// naiveBytes reads each element by its multi-index, the definition of a view.
func naiveBytes(t *testing.T, x *Tensor) []byte {
	t.Helper()
	es := int64(x.DType.Size())
	var out []byte
	idx := make([]int64, len(x.Shape))
	n := x.NumElements()
	for k := int64(0); k < n; k++ {
		rem := k
		for d := len(x.Shape) - 1; d >= 0; d-- {
			idx[d] = rem % x.Shape[d]
			rem /= x.Shape[d]
		}
		off := x.Offset
		for d := range idx {
			off += idx[d] * x.Stride[d]
		}
		e := make([]byte, es)
		if _, err := x.Storage.ReadAt(e, off*es); err != nil {
			t.Fatal(err)
		}
		if x.Storage.BigEndian {
			for i, j := 0, len(e)-1; i < j; i, j = i+1, j-1 {
				e[i], e[j] = e[j], e[i]
			}
		}
		out = append(out, e...)
	}
	return out
}

func TestViews(t *testing.T) {
	raw := make([]byte, 4*4096)
	for i := range raw {
		raw[i] = byte(i*7 + i>>8)
	}
	big := make([]byte, 4*(ChunkSize/4)*3)
	for i := range big {
		big[i] = byte(i*13 + i>>10)
	}
	s := NewStorageBytes(raw)
	sb := NewStorageBytes(big)
	cases := []struct {
		name string
		t    *Tensor
	}{
		{"contiguous", &Tensor{DType: Float32, Shape: []int64{4, 8}, Stride: []int64{8, 1}, Storage: s}},
		{"offset slice", &Tensor{DType: Float32, Shape: []int64{3, 5}, Stride: []int64{5, 1}, Offset: 17, Storage: s}},
		{"transposed", &Tensor{DType: Float32, Shape: []int64{8, 4}, Stride: []int64{1, 8}, Storage: s}},
		{"channels_last", &Tensor{DType: Float32, Shape: []int64{2, 3, 4, 5}, Stride: []int64{60, 1, 15, 3}, Storage: s}},
		{"expanded stride 0", &Tensor{DType: Float32, Shape: []int64{6, 7}, Stride: []int64{0, 1}, Offset: 3, Storage: s}},
		{"all stride 0", &Tensor{DType: Int64, Shape: []int64{3, 3, 3}, Stride: []int64{0, 0, 0}, Offset: 5, Storage: s}},
		{"0-d", &Tensor{DType: Float64, Shape: []int64{}, Stride: []int64{}, Offset: 9, Storage: s}},
		{"zero size", &Tensor{DType: Float32, Shape: []int64{0, 5}, Stride: []int64{5, 1}, Storage: s}},
		{"sparse step view", &Tensor{DType: Int16, Shape: []int64{3, 4}, Stride: []int64{1000, 300}, Storage: s}},
		{"bool", &Tensor{DType: Bool, Shape: []int64{10}, Stride: []int64{3}, Storage: s}},
		{"big-endian float32 transposed", &Tensor{DType: Float32, Shape: []int64{5, 6}, Stride: []int64{1, 5}, Storage: &Storage{r: bytes.NewReader(raw), size: int64(len(raw)), BigEndian: true}}},
		{"big-endian contiguous int16", &Tensor{DType: Int16, Shape: []int64{100}, Stride: []int64{1}, Storage: &Storage{r: bytes.NewReader(raw), size: int64(len(raw)), BigEndian: true}}},
		{"contiguous larger than a chunk", &Tensor{DType: Float32, Shape: []int64{int64(len(big)) / 4}, Stride: []int64{1}, Storage: sb}},
		{"transposed larger than a chunk", &Tensor{DType: Float32, Shape: []int64{3, int64(len(big)) / 12}, Stride: []int64{1, 3}, Storage: sb}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.t.Validate(); err != nil {
				t.Fatal(err)
			}
			got, err := c.t.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			want := naiveBytes(t, c.t)
			if !bytes.Equal(got, want) {
				t.Fatalf("bytes differ: got %d bytes, want %d", len(got), len(want))
			}
			if int64(len(got)) != c.t.NumBytes() {
				t.Fatalf("got %d bytes, want NumBytes %d", len(got), c.t.NumBytes())
			}
			sum, err := c.t.SHA256()
			if err != nil {
				t.Fatal(err)
			}
			if sum != sha256.Sum256(want) {
				t.Fatalf("SHA256 differs from hash of the naive bytes")
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	s := NewStorageBytes(make([]byte, 64))
	cases := []struct {
		name, want string
		t          *Tensor
	}{
		{"out of bounds", "needs 68 bytes", &Tensor{DType: Float32, Shape: []int64{17}, Stride: []int64{1}, Storage: s}},
		{"offset out of bounds", "needs", &Tensor{DType: Float32, Shape: []int64{2}, Stride: []int64{1}, Offset: 15, Storage: s}},
		{"negative size", "negative size", &Tensor{DType: Float32, Shape: []int64{-1}, Stride: []int64{1}, Storage: s}},
		{"negative stride", "negative stride", &Tensor{DType: Float32, Shape: []int64{2}, Stride: []int64{-1}, Storage: s}},
		{"negative offset", "negative storage offset", &Tensor{DType: Float32, Shape: []int64{2}, Stride: []int64{1}, Offset: -4, Storage: s}},
		{"huge shape", "too many elements", &Tensor{DType: Float32, Shape: []int64{1 << 40, 1 << 40}, Stride: []int64{1, 1}, Storage: s}},
		{"stride overflow", "overflows", &Tensor{DType: Float32, Shape: []int64{3}, Stride: []int64{math.MaxInt64 / 2}, Storage: s}},
		{"stride rank", "strides for", &Tensor{DType: Float32, Shape: []int64{2, 2}, Stride: []int64{1}, Storage: s}},
		{"dtype", "invalid dtype", &Tensor{DType: 99, Shape: []int64{2}, Stride: []int64{1}, Storage: s}},
		{"no storage", "no storage", &Tensor{DType: Float32, Shape: []int64{2}, Stride: []int64{1}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.t.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, c.want)
			}
			if _, err := c.t.Bytes(); err == nil {
				t.Fatalf("Bytes() succeeded on an invalid tensor")
			}
		})
	}
}

func TestStorageReadAtBounds(t *testing.T) {
	// The reader has more bytes than the storage: reads must stop at the storage.
	s := NewStorage(bytes.NewReader(make([]byte, 100)), 10, 20)
	if _, err := s.ReadAt(make([]byte, 20), 0); err != nil {
		t.Fatalf("full read: %v", err)
	}
	if _, err := s.ReadAt(make([]byte, 1), 20); err == nil {
		t.Fatal("read past the storage end succeeded")
	}
	short := NewStorage(bytes.NewReader(make([]byte, 15)), 10, 20)
	if _, err := short.ReadAt(make([]byte, 20), 0); err == nil {
		t.Fatal("read past the reader end succeeded")
	}
}

func TestDecodeFloat32s(t *testing.T) {
	le := binary.LittleEndian
	cases := []struct {
		dt   DType
		enc  func(b []byte, v float64)
		vals []float64
	}{
		{Float64, func(b []byte, v float64) { le.PutUint64(b, math.Float64bits(v)) }, []float64{0, -1.5, 1e30}},
		{Int64, func(b []byte, v float64) { le.PutUint64(b, uint64(int64(v))) }, []float64{0, -7, 1 << 40}},
		{Int32, func(b []byte, v float64) { le.PutUint32(b, uint32(int32(v))) }, []float64{0, -7, 123456}},
		{Int16, func(b []byte, v float64) { le.PutUint16(b, uint16(int16(v))) }, []float64{0, -7, 32000}},
		{Int8, func(b []byte, v float64) { b[0] = byte(int8(v)) }, []float64{0, -7, 127}},
		{Uint8, func(b []byte, v float64) { b[0] = byte(v) }, []float64{0, 7, 255}},
		{Bool, func(b []byte, v float64) { b[0] = byte(v) }, []float64{0, 1, 1}},
	}
	for _, c := range cases {
		t.Run(c.dt.String(), func(t *testing.T) {
			es := c.dt.Size()
			b := make([]byte, es*len(c.vals))
			for i, v := range c.vals {
				c.enc(b[i*es:], v)
			}
			x, err := FromBytes(c.dt, []int64{int64(len(c.vals))}, b)
			if err != nil {
				t.Fatal(err)
			}
			got, err := x.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range c.vals {
				if got[i] != float32(v) {
					t.Errorf("element %d: got %v, want %v", i, got[i], float32(v))
				}
			}
		})
	}
}

func TestParseDType(t *testing.T) {
	for _, d := range DTypes {
		for _, name := range []string{d.String(), "torch." + d.String()} {
			got, err := ParseDType(name)
			if err != nil || got != d {
				t.Errorf("ParseDType(%q) = %v, %v; want %v", name, got, err, d)
			}
		}
	}
	if _, err := ParseDType("complex64"); err == nil {
		t.Error("ParseDType(complex64) succeeded")
	}
}

func BenchmarkSHA256Contiguous(b *testing.B) {
	buf := make([]byte, 64<<20)
	x, _ := FromBytes(Float32, []int64{int64(len(buf) / 4)}, buf)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := x.SHA256(); err != nil {
			b.Fatal(err)
		}
	}
}

// synthReader serves a large virtual storage whose byte i is a function of i,
// without allocating it.
type synthReader struct{ size int64 }

func (r synthReader) ReadAt(p []byte, off int64) (int, error) {
	for i := range p {
		p[i] = byte((off + int64(i)) * 31 / 7)
	}
	if off+int64(len(p)) > r.size {
		return int(max(0, r.size-off)), io.EOF
	}
	return len(p), nil
}

// TestSparseViewReadsRunByRun covers views spread over much more storage than
// their size plus SpanSlack: they are read run by run, never as one span.
func TestSparseViewReadsRunByRun(t *testing.T) {
	const size = 1 << 30
	s := NewStorage(synthReader{size}, 0, size)
	for _, x := range []*Tensor{
		{DType: Float32, Shape: []int64{4, 3}, Stride: []int64{50 << 20, 1}, Storage: s},
		{DType: Int16, Shape: []int64{5, 2}, Stride: []int64{1, 90 << 20}, Offset: 7, Storage: s},
	} {
		lo, hi := x.span()
		if hi-lo <= x.NumBytes()+SpanSlack {
			t.Fatalf("view spans %d bytes: not sparse enough to test the run-by-run path", hi-lo)
		}
		got, err := x.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if want := naiveBytes(t, x); !bytes.Equal(got, want) {
			t.Fatalf("%v strides %v: bytes differ from the naive walk", x.Shape, x.Stride)
		}
	}
}

// TestFloat32sStreams checks the streaming decoder against decoding the
// whole byte copy at once, for every dtype and for views that cross chunks.
func TestFloat32sStreams(t *testing.T) {
	raw := make([]byte, 3*ChunkSize+6)
	for i := range raw {
		raw[i] = byte(i*37 + i>>9)
	}
	s := NewStorageBytes(raw)
	for _, dt := range DTypes {
		n := int64(len(raw)/dt.Size()) - 1
		views := []*Tensor{
			{DType: dt, Shape: []int64{n}, Stride: []int64{1}, Offset: 1, Storage: s},
			{DType: dt, Shape: []int64{2, n / 2}, Stride: []int64{1, 2}, Storage: s},
		}
		for _, x := range views {
			b, err := x.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			want, _ := DecodeFloat32s(dt, b, make([]float32, len(b)/dt.Size()))
			got, err := x.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%s %v: got %d values, want %d", dt, x.Stride, len(got), len(want))
			}
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s %v: value %d is %v, want %v", dt, x.Stride, i, got[i], want[i])
				}
			}
		}
	}
	d := &decoder{dt: Float32, dst: make([]float32, 2)}
	for _, p := range [][]byte{{0, 0}, {0x80, 0x3f, 0, 0}, {0, 0x40}} { // 1.0 and 2.0 split unevenly
		d.Write(p)
	}
	if d.n != 2 || d.dst[0] != 1 || d.dst[1] != 2 {
		t.Fatalf("split writes decoded %v (%d values), want [1 2]", d.dst, d.n)
	}
}
