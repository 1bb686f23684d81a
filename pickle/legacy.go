package pickle

import (
	"archive/tar"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"

	"github.com/nlpodyssey/gopickle/types"

	"github.com/ckptkit/ckpt/tensor"
)

// The legacy format (torch 0.1.10 to 1.5, and torch.save with
// _use_new_zipfile_serialization=False) is a stream:
//
//	pickle  magic number 0x1950a86a20f9469cfc6c
//	pickle  protocol version 1001
//	pickle  sys_info {"protocol_version", "little_endian", "type_sizes"}
//	pickle  the object; persistent ids are
//	        ('storage', torch.<T>Storage, root_key, location, numel, view)
//	        with view None or (view_key, offset, numel) in elements,
//	        and ('module', cls, source_file, source) for module classes
//	pickle  the sorted list of root storage keys
//	then for each key, in that order: numel as an int64 (little-endian),
//	then numel elements (little-endian, as torch 1.13 reads them).

// legacyMagic is torch's MAGIC_NUMBER.
var legacyMagic, _ = new(big.Int).SetString("1950a86a20f9469cfc6c", 16)

// streamPickle validates and decodes the pickle that starts at off and ends
// before end, reading only as much of the file as it needs.
func streamPickle(r io.ReaderAt, off, end int64, persid func(any) (any, error), what string) (any, int64, error) {
	window := int64(64 << 10)
	for {
		n := min(window, end-off, MaxPickleSize)
		if n <= 0 {
			return nil, 0, fmt.Errorf("pickle: %s: truncated file, no pickle at offset %d", what, off)
		}
		data, err := readSection(r, off, n, what)
		if err != nil {
			return nil, 0, err
		}
		root, used, err := unpickle(data, persid)
		if err == nil {
			return root, int64(used), nil
		}
		if !errors.Is(err, errTruncated) || n == end-off || n == MaxPickleSize {
			return nil, 0, fmt.Errorf("%w (in %s at offset %d)", err, what, off)
		}
		window *= 4
	}
}

// lateReader reads from r at base+off, where base is learned after the
// storage is created (legacy storages follow the pickle that names them).
type lateReader struct {
	r    io.ReaderAt
	base int64
}

func (l *lateReader) ReadAt(p []byte, off int64) (int, error) {
	return l.r.ReadAt(p, l.base+off)
}

type legacyRoot struct {
	st    *tensor.Storage
	lr    *lateReader
	dtype tensor.DType
	numel int64
}

type legacyStorages struct {
	r     io.ReaderAt
	roots map[string]*legacyRoot
}

func (ls *legacyStorages) load(pid any) (any, error) {
	items, err := sequence(pid)
	if err != nil {
		return nil, fmt.Errorf("persistent id: %w", err)
	}
	if len(items) == 4 && asString(items[0]) == "module" {
		if c, ok := items[1].(*classRef); ok {
			return c, nil
		}
		return nil, errors.New("persistent id: module entry without a class")
	}
	if len(items) != 6 || asString(items[0]) != "storage" {
		return nil, fmt.Errorf("persistent id %s is not ('storage', type, key, location, numel, view)", describe(items))
	}
	vt, ok := items[1].(*valueRef)
	if !ok || !vt.dtype.Valid() {
		return nil, fmt.Errorf("persistent id: storage type %s is not a storage class", describe(items[1:2]))
	}
	key := asString(items[2])
	numel, err := toInt(items[4])
	if err != nil || numel < 0 || numel > tensor.MaxElements/8 {
		return nil, fmt.Errorf("persistent id: invalid storage size %s", describe(items[4:5]))
	}
	root := ls.roots[key]
	if root == nil {
		if len(ls.roots) >= MaxStorages {
			return nil, fmt.Errorf("more than %d storages", MaxStorages)
		}
		lr := &lateReader{r: ls.r, base: -1}
		st := tensor.NewStorage(lr, 0, numel*int64(vt.dtype.Size()))
		st.Key = key
		root = &legacyRoot{st: st, lr: lr, dtype: vt.dtype, numel: numel}
		ls.roots[key] = root
	} else if root.dtype != vt.dtype || root.numel != numel {
		return nil, fmt.Errorf("storage %q is referenced as %d %s and as %d %s", key, root.numel, root.dtype, numel, vt.dtype)
	}
	ref := &storageRef{dtype: root.dtype, st: root.st, n: -1}
	if items[5] != nil {
		view, err := sequence(items[5])
		if err != nil || len(view) != 3 {
			return nil, fmt.Errorf("persistent id: invalid storage view %s", describe(items[5:6]))
		}
		off, err1 := toInt(view[1])
		n, err2 := toInt(view[2])
		if err1 != nil || err2 != nil || off < 0 || n < 0 || off > numel || n > numel-off {
			return nil, fmt.Errorf("storage view [%s, +%s) is outside storage %q of %d elements", brief(view[1]), brief(view[2]), key, numel)
		}
		ref.off, ref.n = off, n
	}
	return ref, nil
}

