package formats

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/formats/safetensors"
	"github.com/ckptkit/ckpt/pickle"
)

// Kind is what Detect found a file to be.
type Kind string

// The kinds of file Detect recognizes.
const (
	KindPyTorch     Kind = "pytorch"     // zip archive, legacy pickle or tar
	KindSafetensors Kind = "safetensors" // safetensors header
	KindIndex       Kind = "index"       // a JSON object: a sharded checkpoint's index
	KindONNX        Kind = "onnx"        // protobuf with ModelProto's top-level fields
)

// ErrUnknownFormat is returned (wrapped) by Detect and Open for a file that
// is none of the formats ckpt reads. An empty file's error also matches it
// with errors.Is.
var ErrUnknownFormat = errors.New("not a PyTorch, safetensors, ONNX or sharded-index file")

// unknownError is an ErrUnknownFormat that says more about the file.
type unknownError string

func (e unknownError) Error() string        { return string(e) }
func (e unknownError) Is(target error) bool { return target == ErrUnknownFormat }

// Detect's errors for files it can say more about.
const (
	errEmpty   unknownError = "empty file"
	errNumPy   unknownError = "a NumPy array (.npy), not a checkpoint"
	errNoIndex unknownError = `a JSON file without "weight_map", not a sharded checkpoint's index`
)

// sniffSize is how much of a file Detect looks at, besides walking ONNX's
// top-level protobuf fields.
const sniffSize = 512

// Detect reports what kind of checkpoint the size-byte file r holds, from
// its content. In order:
//
//	"PK\x03\x04" or "PK\x05\x06"         PyTorch zip (torch >= 1.6, TorchScript)
//	"ustar" at offset 257                 PyTorch tar (torch 0.1.1 to 0.1.9)
//	8-byte little-endian n, then '{'      safetensors, when n fits the file
//	0x80 0x02..0x05 (pickle PROTO)        PyTorch legacy (torch 0.1.10 to 1.5)
//	'{' after white space                 a sharded checkpoint's index
//	protobuf fields to the end of file    ONNX: field numbers ModelProto knows
//	                                      have their wire types, unknown ones
//	                                      any valid wire type (as protobuf
//	                                      parsers skip them), and ir_version
//	                                      (1) or graph (7) is present; or
//	                                      ir_version first and the last
//	                                      field cut short (a truncated file)
//	0x80 (PROTO of another version), or   a bare pickle: what package pickle
//	protocol 0/1's first opcode, whole    reads as the legacy format, so its
//	(c GLOBAL, I INT, L LONG, ( MARK)     reader gives the specific error
//
// A file that matches none fails with an error wrapping ErrUnknownFormat.
func Detect(r io.ReaderAt, size int64) (Kind, error) {
	k, err := detect(r, size)
	if err != nil {
		return "", fmt.Errorf("formats: %w", err)
	}
	return k, nil
}

