package pickle

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"

	gopickle "github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// FormatJoblib is Report.Format for a file joblib.dump wrote: a pickle in
// which each NumPy array is a NumpyArrayWrapper followed by the array's
// bytes, compressed as a whole when dump was given compress=.
const FormatJoblib = "joblib"

// joblibWrapper is the class joblib.dump pickles in place of each array.
const joblibWrapper = "joblib.numpy_pickle.NumpyArrayWrapper"

// MaxJoblibRatio bounds how many bytes a compressed joblib file may
// decompress to, per byte of the file (plus 1 MiB): above deflate's
// largest ratio (1032), which arrays of zeros reach. A stream that goes
// past it is refused as a decompression bomb.
const MaxJoblibRatio = 1100

// joblibCompressors are the compressed formats joblib.load recognises, by
// the prefix it checks (numpy_pickle_utils._detect_compressor), in its
// order; "ZF" is the format of joblib 0.9.3 and before.
var joblibCompressors = []struct{ name, prefix string }{
	{"ZF", "ZF"},
	{"zlib", "\x78"},
	{"gzip", "\x1f\x8b"},
	{"bz2", "BZ"},
	{"lzma", "\x5d\x00"},
	{"xz", "\xfd\x37\x7a\x58\x5a"},
	{"lz4", "\x04\x22\x4d\x18"},
}

// joblibCompression returns the compressor joblib.load takes a file
// starting with head for, or "".
func joblibCompression(head []byte) string {
	for _, c := range joblibCompressors {
		if bytes.HasPrefix(head, []byte(c.prefix)) {
			return c.name
		}
	}
	return ""
}

// joblibArray ends a joblib scan's walk after a BUILD on a
// NumpyArrayWrapper: the array's bytes follow, at end.
type joblibArray struct{ end int }

func (e *joblibArray) Error() string {
	return fmt.Sprintf("pickle: joblib array data at offset %d", e.end)
}

// joblibCompressed scans a file joblib.dump wrote with compression: it
// decompresses the stream, bounded by MaxJoblibRatio, and scans the pickle
// inside as joblibStream does; offsets are in the decompressed stream.
func (s *scanner) joblibCompressed(kind string) {
	s.rep.Format = FormatJoblib
	entry := kind + "-compressed pickle"
	var src io.Reader = io.NewSectionReader(s.r, 0, s.size)
	var zr io.Reader
	var err error
	declared := int64(-1)
	switch kind {
	case "ZF":
		// "ZF", the length in hexadecimal padded to 18 characters, at
		// times one more space, then a zlib stream.
		head := make([]byte, 21)
		n, _ := s.r.ReadAt(head, 0)
		if n < 20 {
			s.fail(fmt.Errorf("pickle: joblib: ZF header truncated"))
			return
		}
		v, perr := strconv.ParseInt(strings.TrimSpace(string(head[2:20])), 0, 64)
		if perr != nil || v < 0 {
			s.fail(fmt.Errorf("pickle: joblib: ZF header length %q is not a hexadecimal number", head[2:20]))
			return
		}
		declared = v
		skip := int64(20)
		if n == 21 && head[20] == ' ' {
			skip = 21
		}
		zr, err = zlib.NewReader(io.NewSectionReader(s.r, skip, s.size-skip))
	case "zlib":
		zr, err = zlib.NewReader(src)
	case "gzip":
		zr, err = gzip.NewReader(src)
	case "bz2":
		zr = bzip2.NewReader(src)
	case "lzma":
		zr, err = lzma.NewReader(bufio.NewReader(src))
	case "xz":
		zr, err = xz.NewReader(bufio.NewReader(src))
	default:
		err = fmt.Errorf("%s compression is not supported", kind)
	}
	if err != nil {
		s.fail(fmt.Errorf("pickle: joblib: %s stream: %w", kind, err))
		return
	}
	lim := &bombLimit{r: zr, kind: kind, max: MaxJoblibRatio*s.size + 1<<20}
	s.joblibStream(lim, entry)
	if declared >= 0 && len(s.rep.Errors) == 0 {
		// joblib checks the ZF length after decompressing it whole.
		if _, err := io.Copy(io.Discard, lim); err != nil {
			s.fail(fmt.Errorf("pickle: joblib: %s", lim.why(err)))
		} else if lim.n != declared {
			s.fail(fmt.Errorf("pickle: joblib: ZF stream decompresses to %d bytes, its header says %d", lim.n, declared))
		}
	}
}

// bombLimit counts a decompressed stream and refuses it past max bytes.
type bombLimit struct {
	r    io.Reader
	kind string
	n    int64
	max  int64
}

var errBomb = errors.New("decompression bomb")

