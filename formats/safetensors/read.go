package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"sort"
	"unicode/utf8"

	"github.com/ckptkit/ckpt/tensor"
)

// MaxHeaderSize is the largest header accepted, in bytes, as in the Rust
// crate (100 MB).
const MaxHeaderSize = 100_000_000

// MetadataKey is the header key that holds the string-to-string metadata.
const MetadataKey = "__metadata__"

// Named is a tensor with its name ([tensor.Named]).
type Named = tensor.Named

// File is an opened safetensors file. Its tensors read their bytes from
// the file lazily; they stay valid until Close.
type File struct {
	// Name is the path (or name) the file was opened as, used in errors.
	Name string
	// Tensors lists the tensors in data-offset order.
	Tensors []Named
	// Metadata is the header's __metadata__ map (nil when absent).
	Metadata map[string]string
	// HeaderSize is N, the header length in bytes.
	HeaderSize int64
	// Skipped lists, in data-offset order, the tensors of a dtype package
	// tensor lacks but whose element size is known (U16, U32, U64, the
	// F8 types, C64): their offsets are validated like any other, they are
	// not in Tensors.
	Skipped []Skipped

	closer io.Closer
}

// Close releases the underlying file, if Open opened one.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	c := f.closer
	f.closer = nil
	return c.Close()
}

// Skipped is a tensor whose dtype has no tensor.DType.
type Skipped struct {
	Name  string
	DType string // the safetensors code, "U16"
	Shape []int64
}

// skippedSizes are the element sizes of the safetensors dtypes that
// package tensor lacks.
var skippedSizes = map[string]uint64{
	"U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "C64": 8,
}

// HeaderError reports an invalid safetensors header.
type HeaderError struct {
	File   string // the file's name, if known
	Tensor string // the tensor at fault, if any
	Msg    string
}

func (e *HeaderError) Error() string {
	s := "safetensors: "
	if e.File != "" {
		s += e.File + ": "
	}
	if e.Tensor != "" {
		s += fmt.Sprintf("tensor %q: ", e.Tensor)
	}
	return s + e.Msg
}

var dtypeCodes = map[string]tensor.DType{
	"F64": tensor.Float64, "F32": tensor.Float32, "F16": tensor.Float16, "BF16": tensor.BFloat16,
	"I64": tensor.Int64, "I32": tensor.Int32, "I16": tensor.Int16, "I8": tensor.Int8,
	"U8": tensor.Uint8, "BOOL": tensor.Bool,
}

// DTypeCode returns the safetensors code of dt ("F32", "BF16", ...).
func DTypeCode(dt tensor.DType) (string, error) {
	for c, d := range dtypeCodes {
		if d == dt {
			return c, nil
		}
	}
	return "", fmt.Errorf("safetensors: no code for dtype %s", dt)
}

// Open opens the safetensors file at path and reads its header.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	sf, err := Read(f, st.Size(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	sf.closer = f
	return sf, nil
}