// detect is Detect with errors not prefixed (Open names the file first).
func detect(r io.ReaderAt, size int64) (Kind, error) {
	if size == 0 {
		return "", errEmpty
	}
	head := make([]byte, min(size, sniffSize))
	if n, err := r.ReadAt(head, 0); n < len(head) {
		return "", fmt.Errorf("reading: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return KindPyTorch, nil
	case len(head) >= 262 && string(head[257:262]) == "ustar", pickle.IsTarHeader(head):
		return KindPyTorch, nil // a tar file, as torch.load decides (pickle.IsTarHeader)
	}
	// Before pickle's PROTO: a header of 640 to 1535 bytes starts with
	// 0x80 0x02..0x05 too.
	if len(head) >= 9 && head[8] == '{' {
		n := binary.LittleEndian.Uint64(head)
		if n <= safetensors.MaxHeaderSize && int64(n) <= size-8 {
			return KindSafetensors, nil
		}
	}
	if len(head) >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5 {
		// A pickle PROTO opcode: torch's legacy format starts with the
		// pickled magic number.
		return KindPyTorch, nil
	}
	if t := bytes.TrimLeft(head, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		return KindIndex, nil
	}
	if isONNX(r, size) {
		return KindONNX, nil
	}
	if isBarePickle(head) {
		return KindPyTorch, nil
	}
	if bytes.HasPrefix(head, []byte("\x93NUMPY")) {
		return "", errNumPy
	}
	return "", ErrUnknownFormat
}

// isBarePickle reports whether head starts as a pickle that package pickle
// reads as the legacy format: PROTO of any version (the reader names an
// unsupported one), or protocol 0 and 1's first opcode complete and well
// formed, so that text files are not taken for pickles.
func isBarePickle(head []byte) bool {
	if len(head) == 0 {
		return false
	}
	truncated := len(head) == sniffSize // the line may go on past head
	// line returns the text of a newline-terminated argument, ok when it
	// ends inside head or runs to its end.
	line := func(b []byte) ([]byte, bool) {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			return b[:i], true
		}
		return b, truncated
	}
	digits := func(s []byte) bool {
		s = bytes.TrimPrefix(s, []byte("-"))
		if len(s) == 0 {
			return false
		}
		for _, c := range s {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	name := func(s []byte) bool {
		if len(s) == 0 {
			return false
		}
		for _, c := range s {
			if !(c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
				return false
			}
		}
		return true
	}
	switch head[0] {
	case 0x80:
		return true
	case 'c': // GLOBAL module\nname\n
		mod, ok := line(head[1:])
		if !ok || !name(mod) {
			return false
		}
		rest := head[1+len(mod):] // "\nname\n...", or empty when cut
		if len(rest) <= 1 {
			return truncated
		}
		n, ok := line(rest[1:])
		return ok && name(n)
	case 'I': // INT [-]digits\n
		s, ok := line(head[1:])
		return ok && digits(s)
	case 'L': // LONG [-]digits[L]\n
		s, ok := line(head[1:])
		return ok && digits(bytes.TrimSuffix(s, []byte("L")))
	case '(': // MARK, then an opcode protocols 0 and 1 write
		return len(head) >= 2 && bytes.IndexByte([]byte("(.0123FGIJKLMNPQRSTUVX]abcdeghijlopqrstu}"), head[1]) >= 0
	}
	return false
}

// isONNX walks the top-level protobuf fields of r and reports whether they
// end exactly at the end of the file, with ir_version (1) or graph (7)
// present. Fields ModelProto defines must have their wire type; other field
// numbers (a newer onnx.proto, a vendor's extension) may have any valid
// wire type, as onnx's own parser skips them; groups are refused. A file
// that starts with a plausible ir_version (1 to 100), as every ONNX writer
// puts it first, and whose last field runs past the end is a truncated
// ONNX file: the reader says where.
func isONNX(r io.ReaderAt, size int64) bool {
	// ModelProto field numbers and their wire types (0 varint, 2 bytes).
	wire := map[uint64]uint64{1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}
	var pos int64
	seen, irFirst := false, false
	var buf [10]byte
	// varint reads one; cut is set when the file ends inside it.
	varint := func() (v uint64, ok, cut bool) {
		n, _ := r.ReadAt(buf[:min(10, size-pos)], pos)
		v, k := binary.Uvarint(buf[:n])
		if k <= 0 {
			return 0, false, k == 0
		}
		pos += int64(k)
		return v, true, false
	}
	for fields := 0; pos < size; fields++ {
		if fields == 1000 {
			return false
		}
		tag, ok, _ := varint()
		if !ok {
			return false
		}
		num, wt := tag>>3, tag&7
		if num == 0 || num > 1<<29-1 {
			return false
		}
		if want, known := wire[num]; known && want != wt {
			return false
		}
		if fields == 0 && num == 1 {
			// ONNX IR versions are small numbers (10 in 2024).
			at := pos
			v, ok, _ := varint()
			pos = at
			irFirst = ok && v >= 1 && v <= 100
		}
		if num == 1 || num == 7 {
			seen = true
		}
		switch wt {
		case 0:
			if _, ok, cut := varint(); !ok {
				return cut && irFirst
			}
		case 1, 5:
			n := int64(8)
			if wt == 5 {
				n = 4
			}
			if n > size-pos {
				return irFirst
			}
			pos += n
		case 2:
			v, ok, cut := varint()
			if !ok {
				return cut && irFirst
			}
			if v > uint64(size-pos) {
				return irFirst
			}
			pos += int64(v)
		default:
			return false
		}
	}
	return seen && pos == size
}

// DirCandidates are the files Open looks for, in order, when given a
// directory (a Hugging Face model directory).
var DirCandidates = []string{
	"model.safetensors.index.json", "model.safetensors",
	"pytorch_model.bin.index.json", "pytorch_model.bin",
}

// Open opens the checkpoint at path, recognizing its format from the
// content. A sharded checkpoint is opened from its index file; a directory
// from the first of DirCandidates it holds. The checkpoint must be closed.
func Open(path string) (*Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("formats: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("formats: %w", err)
	}
	if st.IsDir() {
		f.Close()
		for _, name := range DirCandidates {
			p := filepath.Join(path, name)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return Open(p)
			}
		}
		return nil, fmt.Errorf("formats: %s: a directory without %s", path, strings.Join(DirCandidates, ", "))
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("formats: %s: not a regular file", path)
	}
	kind, err := detect(f, st.Size())
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("formats: %s: %w", path, err)
	}
	return openKind(path, kind, true)
}