func (b *bombLimit) Read(p []byte) (int, error) {
	if b.n >= b.max {
		return 0, fmt.Errorf("%s stream decompresses past %d bytes, %d times the file's size (a %w?)", b.kind, b.max, MaxJoblibRatio, errBomb)
	}
	if int64(len(p)) > b.max-b.n {
		p = p[:b.max-b.n+1]
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}

func (b *bombLimit) why(err error) string {
	if errors.Is(err, errBomb) {
		return err.Error()
	}
	return fmt.Sprintf("%s stream: %v", b.kind, err)
}

// joblibStream scans the pickle joblib.load reads from r: the pickle's
// opcodes as CPython reads them (see scanPickle), except that after each
// BUILD on a NumpyArrayWrapper it steps over the array's bytes as
// NumpyArrayWrapper.read_array does (a padding byte and the padding when
// the wrapper has numpy_array_alignment_bytes, then the elements) or, for
// an array of objects, scans the pickle of the array that stands there.
// The pickle around the arrays is rescanned whole each time with the
// arrays cut out, so that the stack and memo carry across them.
func (s *scanner) joblibStream(r io.Reader, entry string) {
	br := bufio.NewReaderSize(r, 64<<10)
	var clean []byte        // the pickle so far, arrays cut out
	segs := []joblibSeg{{}} // where the parts of clean are in the stream
	var tail []byte         // stream bytes after clean
	tailOff := int64(0)     // stream offset of tail[0]
	var readErr error
	fill := func(n int) bool {
		if readErr != nil {
			return false
		}
		if !s.budget(int64(n)) {
			readErr = errBudget
			return false
		}
		buf := make([]byte, n)
		m, err := io.ReadFull(br, buf)
		tail = append(tail, buf[:m]...)
		if err != nil {
			readErr = err
		}
		return m > 0
	}
	mapOff := func(off int64) int64 {
		i := len(segs) - 1
		for i > 0 && segs[i].at > off {
			i--
		}
		return segs[i].off + off - segs[i].at
	}
	streamErr := func() error {
		if readErr == nil || readErr == io.EOF || readErr == io.ErrUnexpectedEOF || readErr == errBudget {
			return nil
		}
		if b, ok := r.(*bombLimit); ok {
			return fmt.Errorf("pickle: joblib: %s", b.why(readErr))
		}
		return fmt.Errorf("pickle: joblib: %w", readErr)
	}
	fill(64 << 10)
	window := 64 << 10
	for {
		buf := make([]byte, 0, len(clean)+len(tail))
		buf = append(append(buf, clean...), tail...)
		v := &verifier{data: buf, memo: make(map[int]item), scan: &scanLog{joblib: true, joblibFrom: len(clean)}}
		err := v.run()
		var ja *joblibArray
		if !errors.As(err, &ja) && errors.Is(err, errTruncated) && len(buf) < MaxPickleSize && fill(window) {
			window = min(window*4, MaxPickleSize)
			continue
		}
		for _, f := range v.scan.result(v.pos) {
			if f.Offset >= int64(len(clean)) {
				f.Offset = mapOff(f.Offset)
				s.add(entry, 0, []Finding{f})
			}
		}
		if ja == nil {
			if e := streamErr(); e != nil {
				s.fail(e)
			} else if err != nil {
				s.fail(fmt.Errorf("%w (in %s)", err, entry))
			}
			return
		}
		used := ja.end - len(clean)
		clean = buf[:ja.end]
		tail = tail[used:]
		tailOff += int64(used)
		st, err := joblibState(clean)
		if err != nil {
			s.fail(fmt.Errorf("pickle: joblib: the array wrapper ending at offset %d: %w", mapOff(int64(ja.end)), err))
			return
		}
		// take returns the next n stream bytes past tail's start, or
		// false when the stream ends first.
		skip := func(n int64) bool {
			if k := min(n, int64(len(tail))); k > 0 {
				tail = tail[k:]
				tailOff += k
				n -= k
			}
			if n > 0 && readErr == nil {
				m, err := io.CopyN(io.Discard, br, n)
				tailOff += m
				n -= m
				if err != nil {
					readErr = err
				}
			}
			return n == 0
		}
		switch {
		case st.object:
			// pickle.load of the array's own pickle (protocol 2).
			for {
				fs, used, err := scanPickle(tail, false)
				if err != nil && errors.Is(err, errTruncated) && len(tail) < MaxPickleSize && fill(window) {
					window = min(window*4, MaxPickleSize)
					continue
				}
				s.add(entry+" (array of objects)", tailOff, fs)
				if err != nil {
					if e := streamErr(); e != nil {
						err = e
					}
					s.fail(fmt.Errorf("%w (in the array of objects at offset %d of %s)", err, tailOff, entry))
					return
				}
				skip(int64(used))
				break
			}
		default:
			if st.padded {
				if len(tail) == 0 {
					fill(1)
				}
				if len(tail) == 0 {
					s.fail(fmt.Errorf("pickle: joblib: %s ends before the array at offset %d", entry, tailOff))
					return
				}
				skip(1 + int64(tail[0]))
			}
			if !skip(st.nbytes) {
				if e := streamErr(); e != nil {
					s.fail(e)
					return
				}
				s.fail(fmt.Errorf("pickle: joblib: %s ends inside an array of %d bytes", entry, st.nbytes))
				return
			}
		}
		segs = append(segs, joblibSeg{at: int64(len(clean)), off: tailOff})
		if len(tail) == 0 {
			fill(window)
		}
	}
}

var errBudget = errors.New("scan budget")

// joblibSeg places a part of the cut-out pickle: clean offset at is stream
// offset off.
type joblibSeg struct{ at, off int64 }

// wrapperState is what NumpyArrayWrapper.read_array needs of its state.
type wrapperState struct {
	object bool  // an array of Python objects: a pickle follows
	padded bool  // a padding byte and the padding precede the elements
	nbytes int64 // the elements' size
}

// jbSession decodes a joblib pickle's values with every global an inert
// placeholder: nothing is imported or called.
type jbSession struct {
	rd   *bytes.Reader
	last *jbObject // the wrapper whose BUILD ended the pickle
}

type jbClass struct {
	s    *jbSession
	name string
}

type jbObject struct {
	s     *jbSession
	class string
	args  []any
	state any
}

func (c *jbClass) Call(args ...any) (any, error) {
	return &jbObject{s: c.s, class: c.name, args: args}, nil
}

func (c *jbClass) PyNew(args ...any) (any, error) {
	return &jbObject{s: c.s, class: c.name, args: args}, nil
}

func (o *jbObject) PySetState(state any) error {
	o.state = state
	if o.class == joblibWrapper && o.s.rd.Len() == 0 {
		o.s.last = o
	}
	return nil
}

// joblibState decodes the state of the NumpyArrayWrapper that the BUILD
// ending p (a pickle the scan walked) gives, with gopickle and inert
// placeholders for globals, and computes the size of the array's bytes as
// joblib does: the product of the shape times the dtype's item size.
func joblibState(p []byte) (wrapperState, error) {
	s := &jbSession{rd: bytes.NewReader(p)}
	u := gopickle.NewUnpickler(s.rd)
	u.FindClass = func(module, name string) (any, error) { return &jbClass{s: s, name: module + "." + name}, nil }
	u.PersistentLoad = func(any) (any, error) { return nil, errors.New("persistent id in a joblib pickle") }
	_, err := u.Load()
	if s.last == nil {
		return wrapperState{}, fmt.Errorf("cannot decode its state (%v)", err)
	}
	st, ok := s.last.state.(*types.Dict)
	if !ok {
		return wrapperState{}, fmt.Errorf("state is %T, not a dict", s.last.state)
	}
	get := func(k string) any { v, _ := st.Get(k); return v }
	var out wrapperState
	if a, ok := st.Get("numpy_array_alignment_bytes"); ok && a != nil {
		out.padded = true
	}
	dt, ok := get("dtype").(*jbObject)
	if !ok || dt.class != "numpy.dtype" || len(dt.args) < 1 {
		return out, fmt.Errorf("dtype is %s, not numpy.dtype(...)", brief(get("dtype")))
	}
	code, ok := dt.args[0].(string)
	if !ok {
		return out, fmt.Errorf("dtype code is %s, not a string", brief(dt.args[0]))
	}
	item, object, err := dtypeSize(code, dt.state)
	if err != nil {
		return out, err
	}
	if object {
		out.object = true
		return out, nil
	}
	shape, ok := get("shape").(*types.Tuple)
	if !ok {
		return out, fmt.Errorf("shape is %s, not a tuple", brief(get("shape")))
	}
	n := big.NewInt(item)
	for _, d := range *shape {
		var x *big.Int
		switch v := d.(type) {
		case int:
			x = big.NewInt(int64(v))
		case *big.Int:
			x = v
		default:
			return out, fmt.Errorf("shape holds %s, not an integer", brief(d))
		}
		if x.Sign() < 0 {
			return out, fmt.Errorf("negative dimension %s", x)
		}
		n.Mul(n, x)
	}
	if !n.IsInt64() {
		return out, fmt.Errorf("array of %s bytes", n)
	}
	out.nbytes = n.Int64()
	return out, nil
}

// dtypeSize returns the item size of numpy.dtype(code) with the BUILD
// state st (its elsize, for flexible and structured types, and its flags,
// whose bit 0 says it holds objects), and whether it holds Python objects.
func dtypeSize(code string, st any) (int64, bool, error) {
	if t, ok := st.(*types.Tuple); ok && len(*t) >= 8 {
		flags, _ := (*t)[7].(int)
		if flags&1 != 0 {
			return 0, true, nil
		}
		if el, ok := (*t)[5].(int); ok && el > 0 {
			return int64(el), false, nil
		}
	}
	i := strings.IndexAny(code, "0123456789")
	kind, num := code, ""
	if i >= 0 {
		kind, num = code[:i], code[i:]
	}
	if kind == "O" {
		return 0, true, nil
	}
	n, err := strconv.ParseInt(num, 10, 32)
	if err != nil || n <= 0 {
		return 0, false, fmt.Errorf("dtype %q has no item size", code)
	}
	switch kind {
	case "b", "i", "u", "f", "c", "S", "V", "M", "m", "a":
	case "U":
		n *= 4
	default:
		return 0, false, fmt.Errorf("dtype %q is not one joblib writes", code)
	}
	return n, false, nil
}