func loadLegacy(r io.ReaderAt, size int64) (*File, error) {
	off := int64(0)
	next := func(persid func(any) (any, error), what string) (any, error) {
		v, n, err := streamPickle(r, off, size, persid, what)
		off += n
		return v, err
	}
	magic, err := next(nil, "legacy magic number")
	if err != nil {
		return nil, err
	}
	if m, ok := magic.(*big.Int); !ok || m.Cmp(legacyMagic) != 0 {
		return nil, fmt.Errorf("pickle: not a PyTorch file: legacy magic number is %s", brief(magic))
	}
	proto, err := next(nil, "legacy protocol version")
	if err != nil {
		return nil, err
	}
	if p, ok := proto.(int64); !ok || p != 1001 {
		return nil, fmt.Errorf("pickle: legacy protocol version %s, want 1001", brief(proto))
	}
	if _, err := next(nil, "legacy sys_info"); err != nil {
		return nil, err
	}
	ls := &legacyStorages{r: r, roots: map[string]*legacyRoot{}}
	root, err := next(ls.load, "legacy object pickle")
	if err != nil {
		return nil, err
	}
	keysV, err := next(nil, "legacy storage keys")
	if err != nil {
		return nil, err
	}
	keys, ok := keysV.([]any)
	if !ok {
		return nil, fmt.Errorf("pickle: legacy storage keys are %T, want a list", keysV)
	}
	if len(keys) != len(ls.roots) {
		return nil, fmt.Errorf("pickle: legacy file lists %d storages, its pickle references %d", len(keys), len(ls.roots))
	}
	for _, k := range keys {
		key := asString(k)
		rt := ls.roots[key]
		if rt == nil || rt.lr.base >= 0 {
			return nil, fmt.Errorf("pickle: legacy storage key %q is unknown or repeated", key)
		}
		var hdr [8]byte
		if off > size-8 {
			return nil, fmt.Errorf("pickle: legacy storage %q: truncated file at offset %d", key, off)
		}
		if _, err := r.ReadAt(hdr[:], off); err != nil {
			return nil, fmt.Errorf("pickle: legacy storage %q: %w", key, err)
		}
		numel := int64(binary.LittleEndian.Uint64(hdr[:]))
		if numel != rt.numel {
			return nil, fmt.Errorf("pickle: legacy storage %q has %d elements at offset %d, its pickle says %d", key, numel, off, rt.numel)
		}
		rt.lr.base = off + 8
		off += 8 + rt.st.Size()
		if off > size {
			return nil, fmt.Errorf("pickle: legacy storage %q runs past the end of the file (%d bytes)", key, size)
		}
	}
	f := &File{Format: FormatLegacy, Root: root}
	if err := f.finish(nil); err != nil {
		return nil, err
	}
	return f, nil
}

// The tar format (torch 0.1.1 to 0.1.9) is a tar archive of four members:
//
//	sys_info  a pickle
//	pickle    the object; a persistent id is the decimal key of a tensor
//	          or storage, or a tuple (cls, source_file, source) for a
//	          module class
//	tensors   pickle(count), then per tensor pickle((key, storage_key,
//	          tensor_type)), int32 ndim, 4 padding bytes, ndim int64 sizes,
//	          ndim int64 strides, int64 storage offset (little-endian)
//	storages  pickle(count), then per storage pickle((key, location,
//	          torch.<T>Storage)), int64 numel, numel elements; then
//	          pickle([(view_key, root_key, offset, numel), ...])

type tarMember struct{ off, size int64 }