func openKind(path string, kind Kind, allowIndex bool) (*Checkpoint, error) {
	switch kind {
	case KindPyTorch:
		pf, err := pickle.Open(path)
		if err != nil {
			return nil, err
		}
		c, err := fromPickle(pf)
		if err != nil {
			pf.Close()
			return nil, fmt.Errorf("%w (file %s)", err, path)
		}
		return c, nil
	case KindSafetensors:
		sf, err := safetensors.Open(path)
		if err != nil {
			return nil, err
		}
		return fromSafetensors(sf, FormatSafetensors), nil
	case KindONNX:
		m, err := onnx.Open(path)
		if err != nil {
			return nil, err
		}
		ts, skipped, err := m.Initializers()
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("%w (in %s)", err, path)
		}
		c := &Checkpoint{Format: FormatONNX, ONNX: m, Tensors: ts, closers: []io.Closer{m}}
		byName := make(map[string]*Named, len(ts))
		for i := range c.Tensors {
			byName[c.Tensors[i].Name] = &c.Tensors[i]
		}
		skippedAt := map[string]Skipped{}
		for _, u := range skipped {
			s := Skipped{u.Name, u.DataType.String(), u.Dims}
			c.Skipped = append(c.Skipped, s)
			skippedAt[u.Name] = s
		}
		// Parameters export merged into an equal initializer keep their
		// names, sharing its tensor.
		var aliases []Named
		for _, a := range onnxAliases(m) {
			if nt := byName[a.init]; nt != nil {
				aliases = append(aliases, Named{Name: a.name, Tensor: nt.Tensor})
			} else if s, ok := skippedAt[a.init]; ok {
				c.Skipped = append(c.Skipped, Skipped{a.name, s.Type, s.Shape})
			}
		}
		c.Tensors = append(c.Tensors, aliases...)
		for _, p := range m.MetadataProps {
			c.Meta = append(c.Meta, Meta{Key: p.Key, Value: p.Value})
		}
		return c, nil
	case KindIndex:
		if !allowIndex {
			return nil, fmt.Errorf("formats: %s: a shard may not be an index file", path)
		}
		return openIndex(path)
	}
	return nil, fmt.Errorf("formats: %s: %w", path, ErrUnknownFormat)
}

