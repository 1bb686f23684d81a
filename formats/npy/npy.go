// Package npy reads and writes NumPy's .npy files, the array format `ckpt run`
// takes inputs from and writes outputs to.
//
// Layout (format versions 1.0, 2.0 and 3.0):
//
//	offset 0   6 bytes   magic "\x93NUMPY"
//	offset 6   1 byte    major version (1, 2 or 3)
//	offset 7   1 byte    minor version (0)
//	offset 8   2 bytes   header length HLEN, little-endian (4 bytes in 2.0 and 3.0)
//	then       HLEN      a Python dict literal, ASCII (UTF-8 in 3.0), padded with
//	                     spaces and ended by '\n':
//	                     {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
//	then                 the elements, C order or Fortran order as the header says
//
// Reading is lazy: the array becomes a tensor.Tensor over the file's bytes,
// with Fortran order expressed as strides and big-endian data marked on its
// storage, so no element is read or converted until asked for. Only the
// dtypes of package tensor are accepted; object arrays (which would need
// pickle) and structured dtypes are refused. The header is limited to
// MaxHeaderSize bytes.
package npy

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/ckptkit/ckpt/tensor"
)

// MaxHeaderSize bounds the header dictionary a reader accepts.
const MaxHeaderSize = 1 << 16

// MaxDims bounds the number of dimensions, as NumPy does (32 in NumPy < 2,
// 64 since).
const MaxDims = 64

const magic = "\x93NUMPY"

var descrs = map[string]tensor.DType{
	"f4": tensor.Float32, "f8": tensor.Float64, "f2": tensor.Float16,
	"i1": tensor.Int8, "i2": tensor.Int16, "i4": tensor.Int32, "i8": tensor.Int64,
	"u1": tensor.Uint8, "b1": tensor.Bool,
}

