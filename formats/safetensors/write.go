package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/ckptkit/ckpt/tensor"
)

// Header returns the first bytes of a safetensors file holding tensors in
// the given order with metadata: the 8-byte length and the JSON header,
// space-padded to a multiple of 8 bytes. Metadata keys are written sorted.
// It reads no tensor data.
func Header(tensors []Named, metadata map[string]string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("{")
	first := true
	sep := func() {
		if !first {
			b.WriteByte(',')
		}
		first = false
	}
	if len(metadata) > 0 {
		sep()
		writeJSONString(&b, MetadataKey)
		b.WriteString(":{")
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if !utf8.ValidString(k) || !utf8.ValidString(metadata[k]) {
				return nil, fmt.Errorf("safetensors: metadata %q: not valid UTF-8, which the JSON header cannot hold unchanged", k)
			}
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, k)
			b.WriteByte(':')
			writeJSONString(&b, metadata[k])
		}
		b.WriteByte('}')
	}
	seen := make(map[string]bool, len(tensors))
	var off int64
	for _, nt := range tensors {
		if nt.Name == MetadataKey {
			return nil, fmt.Errorf("safetensors: tensor name %q is reserved", nt.Name)
		}
		if seen[nt.Name] {
			return nil, fmt.Errorf("safetensors: tensor %q given twice", nt.Name)
		}
		if !utf8.ValidString(nt.Name) {
			// encoding/json would write U+FFFD for the bad bytes: the file
			// would name another tensor.
			return nil, fmt.Errorf("safetensors: tensor name %q is not valid UTF-8, which the JSON header cannot hold unchanged", nt.Name)
		}
		seen[nt.Name] = true
		t := nt.Tensor
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("safetensors: tensor %q: %w", nt.Name, err)
		}
		code, err := DTypeCode(t.DType)
		if err != nil {
			return nil, err
		}
		sep()
		writeJSONString(&b, nt.Name)
		b.WriteString(`:{"dtype":"`)
		b.WriteString(code)
		b.WriteString(`","shape":[`)
		for i, d := range t.Shape {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatInt(d, 10))
		}
		n := t.NumBytes()
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, off, off+n)
		off += n
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	if b.Len() > MaxHeaderSize {
		return nil, fmt.Errorf("safetensors: header of %d bytes exceeds the %d-byte limit", b.Len(), MaxHeaderSize)
	}
	out := make([]byte, 8, 8+b.Len())
	binary.LittleEndian.PutUint64(out, uint64(b.Len()))
	return append(out, b.Bytes()...), nil
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	b.Truncate(b.Len() - 1)
}

// Size returns the size in bytes of the file Write would write.
func Size(tensors []Named, metadata map[string]string) (int64, error) {
	h, err := Header(tensors, metadata)
	if err != nil {
		return 0, err
	}
	n := int64(len(h))
	for _, nt := range tensors {
		n += nt.Tensor.NumBytes()
	}
	return n, nil
}

// Write writes a safetensors file holding tensors, in order, and metadata
// to w, streaming one tensor at a time. It returns the bytes written. When w
// is an io.ReaderFrom and a tensor is a contiguous little-endian range of
// its storage's reader, the range is handed to w.ReadFrom as an
// io.SectionReader, so a file-to-file copy can stay in the kernel.
func Write(w io.Writer, tensors []Named, metadata map[string]string) (int64, error) {
	h, err := Header(tensors, metadata)
	if err != nil {
		return 0, err
	}
	n, err := w.Write(h)
	written := int64(n)
	if err != nil {
		return written, fmt.Errorf("safetensors: %w", err)
	}
	for _, nt := range tensors {
		m, err := writeTensor(w, nt.Tensor)
		written += m
		if err != nil {
			return written, fmt.Errorf("safetensors: writing %q: %w", nt.Name, err)
		}
		if m != nt.Tensor.NumBytes() {
			return written, fmt.Errorf("safetensors: writing %q: wrote %d bytes, want %d", nt.Name, m, nt.Tensor.NumBytes())
		}
	}
	return written, nil
}

// writeTensor writes t's contiguous bytes to w, through w.ReadFrom when t
// is a plain byte range of its source.
func writeTensor(w io.Writer, t *tensor.Tensor) (int64, error) {
	rf, ok := w.(io.ReaderFrom)
	if !ok || !t.IsContiguous() || t.Storage.BigEndian || t.NumElements() == 0 {
		return t.WriteTo(w)
	}
	if err := t.Validate(); err != nil {
		return 0, err
	}
	r, off := t.Storage.Source()
	n := t.NumBytes()
	return rf.ReadFrom(io.NewSectionReader(r, off+t.Offset*int64(t.DType.Size()), n))
}