// fromPickle makes the checkpoint of a decoded PyTorch file: its tensors,
// its non-tensor leaves as metadata, then the entries of its metadata
// record, which lie outside Object.
func fromPickle(pf *pickle.File) (*Checkpoint, error) {
	format := map[string]string{
		pickle.FormatZip: FormatPyTorchZip, pickle.FormatLegacy: FormatPyTorchLegacy,
		pickle.FormatTar: FormatPyTorchTar, pickle.FormatTorchScript: FormatTorchScript,
	}[pf.Format]
	if format == "" {
		format = "pytorch-" + pf.Format
	}
	c := &Checkpoint{Format: format, Pickle: pf, closers: []io.Closer{pf}}
	if !pf.IsModule && pf.Format != pickle.FormatTorchScript {
		c.Object = pf.Root
	}
	seen := map[string]bool{}
	for _, nt := range pf.Tensors {
		if seen[nt.Name] {
			continue // the same path twice cannot happen in a pickle; be safe
		}
		seen[nt.Name] = true
		c.Tensors = append(c.Tensors, nt)
	}
	for _, m := range pf.Meta {
		if m.Path == "" || seen[m.Path] {
			continue
		}
		seen[m.Path] = true
		c.Meta = append(c.Meta, Meta{Key: m.Path, Value: metaJSON(m.Value)})
	}
	for _, m := range pf.Metadata {
		if seen[m.Key] {
			return nil, fmt.Errorf("formats: metadata record %q: key %q is also a path of the pickled object", pf.Prefix+"/"+pickle.MetadataRecord, m.Key)
		}
		seen[m.Key] = true
		c.Meta = append(c.Meta, m)
		c.outside = append(c.outside, m.Key)
	}
	return c, nil
}

func fromSafetensors(sf *safetensors.File, format string) *Checkpoint {
	c := &Checkpoint{Format: format, Tensors: sf.Tensors, closers: []io.Closer{sf}}
	for _, s := range sf.Skipped {
		c.Skipped = append(c.Skipped, Skipped{s.Name, s.DType, s.Shape})
	}
	keys := make([]string, 0, len(sf.Metadata))
	for k := range sf.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		c.Meta = append(c.Meta, Meta{Key: k, Value: sf.Metadata[k]})
	}
	return c
}

// openIndex opens a sharded checkpoint from its index: safetensors shards
// through safetensors.OpenIndex, other shards (pytorch_model-0000N-of-...
// .bin) one by one.
func openIndex(path string) (*Checkpoint, error) {
	x, err := safetensors.ReadIndex(path)
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("formats: %s: %w", path, ErrUnknownFormat)
		}
		if b, rerr := os.ReadFile(path); rerr == nil {
			var obj map[string]json.RawMessage
			if json.Unmarshal(b, &obj) == nil && obj["weight_map"] == nil {
				return nil, fmt.Errorf("formats: %s: %w", path, errNoIndex)
			}
		}
		return nil, err
	}
	dir := filepath.Dir(path)
	kinds := map[Kind]bool{}
	for _, s := range x.Shards() {
		k, err := detectFile(filepath.Join(dir, s))
		if err != nil {
			return nil, err
		}
		kinds[k] = true
	}
	if len(kinds) == 1 && kinds[KindSafetensors] {
		sf, err := safetensors.OpenIndex(path)
		if err != nil {
			return nil, err
		}
		return fromSafetensors(sf, FormatSafetensorsSharded), nil
	}
	out := &Checkpoint{Format: FormatPyTorchSharded}
	where := map[string]string{}
	metaSeen := map[string]bool{}
	for _, s := range x.Shards() {
		sp := filepath.Join(dir, s)
		k, _ := detectFile(sp)
		c, err := openKind(sp, k, false)
		if err != nil {
			out.Close()
			return nil, err
		}
		out.closers = append(out.closers, c.closers...)
		out.Skipped = append(out.Skipped, c.Skipped...)
		if k != KindPyTorch {
			out.Format = "sharded"
		}
		for _, nt := range c.Tensors {
			if prev, dup := where[nt.Name]; dup {
				out.Close()
				return nil, fmt.Errorf("formats: %s: tensor %q is in shards %s and %s", path, nt.Name, prev, s)
			}
			where[nt.Name] = s
			out.Tensors = append(out.Tensors, nt)
		}
		for _, m := range c.Meta {
			if !metaSeen[m.Key] {
				metaSeen[m.Key] = true
				out.Meta = append(out.Meta, m)
			}
		}
	}
	for name, s := range x.WeightMap {
		if where[name] != s {
			out.Close()
			return nil, fmt.Errorf("formats: %s: tensor %q is not in shard %s", path, name, s)
		}
	}
	return out, nil
}

func detectFile(path string) (Kind, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("formats: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("formats: %w", err)
	}
	k, err := detect(f, st.Size())
	if err != nil {
		return "", fmt.Errorf("formats: %s: %w", path, err)
	}
	return k, nil
}