func tarMembers(r io.ReaderAt, size int64) (map[string]tarMember, error) {
	sr := io.NewSectionReader(r, 0, size)
	tr := tar.NewReader(sr)
	out := map[string]tarMember{}
	for i := 0; ; i++ {
		if i >= MaxEntries {
			return nil, fmt.Errorf("pickle: tar: more than %d members", MaxEntries)
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("pickle: %w", err) // archive/tar: ...
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if _, dup := out[h.Name]; dup {
			return nil, fmt.Errorf("pickle: tar: duplicate member %q", h.Name)
		}
		pos, _ := sr.Seek(0, io.SeekCurrent)
		if h.Size < 0 || h.Size > size-pos {
			return nil, fmt.Errorf("pickle: tar: member %q of %d bytes runs past the end of the file", h.Name, h.Size)
		}
		out[h.Name] = tarMember{off: pos, size: h.Size}
	}
	for _, name := range []string{"pickle", "tensors", "storages"} {
		if _, ok := out[name]; !ok {
			return nil, fmt.Errorf("pickle: tar: no member %q", name)
		}
	}
	return out, nil
}

// decoded returns the items of a decoded tuple or list.
func decoded(v any) ([]any, error) {
	switch s := v.(type) {
	case Tuple:
		return s, nil
	case []any:
		return s, nil
	}
	return nil, fmt.Errorf("got %T, want a tuple or list", v)
}

func legacyKey(v any) (int64, error) {
	switch k := v.(type) {
	case string, []byte:
		n, err := strconv.ParseInt(asString(k), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("key %q is not a number", asString(k))
		}
		return n, nil
	}
	return toInt(v)
}

func loadTar(r io.ReaderAt, size int64) (*File, error) {
	m, err := tarMembers(r, size)
	if err != nil {
		return nil, err
	}
	objects := map[int64]any{} // *storageRef or *tensor.Tensor by key

	// storages
	sm := m["storages"]
	off, end := sm.off, sm.off+sm.size
	next := func(what string) (any, error) {
		v, n, err := streamPickle(r, off, end, nil, what)
		off += n
		return v, err
	}
	countV, err := next("tar storages count")
	if err != nil {
		return nil, err
	}
	count, err := toInt(countV)
	if err != nil || count < 0 || count > MaxStorages {
		return nil, fmt.Errorf("pickle: tar: invalid storage count %s", brief(countV))
	}
	for i := int64(0); i < count; i++ {
		hv, err := next("tar storage header")
		if err != nil {
			return nil, err
		}
		h, err := decoded(hv)
		if err != nil || len(h) != 3 {
			return nil, fmt.Errorf("pickle: tar: storage header %s is not (key, location, type)", brief(hv))
		}
		key, err := legacyKey(h[0])
		if err != nil {
			return nil, fmt.Errorf("pickle: tar: storage %w", err)
		}
		vt, ok := h[2].(*Global)
		dt := tensor.Invalid
		if ok {
			if s, ok := storageDTypes[vt.Name]; ok {
				dt, _ = tensor.ParseDType(s)
			}
		}
		if !dt.Valid() {
			return nil, fmt.Errorf("pickle: tar: storage %d has type %s, not a storage class", key, brief(h[2]))
		}
		var hdr [8]byte
		if off > end-8 {
			return nil, fmt.Errorf("pickle: tar: storage %d: truncated member", key)
		}
		if _, err := r.ReadAt(hdr[:], off); err != nil {
			return nil, fmt.Errorf("pickle: tar: storage %d: %w", key, err)
		}
		numel := int64(binary.LittleEndian.Uint64(hdr[:]))
		if numel < 0 || numel > (end-off-8)/int64(dt.Size()) {
			return nil, fmt.Errorf("pickle: tar: storage %d of %d elements runs past its member", key, numel)
		}
		st := tensor.NewStorage(r, off+8, numel*int64(dt.Size()))
		st.Key = strconv.FormatInt(key, 10)
		if _, dup := objects[key]; dup {
			return nil, fmt.Errorf("pickle: tar: duplicate storage %d", key)
		}
		objects[key] = &storageRef{dtype: dt, st: st, n: -1}
		off += 8 + st.Size()
	}
	viewsV, err := next("tar storage views")
	if err != nil {
		return nil, err
	}
	views, err := decoded(viewsV)
	if err != nil {
		return nil, fmt.Errorf("pickle: tar: storage views: %w", err)
	}
	for _, vv := range views {
		v, err := decoded(vv)
		if err != nil || len(v) != 4 {
			return nil, fmt.Errorf("pickle: tar: storage view %s is not (key, root, offset, numel)", brief(vv))
		}
		var k [4]int64
		for i := range k {
			if k[i], err = legacyKey(v[i]); err != nil {
				return nil, fmt.Errorf("pickle: tar: storage view: %w", err)
			}
		}
		root, ok := objects[k[1]].(*storageRef)
		numel := int64(0)
		if ok {
			numel = root.st.Size() / int64(root.dtype.Size())
		}
		if !ok || root.n >= 0 || k[2] < 0 || k[3] < 0 || k[2] > numel || k[3] > numel-k[2] {
			return nil, fmt.Errorf("pickle: tar: storage view %d of root %d [%d, +%d) is invalid", k[0], k[1], k[2], k[3])
		}
		objects[k[0]] = &storageRef{dtype: root.dtype, st: root.st, off: k[2], n: k[3]}
	}

	// tensors
	tm := m["tensors"]
	off, end = tm.off, tm.off+tm.size
	countV, err = next("tar tensors count")
	if err != nil {
		return nil, err
	}
	count, err = toInt(countV)
	if err != nil || count < 0 || count > MaxStorages {
		return nil, fmt.Errorf("pickle: tar: invalid tensor count %s", brief(countV))
	}
	for i := int64(0); i < count; i++ {
		hv, err := next("tar tensor header")
		if err != nil {
			return nil, err
		}
		h, err := decoded(hv)
		if err != nil || len(h) != 3 {
			return nil, fmt.Errorf("pickle: tar: tensor header %s is not (key, storage, type)", brief(hv))
		}
		key, err1 := legacyKey(h[0])
		skey, err2 := legacyKey(h[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("pickle: tar: tensor header %s has invalid keys", brief(hv))
		}
		sr, ok := objects[skey].(*storageRef)
		if !ok {
			return nil, fmt.Errorf("pickle: tar: tensor %d refers to unknown storage %d", key, skey)
		}
		var b8 [8]byte
		if off > end-8 {
			return nil, fmt.Errorf("pickle: tar: tensor %d: truncated member", key)
		}
		if _, err := r.ReadAt(b8[:], off); err != nil {
			return nil, fmt.Errorf("pickle: tar: tensor %d: %w", key, err)
		}
		ndim := int64(int32(binary.LittleEndian.Uint32(b8[:4])))
		if ndim < 0 || ndim > 64 {
			return nil, fmt.Errorf("pickle: tar: tensor %d has %d dimensions", key, ndim)
		}
		meta := make([]byte, 16*ndim+8)
		if off+8 > end-int64(len(meta)) {
			return nil, fmt.Errorf("pickle: tar: tensor %d: truncated member", key)
		}
		if _, err := r.ReadAt(meta, off+8); err != nil {
			return nil, fmt.Errorf("pickle: tar: tensor %d: %w", key, err)
		}
		off += 8 + int64(len(meta))
		shape := make([]any, ndim)
		stride := make([]any, ndim)
		for d := range ndim {
			shape[d] = int(int64(binary.LittleEndian.Uint64(meta[8*d:])))
			stride[d] = int(int64(binary.LittleEndian.Uint64(meta[8*(ndim+d):])))
		}
		soff := int(int64(binary.LittleEndian.Uint64(meta[16*ndim:])))
		t, err := rebuildTensor([]any{sr, soff, types.NewTupleFromSlice(shape), types.NewTupleFromSlice(stride)})
		if err != nil {
			return nil, fmt.Errorf("pickle: tar: tensor %d: %w", key, err)
		}
		if _, dup := objects[key]; dup {
			return nil, fmt.Errorf("pickle: tar: duplicate key %d", key)
		}
		objects[key] = t
	}

	// the object
	pm := m["pickle"]
	persid := func(pid any) (any, error) {
		if items, err := sequence(pid); err == nil {
			if len(items) > 0 {
				if c, ok := items[0].(*classRef); ok {
					return c, nil
				}
			}
			return nil, fmt.Errorf("persistent id %s is not a module class", describe(items))
		}
		k, err := legacyKey(pid)
		if err != nil {
			return nil, err
		}
		v, ok := objects[k]
		if !ok {
			return nil, fmt.Errorf("persistent id %d names no tensor or storage", k)
		}
		return v, nil
	}
	root, _, err := streamPickle(r, pm.off, pm.off+pm.size, persid, "tar pickle")
	if err != nil {
		return nil, err
	}
	f := &File{Format: FormatTar, Root: root}
	if err := f.finish(nil); err != nil {
		return nil, err
	}
	return f, nil
}
