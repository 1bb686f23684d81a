package pytorch

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"unicode/utf8"

	"github.com/ckptkit/ckpt/pickle"
	"github.com/ckptkit/ckpt/tensor"
)

// ArchiveName is the prefix of every entry in the archives Write makes.
const ArchiveName = "archive"

// Alignment is the byte alignment of every entry's data, as torch's writer
// aligns it.
const Alignment = 64

// Named is a tensor with its state_dict key ([tensor.Named]).
type Named = tensor.Named

// Meta is one string metadata entry of the metadata record
// ([pickle.KeyValue]).
type Meta = pickle.KeyValue

// DataBytes returns the number of storage bytes Write writes for tensors
// (shared storages counted once), for progress reporting.
func DataBytes(tensors []Named) (int64, error) {
	d, err := stateDict(tensors)
	if err != nil {
		return 0, err
	}
	return ObjectDataBytes(d)
}

// ObjectDataBytes returns the number of storage bytes WriteObject writes
// for v.
func ObjectDataBytes(v any) (int64, error) {
	_, storages, err := encode(v, true)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, s := range storages {
		n += s.bytes
	}
	return n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Write writes tensors, in order, as a torch zip checkpoint holding an
// OrderedDict state_dict, streaming one storage at a time. It returns the
// bytes written.
func Write(w io.Writer, tensors []Named) (int64, error) {
	return WriteMeta(w, tensors, nil)
}

// WriteMeta is Write with string metadata: when meta is not empty, the
// archive holds it as its metadata record (see the package documentation).
// Keys must be unique, keys and values valid UTF-8, and the record at most
// pickle.MaxMetadataSize bytes, so that the reader takes back what was
// written.
func WriteMeta(w io.Writer, tensors []Named, meta []Meta) (int64, error) {
	d, err := stateDict(tensors)
	if err != nil {
		return 0, err
	}
	rec, err := metadataRecord(meta)
	if err != nil {
		return 0, err
	}
	pkl, storages, err := encode(d, false)
	if err != nil {
		return 0, err
	}
	return writeArchive(w, pkl, storages, rec)
}

// WriteObject writes v, a value of package pickle's object model (the
// types pickle.File.Root holds: dicts and OrderedDicts, lists, tuples,
// numbers, strings, None, tensors, objects), as torch.save(v) writes it:
// torch.load returns the same structure. Tensors keep requires_grad
// (written as nn.Parameter); storage sharing follows Write's rules. It
// returns the bytes written.
func WriteObject(w io.Writer, v any) (int64, error) {
	return WriteObjectMeta(w, v, nil)
}

// WriteObjectMeta is WriteObject with string metadata, written as
// WriteMeta writes it.
func WriteObjectMeta(w io.Writer, v any, meta []Meta) (int64, error) {
	rec, err := metadataRecord(meta)
	if err != nil {
		return 0, err
	}
	pkl, storages, err := encode(v, true)
	if err != nil {
		return 0, err
	}
	return writeArchive(w, pkl, storages, rec)
}

// metadataRecord returns the metadata record's JSON object, keys in order,
// or nil for no metadata.
func metadataRecord(meta []Meta) ([]byte, error) {
	if len(meta) == 0 {
		return nil, nil
	}
	var b, v bytes.Buffer
	enc := json.NewEncoder(&v)
	enc.SetEscapeHTML(false)
	// str appends s as a JSON string (Encode ends it with a newline, which
	// is left out).
	str := func(s string) {
		v.Reset()
		enc.Encode(s) // a valid UTF-8 string always encodes
		b.Write(bytes.TrimSuffix(v.Bytes(), []byte("\n")))
	}
	seen := make(map[string]bool, len(meta))
	b.WriteByte('{')
	for i, m := range meta {
		if seen[m.Key] {
			return nil, fmt.Errorf("pytorch: metadata key %q given twice", m.Key)
		}
		seen[m.Key] = true
		if !utf8.ValidString(m.Key) || !utf8.ValidString(m.Value) {
			return nil, fmt.Errorf("pytorch: metadata %q: not valid UTF-8", m.Key)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		str(m.Key)
		b.WriteByte(':')
		str(m.Value)
	}
	b.WriteByte('}')
	if b.Len() > pickle.MaxMetadataSize {
		return nil, fmt.Errorf("pytorch: metadata record of %d bytes exceeds limit %d", b.Len(), pickle.MaxMetadataSize)
	}
	return b.Bytes(), nil
}

// writeArchive writes the zip archive of data.pkl, its storages and, when
// rec is not nil, the metadata record.
func writeArchive(w io.Writer, pkl []byte, storages []storagePlan, rec []byte) (int64, error) {
	cw := &countWriter{w: w}
	zw := zip.NewWriter(cw)
	// archive/zip writes an entry's data descriptor when the next entry is
	// created, so the next local header starts after it: 16 bytes, or 24
	// for an entry of 4 GiB or more (zip64 sizes).
	pending := int64(0)
	entry := func(name string, size int64, body func(io.Writer) (int64, error)) error {
		if err := zw.Flush(); err != nil {
			return err
		}
		full := ArchiveName + "/" + name
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: full, Method: zip.Store, Extra: padding(cw.n+pending, len(full))})
		if err != nil {
			return err
		}
		n, err := body(fw)
		if err != nil {
			return fmt.Errorf("pytorch: writing %s: %w", full, err)
		}
		if n != size {
			return fmt.Errorf("pytorch: writing %s: wrote %d bytes, want %d", full, n, size)
		}
		pending = 16
		if size >= math.MaxUint32 {
			pending = 24
		}
		return nil
	}
	bytesBody := func(b []byte) func(io.Writer) (int64, error) {
		return func(w io.Writer) (int64, error) {
			n, err := w.Write(b)
			return int64(n), err
		}
	}
	if err := entry("data.pkl", int64(len(pkl)), bytesBody(pkl)); err != nil {
		return cw.n, err
	}
	if err := entry("byteorder", 6, bytesBody([]byte("little"))); err != nil {
		return cw.n, err
	}
	for _, s := range storages {
		if err := entry("data/"+s.key, s.bytes, s.src.WriteTo); err != nil {
			return cw.n, err
		}
	}
	if err := entry("version", 2, bytesBody([]byte("3\n"))); err != nil {
		return cw.n, err
	}
	if rec != nil {
		if err := entry(pickle.MetadataRecord, int64(len(rec)), bytesBody(rec)); err != nil {
			return cw.n, err
		}
	}
	if err := zw.Close(); err != nil {
		return cw.n, fmt.Errorf("pytorch: %w", err)
	}
	return cw.n, nil
}

// padding returns the local-header extra field that makes the data of an
// entry whose header starts at off, with a name of nameLen bytes, start at a
// multiple of Alignment: an "FB" block of 'Z' bytes, as torch writes it.
func padding(off int64, nameLen int) []byte {
	const localHeader = 30
	start := off + localHeader + int64(nameLen) + 4
	pad := (Alignment - start%Alignment) % Alignment
	b := make([]byte, 4+pad)
	b[0], b[1] = 'F', 'B'
	binary.LittleEndian.PutUint16(b[2:], uint16(pad))
	for i := 4; i < len(b); i++ {
		b[i] = 'Z'
	}
	return b
}
