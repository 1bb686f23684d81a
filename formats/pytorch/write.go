package pytorch

import (
	"archive/zip"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/ckptkit/ckpt/tensor"
)

// ArchiveName is the prefix of every entry in the archives Write makes.
const ArchiveName = "archive"

// Alignment is the byte alignment of every entry's data, as torch's writer
// aligns it.
const Alignment = 64

// Named is a tensor with its state_dict key ([tensor.Named]).
type Named = tensor.Named

// storagePlan is one data/N entry: the bytes src.WriteTo produces.
type storagePlan struct {
	key   string
	src   *tensor.Tensor
	bytes int64
}

// plan assigns tensors to storages: non-empty contiguous views of one
// source storage with one dtype share a copy of the whole storage; every
// other tensor gets a contiguous storage of its own.
func plan(tensors []Named) ([]tensorRef, []storagePlan, error) {
	type groupKey struct {
		st *tensor.Storage
		dt tensor.DType
	}
	shares := func(t *tensor.Tensor) bool {
		return t.NumElements() > 0 && t.IsContiguous() && t.Storage.Size()%int64(t.DType.Size()) == 0
	}
	groups := map[groupKey]int{} // storage index
	seen := map[string]bool{}
	for _, nt := range tensors {
		t := nt.Tensor
		if t == nil {
			return nil, nil, fmt.Errorf("pytorch: tensor %q is nil", nt.Name)
		}
		if err := t.Validate(); err != nil {
			return nil, nil, fmt.Errorf("pytorch: tensor %q: %w", nt.Name, err)
		}
		if seen[nt.Name] {
			return nil, nil, fmt.Errorf("pytorch: tensor %q given twice", nt.Name)
		}
		seen[nt.Name] = true
	}
	var refs []tensorRef
	var storages []storagePlan
	add := func(src *tensor.Tensor) int {
		storages = append(storages, storagePlan{key: strconv.Itoa(len(storages)), src: src, bytes: src.NumBytes()})
		return len(storages) - 1
	}
	for _, nt := range tensors {
		t := nt.Tensor
		ref := tensorRef{name: nt.Name, dtype: t.DType.String(), shape: t.Shape, stride: tensor.ContiguousStrides(t.Shape)}
		if shares(t) {
			k := groupKey{t.Storage, t.DType}
			i, ok := groups[k]
			if !ok {
				n := t.Storage.Size() / int64(t.DType.Size())
				i = add(tensor.New(t.DType, []int64{n}, t.Storage))
				groups[k] = i
			}
			ref.offset = t.Offset
			ref.storageKey = storages[i].key
			ref.storageSize = storages[i].bytes / int64(t.DType.Size())
		} else {
			i := add(t)
			ref.storageKey = storages[i].key
			ref.storageSize = t.NumElements()
		}
		refs = append(refs, ref)
	}
	return refs, storages, nil
}

// DataBytes returns the number of storage bytes Write writes for tensors
// (shared storages counted once), for progress reporting.
func DataBytes(tensors []Named) (int64, error) {
	_, storages, err := plan(tensors)
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
	refs, storages, err := plan(tensors)
	if err != nil {
		return 0, err
	}
	pkl, err := encodeStateDict(refs)
	if err != nil {
		return 0, err
	}
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