// Read reads and validates the header of the size-byte safetensors file r.
// name is used in errors. The returned tensors read from r.
func Read(r io.ReaderAt, size int64, name string) (*File, error) {
	fail := func(tensorName, format string, args ...any) error {
		return &HeaderError{File: name, Tensor: tensorName, Msg: fmt.Sprintf(format, args...)}
	}
	if size < 8 {
		return nil, fail("", "file of %d bytes is shorter than the 8-byte header length", size)
	}
	var pre [8]byte
	if _, err := r.ReadAt(pre[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", name, err)
	}
	n := binary.LittleEndian.Uint64(pre[:])
	if n > MaxHeaderSize {
		return nil, fail("", "header length %d exceeds the %d-byte limit", n, MaxHeaderSize)
	}
	if int64(n) > size-8 {
		return nil, fail("", "header length %d exceeds the %d bytes after it", n, size-8)
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, fmt.Errorf("safetensors: %s: reading header: %w", name, err)
	}
	infos, meta, err := parseHeader(hdr)
	if err != nil {
		if he, ok := err.(*HeaderError); ok {
			he.File = name
		}
		return nil, err
	}
	dataStart := 8 + int64(n)
	end, err := validate(infos)
	if err != nil {
		err.(*HeaderError).File = name
		return nil, err
	}
	if end != uint64(size-dataStart) {
		return nil, fail("", "tensors end at data byte %d but the file has %d data bytes (incomplete or trailing data)", end, size-dataStart)
	}
	f := &File{Name: name, Metadata: meta, HeaderSize: int64(n), Tensors: make([]Named, 0, len(infos))}
	for _, in := range infos {
		if in.code != "" {
			f.Skipped = append(f.Skipped, Skipped{in.name, in.code, in.shape})
			continue
		}
		st := tensor.NewStorage(r, dataStart+int64(in.begin), int64(in.end-in.begin))
		st.Key = in.name
		f.Tensors = append(f.Tensors, Named{Name: in.name, Tensor: tensor.New(in.dtype, in.shape, st)})
	}
	return f, nil
}

type info struct {
	name       string
	dtype      tensor.DType
	code       string // a dtype of skippedSizes, or ""
	shape      []int64
	begin, end uint64
}

// elemSize is the size of one element.
func (in *info) elemSize() uint64 {
	if in.code != "" {
		return skippedSizes[in.code]
	}
	return uint64(in.dtype.Size())
}

// rawInfo is a header entry as JSON has it.
type rawInfo struct {
	DType       *string  `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets []uint64 `json:"data_offsets"`
}

// decodeInfo decodes one tensor entry as the Rust crate's serde derive
// does: field names match exactly (encoding/json would also match "DType"),
// a field given twice is an error (encoding/json keeps the last), unknown
// fields are ignored.
func decodeInfo(dec *json.Decoder, ri *rawInfo) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("got %v, want a JSON object", tok)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		k := tok.(string)
		if seen[k] {
			return fmt.Errorf("field %q appears twice", k)
		}
		seen[k] = true
		var dst any
		switch k {
		case "dtype":
			dst = &ri.DType
		case "shape":
			dst = &ri.Shape
		case "data_offsets":
			dst = &ri.DataOffsets
		default:
			var skip json.RawMessage
			dst = &skip
		}
		if err := dec.Decode(dst); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				te.Field = k
			}
			return err
		}
	}
	_, err = dec.Token()
	return err
}

// loneSurrogate returns the offset of a \uD800-\uDFFF escape in a JSON
// string that is not a high surrogate followed by a low one, or -1.
func loneSurrogate(b []byte) int {
	hex := func(i int) (rune, bool) {
		if i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
			return 0, false
		}
		var r rune
		for _, c := range b[i+2 : i+6] {
			switch {
			case c >= '0' && c <= '9':
				r = r<<4 | rune(c-'0')
			case c >= 'a' && c <= 'f':
				r = r<<4 | rune(c-'a'+10)
			case c >= 'A' && c <= 'F':
				r = r<<4 | rune(c-'A'+10)
			default:
				return 0, false
			}
		}
		return r, true
	}
	in := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case !in:
			in = c == '"'
		case c == '"':
			in = false
		case c == '\\':
			r, ok := hex(i)
			if !ok {
				i++ // a two-byte escape
				continue
			}
			switch {
			case r >= 0xDC00 && r <= 0xDFFF:
				return i
			case r >= 0xD800 && r <= 0xDBFF:
				lo, ok := hex(i + 6)
				if !ok || lo < 0xDC00 || lo > 0xDFFF {
					return i
				}
				i += 11
			default:
				i += 5
			}
		}
	}
	return -1
}

// parseHeader decodes the JSON header, keeping the file's key order and
// refusing duplicate keys.
func parseHeader(hdr []byte) ([]info, map[string]string, error) {
	fail := func(tensorName, format string, args ...any) error {
		return &HeaderError{Tensor: tensorName, Msg: fmt.Sprintf(format, args...)}
	}
	if !utf8.Valid(hdr) {
		return nil, nil, fail("", "header is not valid UTF-8")
	}
	if off := loneSurrogate(hdr); off >= 0 {
		return nil, nil, fail("", "lone surrogate escape at header byte %d (the Rust crate refuses it, Go's JSON would read U+FFFD)", off)
	}
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, nil, fail("", "header does not start with '{'")
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return nil, nil, fail("", "invalid JSON: %v", err)
	}
	seen := map[string]bool{}
	var infos []info
	var meta map[string]string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fail("", "invalid JSON: %v", err)
		}
		key := tok.(string) // object keys are strings once Token succeeded
		if seen[key] {
			return nil, nil, fail(key, "name appears twice in the header")
		}
		seen[key] = true
		if key == MetadataKey {
			var raw map[string]any
			if err := dec.Decode(&raw); err != nil {
				return nil, nil, fail("", "__metadata__: invalid JSON object: %v", err)
			}
			if raw == nil {
				continue // "__metadata__": null, as serde accepts for an Option
			}
			meta = make(map[string]string, len(raw))
			for k, v := range raw {
				s, ok := v.(string)
				if !ok {
					return nil, nil, fail("", "__metadata__[%q] is not a string", k)
				}
				meta[k] = s
			}
			continue
		}
		var ri rawInfo
		if err := decodeInfo(dec, &ri); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				want := map[string]string{"dtype": "a string", "shape": "a list of non-negative integers", "data_offsets": "a list of two non-negative integers"}[te.Field]
				if want == "" {
					want = "an object"
				}
				return nil, nil, fail(key, "invalid entry: %q holds a JSON %s, want %s", te.Field, te.Value, want)
			}
			return nil, nil, fail(key, "invalid entry: %v", err)
		}
		if ri.DType == nil || ri.Shape == nil || ri.DataOffsets == nil {
			return nil, nil, fail(key, "entry needs dtype, shape and data_offsets")
		}
		dt, ok := dtypeCodes[*ri.DType]
		code := ""
		if _, sized := skippedSizes[*ri.DType]; !ok && sized {
			code = *ri.DType
		} else if !ok {
			return nil, nil, fail(key, "unsupported dtype %q", *ri.DType)
		}
		if len(ri.DataOffsets) != 2 {
			return nil, nil, fail(key, "data_offsets has %d values, want 2", len(ri.DataOffsets))
		}
		for _, d := range ri.Shape {
			if d < 0 {
				return nil, nil, fail(key, "negative dimension in shape %v", ri.Shape)
			}
		}
		infos = append(infos, info{name: key, dtype: dt, code: code, shape: ri.Shape, begin: ri.DataOffsets[0], end: ri.DataOffsets[1]})
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, fail("", "invalid JSON: %v", err)
	}
	// Only whitespace (the writer's space padding) may follow the object.
	if off := dec.InputOffset(); len(bytes.TrimLeft(hdr[off:], " \t\r\n")) != 0 {
		return nil, nil, fail("", "unexpected bytes after the JSON object at header byte %d", off)
	}
	return infos, meta, nil
}

// validate sorts infos by offset and checks that they tile the data buffer;
// it returns the buffer's end.
func validate(infos []info) (uint64, error) {
	sort.SliceStable(infos, func(i, j int) bool {
		if infos[i].begin != infos[j].begin {
			return infos[i].begin < infos[j].begin
		}
		return infos[i].end < infos[j].end
	})
	var pos uint64
	for _, in := range infos {
		if in.begin != pos || in.end < in.begin {
			return 0, &HeaderError{Tensor: in.name, Msg: fmt.Sprintf("data_offsets [%d, %d] do not start at the previous tensor's end %d (gap or overlap)", in.begin, in.end, pos)}
		}
		n := in.elemSize()
		for _, d := range in.shape {
			hi, lo := bits.Mul64(n, uint64(d))
			if hi != 0 || lo > 1<<62 {
				return 0, &HeaderError{Tensor: in.name, Msg: fmt.Sprintf("shape %v overflows", in.shape)}
			}
			n = lo
		}
		if in.end-in.begin != n {
			dt := in.dtype.String()
			if in.code != "" {
				dt = in.code
			}
			return 0, &HeaderError{Tensor: in.name, Msg: fmt.Sprintf("data_offsets [%d, %d] hold %d bytes, %s%v needs %d", in.begin, in.end, in.end-in.begin, dt, in.shape, n)}
		}
		pos = in.end
	}
	if pos > 1<<62 {
		return 0, &HeaderError{Msg: "data buffer too large"}
	}
	return pos, nil
}
