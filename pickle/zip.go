package pickle

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ckptkit/ckpt/tensor"
)

// The zip format (torch >= 1.6) and TorchScript archives.
//
// Every entry lives under one top-level directory, the archive prefix
// (the file's base name when torch wrote it, but any name is accepted):
//
//	prefix/data.pkl        the pickled object (protocol 2)
//	prefix/data/<key>      the bytes of storage <key>, stored uncompressed,
//	                       aligned to 64 bytes by padding in the local header
//	prefix/version         the format version, a decimal number
//	prefix/byteorder       "little" or "big" (torch >= 2.1), absent = little
//
// TorchScript archives add prefix/code/ (the model's TorchScript source, of
// which only the __parameters__ and __buffers__ lines of each class are
// read), prefix/constants.pkl and prefix/constants/.
//
// A persistent id in data.pkl is ('storage', torch.<T>Storage, key,
// location, numel); the storage's bytes are entry data/<key>. Storage entries
// must be stored (method 0): a compressed storage is refused. Small entries
// that are read (pickles, records, code) may be deflated but are checked
// against their declared size and MaxRatio.

type zipArchive struct {
	r       io.ReaderAt
	size    int64
	prefix  string
	entries map[string]*zip.File
}

func openZip(r io.ReaderAt, size int64) (*zipArchive, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("pickle: zip: %w", zipCause(err))
	}
	if len(zr.File) == 0 {
		return nil, errors.New("pickle: zip: archive is empty")
	}
	if len(zr.File) > MaxEntries {
		return nil, fmt.Errorf("pickle: zip: %d entries exceed limit %d", len(zr.File), MaxEntries)
	}
	a := &zipArchive{r: r, size: size, entries: make(map[string]*zip.File, len(zr.File))}
	first := zr.File[0].Name
	i := strings.IndexByte(first, '/')
	if i <= 0 {
		return nil, fmt.Errorf("pickle: zip: entry %q is not under an archive prefix", first)
	}
	a.prefix = first[:i]
	for _, f := range zr.File {
		rest, ok := strings.CutPrefix(f.Name, a.prefix+"/")
		if !ok || rest == "" {
			return nil, fmt.Errorf("pickle: zip: entry %q is outside the archive prefix %q", f.Name, a.prefix)
		}
		if _, dup := a.entries[rest]; dup {
			return nil, fmt.Errorf("pickle: zip: duplicate entry %q", f.Name)
		}
		a.entries[rest] = f
	}
	return a, nil
}

// read returns the contents of a small entry, checking its sizes.
func (a *zipArchive) read(name string) ([]byte, error) {
	f := a.entries[name]
	if f == nil {
		return nil, fmt.Errorf("pickle: zip: no entry %q", a.prefix+"/"+name)
	}
	if f.UncompressedSize64 > MaxPickleSize {
		return nil, fmt.Errorf("pickle: zip: entry %q of %d bytes exceeds limit %d", f.Name, f.UncompressedSize64, MaxPickleSize)
	}
	if f.Method != zip.Store {
		if f.CompressedSize64 == 0 && f.UncompressedSize64 > 0 ||
			f.CompressedSize64 > 0 && f.UncompressedSize64/f.CompressedSize64 > MaxRatio {
			return nil, fmt.Errorf("pickle: zip: entry %q compresses %d bytes to %d, ratio over %d", f.Name, f.UncompressedSize64, f.CompressedSize64, MaxRatio)
		}
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("pickle: zip: entry %q: %w", f.Name, zipCause(err))
	}
	defer rc.Close()
	// Read at most one byte more than declared, so a lying header is caught
	// without reading further.
	b, err := io.ReadAll(io.LimitReader(rc, int64(f.UncompressedSize64)+1))
	if err != nil {
		return nil, fmt.Errorf("pickle: zip: entry %q: %w", f.Name, zipCause(err))
	}
	if uint64(len(b)) != f.UncompressedSize64 {
		return nil, fmt.Errorf("pickle: zip: entry %q has %d bytes, header says %d", f.Name, len(b), f.UncompressedSize64)
	}
	return b, nil
}

// span returns the offset and size of a stored entry's bytes in the file.
func (a *zipArchive) span(name string) (int64, int64, error) {
	f := a.entries[name]
	if f == nil {
		return 0, 0, fmt.Errorf("pickle: zip: no entry %q", a.prefix+"/"+name)
	}
	if f.Method != zip.Store {
		return 0, 0, fmt.Errorf("pickle: zip: storage entry %q is compressed (method %d); torch writes storages uncompressed", f.Name, f.Method)
	}
	if f.CompressedSize64 != f.UncompressedSize64 {
		return 0, 0, fmt.Errorf("pickle: zip: stored entry %q has sizes %d and %d", f.Name, f.CompressedSize64, f.UncompressedSize64)
	}
	off, err := f.DataOffset()
	if err != nil {
		return 0, 0, fmt.Errorf("pickle: zip: entry %q: %w", f.Name, zipCause(err))
	}
	n := int64(f.UncompressedSize64)
	if off < 0 || n < 0 || off > a.size || n > a.size-off {
		return 0, 0, fmt.Errorf("pickle: zip: entry %q (%d bytes at %d) runs past the end of the file (%d bytes)", f.Name, n, off, a.size)
	}
	return off, n, nil
}

