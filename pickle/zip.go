package pickle

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
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
// ckpt's files may add prefix/extra/ckpt_metadata.json, string metadata
// (see MetadataRecord).
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
	entries map[string]*zip.File // by name under the prefix, ASCII lower-cased
	files   []*zip.File
}

// How torch finds members (caffe2's PyTorchStreamReader on miniz): the
// central directory lists them; the archive prefix is the first entry's
// name up to its first '/'; a member is looked up as prefix/name with
// ASCII letters compared without case; CRCs are not checked. The reader
// does the same, and refuses archives where readers could disagree (see
// zipAnomalies).

// zipAnomaly is a property of a zip archive that lets two zip readers see
// different members or contents. The reader refuses archives with any;
// Scan reports each as a MEDIUM finding.
type zipAnomaly struct {
	Name   string // "zip-case-duplicate", "zip-overlap", ...
	Entry  string // the member at fault, if any
	Offset int64  // where in the file
	Msg    string // one sentence
}

func lowerASCII(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// zipAnomalies checks an archive zip.NewReader accepted.
func zipAnomalies(r io.ReaderAt, size int64, files []*zip.File) []zipAnomaly {
	var out []zipAnomaly
	add := func(name, entry string, off int64, format string, args ...any) {
		out = append(out, zipAnomaly{name, entry, off, fmt.Sprintf(format, args...)})
	}
	if len(files) == 0 {
		return nil
	}
	offsets, base, dir, err := zipDirectory(r, size)
	if err != nil || len(offsets) != len(files) {
		return []zipAnomaly{{"zip-directory", "", 0, "the central directory cannot be read the way archive/zip read it"}}
	}
	if base != 0 {
		add("zip-prepended", "", 0, "the archive's offsets assume %d bytes before it: zip readers that correct for them and torch, which does not, see different members", base)
	}
	first := files[0].Name
	prefix, _, _ := strings.Cut(first, "/")
	byLower := map[string]string{}
	type span struct {
		start, end int64
		name       string
	}
	var spans []span
	for i, f := range files {
		hdr, _ := f.DataOffset()
		lh0 := offsets[i]
		low := lowerASCII(f.Name)
		if !strings.HasPrefix(f.Name, prefix+"/") || f.Name == prefix+"/" {
			add("zip-outside-prefix", f.Name, hdr, "member %q is outside the archive prefix %q that torch takes from the first member (and compares with case)", f.Name, prefix)
		}
		switch {
		case strings.ContainsRune(f.Name, 0):
			add("zip-name-nul", f.Name, hdr, "member name %q contains a NUL byte: C readers cut it there, others do not", f.Name)
		case strings.ContainsRune(f.Name, '\\'):
			add("zip-name-backslash", f.Name, hdr, "member name %q contains a backslash, a directory separator to some readers only", f.Name)
		case slices.Contains(strings.Split(f.Name, "/"), "..") || strings.HasPrefix(f.Name, "/"):
			add("zip-name-traversal", f.Name, hdr, "member name %q climbs out of the archive (.. or an absolute path)", f.Name)
		}
		if prev, dup := byLower[low]; dup {
			if prev == f.Name {
				add("zip-duplicate", f.Name, hdr, "duplicate entry %q: readers pick different copies", f.Name)
			} else {
				add("zip-case-duplicate", f.Name, hdr, "members %q and %q differ only in case: torch compares names without case and may pick either", prev, f.Name)
			}
		}
		byLower[low] = f.Name
		if f.Flags&1 != 0 {
			add("zip-encrypted", f.Name, hdr, "member %q is flagged encrypted: torch reads its bytes as they are, other readers decrypt or refuse", f.Name)
		}
		if f.Method != zip.Store && f.Method != zip.Deflate {
			add("zip-compression", f.Name, hdr, "member %q uses compression method %d, which torch's reader does not support", f.Name, f.Method)
		}
		if hdr > 0 {
			spans = append(spans, span{lh0, hdr + int64(f.CompressedSize64), f.Name})
			var lh [30]byte
			if _, err := r.ReadAt(lh[:], lh0); err == nil {
				n := int(binary.LittleEndian.Uint16(lh[26:]))
				name := make([]byte, n)
				if _, err := r.ReadAt(name, lh0+30); err == nil && string(name) != f.Name {
					add("zip-local-name", f.Name, lh0, "member %q is named %q in its local header: readers that walk local headers see another archive", f.Name, name)
				}
			}
		} else {
			add("zip-bad-offset", f.Name, lh0, "member %q has no valid local header", f.Name)
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			add("zip-overlap", spans[i].name, spans[i].start, "members %q and %q overlap in the file: one set of bytes is read as two members", spans[i-1].name, spans[i].name)
		}
	}
	// Readers search backwards for the end-of-central-directory record;
	// with two, they can pick different ones (a directory hidden in a
	// comment).
	// The directory, its end records and the comment are searched (not
	// the members' data, which the reader does not touch).
	tail := min(size-dir, 65535+22+46*int64(len(files))+1<<20)
	buf := make([]byte, tail)
	if n, _ := r.ReadAt(buf, size-tail); int64(n) == tail {
		if c := bytes.Count(buf, []byte("PK\x05\x06")); c > 1 {
			add("zip-eocd", "", size-tail+int64(bytes.Index(buf, []byte("PK\x05\x06"))), "%d end-of-central-directory records: zip readers can pick different ones and see different members", c)
		}
	}
	return out
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
	a := &zipArchive{r: r, size: size, entries: make(map[string]*zip.File, len(zr.File)), files: zr.File}
	first := zr.File[0].Name
	i := strings.IndexByte(first, '/')
	if i <= 0 {
		return nil, fmt.Errorf("pickle: zip: entry %q is not under an archive prefix", first)
	}
	a.prefix = first[:i]
	if an := zipAnomalies(r, size, zr.File); len(an) > 0 {
		return nil, fmt.Errorf("pickle: zip: %s", an[0].Msg)
	}
	for _, f := range zr.File {
		rest := f.Name[len(a.prefix)+1:]
		if rest == "" {
			return nil, fmt.Errorf("pickle: zip: entry %q is outside the archive prefix %q", f.Name, a.prefix)
		}
		a.entries[lowerASCII(rest)] = f
	}
	return a, nil
}

// entry returns the member prefix/name, found as torch finds it.
func (a *zipArchive) entry(name string) *zip.File { return a.entries[lowerASCII(name)] }

// read returns the contents of a small entry, checking its sizes but not
// its CRC (torch does not).
func (a *zipArchive) read(name string) ([]byte, error) {
	f := a.entry(name)
	if f == nil {
		return nil, fmt.Errorf("pickle: zip: no entry %q", a.prefix+"/"+name)
	}
	return readMember(f)
}

func readMember(f *zip.File) ([]byte, error) {
	if f.UncompressedSize64 > MaxPickleSize {
		return nil, fmt.Errorf("pickle: zip: entry %q of %d bytes exceeds limit %d", f.Name, f.UncompressedSize64, MaxPickleSize)
	}
	if f.Method != zip.Store {
		if f.CompressedSize64 == 0 && f.UncompressedSize64 > 0 ||
			f.CompressedSize64 > 0 && f.UncompressedSize64/f.CompressedSize64 > MaxRatio {
			return nil, fmt.Errorf("pickle: zip: entry %q compresses %d bytes to %d, ratio over %d", f.Name, f.UncompressedSize64, f.CompressedSize64, MaxRatio)
		}
	}
	raw, err := f.OpenRaw()
	if err != nil {
		return nil, fmt.Errorf("pickle: zip: entry %q: %w", f.Name, zipCause(err))
	}
	var rc io.Reader = raw
	switch f.Method {
	case zip.Store:
	case zip.Deflate:
		fr := flate.NewReader(raw)
		defer fr.Close()
		rc = fr
	default:
		return nil, fmt.Errorf("pickle: zip: entry %q uses unsupported compression method %d", f.Name, f.Method)
	}
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
	f := a.entry(name)
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
// at most about 100 bytes, as Python's str renders it. It never formats a
// container whole (fmt.Sprint of tuples that share one another took 10 s
// on a 179-byte legacy file).
func brief(v any) string {
	var b strings.Builder
	pyStr(&b, v, 100)
	s := b.String()
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
	if a.entry("byteorder") != nil {
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
	if a.entry("constants.pkl") != nil {
		f.Format = FormatTorchScript
		// torch.jit.load reads constants.pkl too: it is checked like every
		// pickle, though nothing of it is needed.
		c, err := a.read("constants.pkl")
		if err != nil {
			return nil, err
		}
		if _, _, err := verify(c, true); err != nil {
			return nil, fmt.Errorf("%w (in %q)", err, a.prefix+"/constants.pkl")
		}
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
	if f.Metadata, err = a.readMetadata(); err != nil {
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