// Read decodes the .npy array held in the first size bytes of r.
func Read(r io.ReaderAt, size int64) (*tensor.Tensor, error) {
	var pre [12]byte
	if size < 10 {
		return nil, fmt.Errorf("npy: file of %d bytes is too short", size)
	}
	n := min(int64(len(pre)), size)
	if _, err := r.ReadAt(pre[:n], 0); err != nil && err != io.EOF {
		return nil, fmt.Errorf("npy: %w", err)
	}
	if string(pre[:6]) != magic {
		return nil, fmt.Errorf("npy: not a .npy file (no \\x93NUMPY magic)")
	}
	var hlen, start int64
	switch pre[6] {
	case 1:
		hlen, start = int64(binary.LittleEndian.Uint16(pre[8:])), 10
	case 2, 3:
		if n < 12 {
			return nil, fmt.Errorf("npy: file of %d bytes is too short", size)
		}
		hlen, start = int64(binary.LittleEndian.Uint32(pre[8:])), 12
	default:
		return nil, fmt.Errorf("npy: unsupported format version %d.%d", pre[6], pre[7])
	}
	if hlen > MaxHeaderSize {
		return nil, fmt.Errorf("npy: header of %d bytes exceeds the limit of %d", hlen, MaxHeaderSize)
	}
	if hlen > size-start {
		return nil, fmt.Errorf("npy: header of %d bytes runs past the end of the %d-byte file", hlen, size)
	}
	hdr := make([]byte, hlen)
	if _, err := r.ReadAt(hdr, start); err != nil && err != io.EOF {
		return nil, fmt.Errorf("npy: %w", err)
	}
	h, err := parseHeader(string(hdr))
	if err != nil {
		return nil, err
	}
	dataOff := start + hlen
	st := tensor.NewStorage(r, dataOff, size-dataOff)
	st.Key = "npy"
	st.BigEndian = h.bigEndian
	t := tensor.New(h.dtype, h.shape, st)
	if h.fortran {
		// Column-major: the first index varies fastest.
		acc := int64(1)
		for d := range h.shape {
			t.Stride[d] = acc
			acc *= max(h.shape[d], 1)
		}
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	if want := t.NumBytes(); want != size-dataOff {
		return nil, fmt.Errorf("npy: %s%v needs %d bytes of data, file has %d", h.dtype, h.shape, want, size-dataOff)
	}
	return t, nil
}

type header struct {
	dtype     tensor.DType
	bigEndian bool
	fortran   bool
	shape     []int64
}

// parseHeader reads the dict literal NumPy writes. It accepts exactly the
// three keys, in any order, with Python literal syntax for their values.
func parseHeader(s string) (*header, error) {
	p := &lit{s: strings.TrimRight(s, " \n\x00")}
	h := &header{}
	seen := map[string]bool{}
	if !p.eat('{') {
		return nil, p.errf("header does not start with '{'")
	}
	for {
		if p.eat('}') {
			break
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		if seen[key] {
			return nil, p.errf("duplicate key %q", key)
		}
		seen[key] = true
		if !p.eat(':') {
			return nil, p.errf("expected ':' after %q", key)
		}
		switch key {
		case "descr":
			d, err := p.str()
			if err != nil {
				return nil, err
			}
			if len(d) != 3 || !strings.ContainsRune("<>|=", rune(d[0])) {
				return nil, p.errf("unsupported descr %q", d)
			}
			dt, ok := descrs[d[1:]]
			if !ok {
				return nil, p.errf("unsupported descr %q (want one of f2 f4 f8 i1 i2 i4 i8 u1 b1)", d)
			}
			h.dtype, h.bigEndian = dt, d[0] == '>' && dt.Size() > 1
		case "fortran_order":
			switch {
			case p.word("True"):
				h.fortran = true
			case p.word("False"):
			default:
				return nil, p.errf("fortran_order is not True or False")
			}
		case "shape":
			if h.shape, err = p.tuple(); err != nil {
				return nil, err
			}
		default:
			return nil, p.errf("unexpected key %q", key)
		}
		if !p.eat(',') {
			if !p.eat('}') {
				return nil, p.errf("expected ',' or '}'")
			}
			break
		}
	}
	if p.skip(); p.i != len(p.s) {
		return nil, p.errf("trailing bytes after the header dict")
	}
	if !seen["descr"] || !seen["fortran_order"] || !seen["shape"] {
		return nil, fmt.Errorf("npy: header lacks descr, fortran_order or shape")
	}
	return h, nil
}

// lit is a cursor over a Python literal.
type lit struct {
	s string
	i int
}

func (p *lit) errf(format string, args ...any) error {
	return fmt.Errorf("npy: header at byte %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *lit) skip() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\n') {
		p.i++
	}
}

func (p *lit) eat(c byte) bool {
	p.skip()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *lit) word(w string) bool {
	p.skip()
	if strings.HasPrefix(p.s[p.i:], w) {
		p.i += len(w)
		return true
	}
	return false
}

func (p *lit) str() (string, error) {
	p.skip()
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", p.errf("expected a string")
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", p.errf("unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+end]
	p.i += end + 2
	return v, nil
}

func (p *lit) tuple() ([]int64, error) {
	if !p.eat('(') {
		return nil, p.errf("shape is not a tuple")
	}
	shape := []int64{}
	for {
		if p.eat(')') {
			return shape, nil
		}
		p.skip()
		j := p.i
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		v, err := strconv.ParseInt(p.s[p.i:j], 10, 64)
		if err != nil || j-p.i > 18 {
			return nil, p.errf("bad dimension %q", p.s[p.i:j])
		}
		p.i = j
		p.skip()
		if p.i < len(p.s) && p.s[p.i] == 'L' { // Python 2 long literal
			p.i++
		}
		shape = append(shape, v)
		if len(shape) > MaxDims {
			return nil, p.errf("more than %d dimensions", MaxDims)
		}
		if !p.eat(',') {
			if !p.eat(')') {
				return nil, p.errf("expected ',' or ')' in shape")
			}
			return shape, nil
		}
	}
}

// Open reads the .npy file at path. The returned tensor reads its elements
// from the file, which stays open until close is called.
func Open(path string) (t *tensor.Tensor, close func() error, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("npy: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("npy: %w", err)
	}
	t, err = Read(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, f.Close, nil
}

var npyDescr = map[tensor.DType]string{
	tensor.Float32: "<f4", tensor.Float64: "<f8", tensor.Float16: "<f2",
	tensor.Int8: "|i1", tensor.Int16: "<i2", tensor.Int32: "<i4", tensor.Int64: "<i8",
	tensor.Uint8: "|u1", tensor.Bool: "|b1",
}

// Write writes t as a version 1.0 .npy array in C order, little-endian, as
// numpy.save does. bfloat16, which NumPy lacks, is refused.
func Write(w io.Writer, t *tensor.Tensor) error {
	d, ok := npyDescr[t.DType]
	if !ok {
		return fmt.Errorf("npy: NumPy has no %s dtype; convert it first", t.DType)
	}
	var shape strings.Builder
	shape.WriteByte('(')
	for i, s := range t.Shape {
		if i > 0 {
			shape.WriteString(", ")
		}
		shape.WriteString(strconv.FormatInt(s, 10))
	}
	if len(t.Shape) == 1 {
		shape.WriteByte(',')
	}
	shape.WriteByte(')')
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", d, shape.String())
	// Pad so the data starts on a 64-byte boundary, ending with '\n'.
	total := 10 + len(dict) + 1
	pad := (64 - total%64) % 64
	hdr := dict + strings.Repeat(" ", pad) + "\n"
	if len(hdr) > 65535 {
		return fmt.Errorf("npy: header of %d bytes is too long for format 1.0", len(hdr))
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	bw.WriteString(magic)
	bw.Write([]byte{1, 0})
	binary.Write(bw, binary.LittleEndian, uint16(len(hdr)))
	bw.WriteString(hdr)
	if _, err := t.WriteTo(bw); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	return nil
}