// storages resolves the persistent ids of one pickle of a zip archive,
// whose storages are entries dir/<key>.
type zipStorages struct {
	a         *zipArchive
	dir       string
	bigEndian bool
	byKey     map[string]*tensor.Storage
}

func (z *zipStorages) load(pid any) (any, error) {
	items, err := sequence(pid)
	if err != nil {
		return nil, fmt.Errorf("persistent id: %w", err)
	}
	if len(items) != 5 || asString(items[0]) != "storage" {
		return nil, fmt.Errorf("persistent id %s is not ('storage', type, key, location, numel)", describe(items))
	}
	vt, ok := items[1].(*valueRef)
	if !ok || !vt.dtype.Valid() {
		return nil, fmt.Errorf("persistent id: storage type %s is not a storage class", describe(items[1:2]))
	}
	key := asString(items[2])
	if key == "" || strings.ContainsAny(key, "/\\") {
		return nil, fmt.Errorf("persistent id: invalid storage key %q", key)
	}
	numel, err := toInt(items[4])
	if err != nil || numel < 0 || numel > tensor.MaxElements {
		return nil, fmt.Errorf("persistent id: invalid storage size %s", describe(items[4:5]))
	}
	nbytes := numel * int64(vt.dtype.Size())
	st := z.byKey[key]
	if st == nil {
		off, n, err := z.a.span(z.dir + "/" + key)
		if err != nil {
			return nil, err
		}
		if nbytes > n {
			return nil, fmt.Errorf("storage %q of %d %s elements needs %d bytes, entry has %d", key, numel, vt.dtype, nbytes, n)
		}
		st = tensor.NewStorage(z.a.r, off, nbytes)
		st.Key = z.dir + "/" + key
		st.BigEndian = z.bigEndian
		z.byKey[key] = st
	} else if nbytes > st.Size() {
		return nil, fmt.Errorf("storage %q is %d bytes, a later reference needs %d", key, st.Size(), nbytes)
	}
	return &storageRef{dtype: vt.dtype, st: st, n: -1}, nil
}

func asString(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case []byte:
		return string(s)
	}
	return ""
}

// brief renders a decoded value for an error message: quoted, on one line,
// at most about 100 bytes.
func brief(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return strconv.Quote(s)
}

// oneLine makes a message from elsewhere (gopickle) fit one line of at
// most about 300 bytes.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "..."
	}
	return s
}

// describe renders pickled values briefly for error messages.
func describe(items []any) string {
	var sb strings.Builder
	sb.WriteByte('(')
	for i, it := range items {
		if i > 0 {
			sb.WriteString(", ")
		}
		switch x := it.(type) {
		case string:
			fmt.Fprintf(&sb, "%q", x)
		case int:
			fmt.Fprintf(&sb, "%d", x)
		case *valueRef:
			sb.WriteString(x.module + "." + x.name)
		case *classRef:
			sb.WriteString(x.module + "." + x.name)
		default:
			fmt.Fprintf(&sb, "%T", it)
		}
		if sb.Len() > 200 {
			sb.WriteString(", ...")
			break
		}
	}
	sb.WriteByte(')')
	return sb.String()
}

func loadZip(r io.ReaderAt, size int64) (*File, error) {
	a, err := openZip(r, size)
	if err != nil {
		return nil, err
	}
	f := &File{Format: FormatZip, Prefix: a.prefix}
	big := false
	if _, ok := a.entries["byteorder"]; ok {
		b, err := a.read("byteorder")
		if err != nil {
			return nil, err
		}
		switch strings.TrimSpace(string(b)) {
		case "little":
		case "big":
			big = true
		default:
			return nil, fmt.Errorf("pickle: zip: byteorder record %q is neither little nor big", b)
		}
	}
	var ts map[string]*tsClass
	if _, ok := a.entries["constants.pkl"]; ok {
		f.Format = FormatTorchScript
		if ts, err = scriptClasses(a); err != nil {
			return nil, err
		}
	}
	data, err := a.read("data.pkl")
	if err != nil {
		return nil, err
	}
	zs := &zipStorages{a: a, dir: "data", bigEndian: big, byKey: map[string]*tensor.Storage{}}
	// Like Python's unpickler, ignore bytes after the STOP opcode.
	root, _, err := unpickle(data, zs.load)
	if err != nil {
		return nil, fmt.Errorf("%w (in %q)", err, a.prefix+"/data.pkl")
	}
	f.Root = root
	if err := f.finish(ts); err != nil {
		return nil, err
	}
	return f, nil
}

// zipCause returns err for wrapping in a message that already says "zip:":
// archive/zip's errors ("zip: checksum error") print without their own
// prefix, and errors.Is still finds them.
func zipCause(err error) error {
	if strings.HasPrefix(err.Error(), "zip: ") {
		return causeErr{err}
	}
	return err
}

type causeErr struct{ err error }

func (e causeErr) Error() string { return strings.TrimPrefix(e.err.Error(), "zip: ") }
func (e causeErr) Unwrap() error { return e.err }
