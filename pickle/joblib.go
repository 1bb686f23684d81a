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
	"github.com/pierrec/lz4/v4"
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
	case "lz4":
		zr = lz4.NewReader(src) // the LZ4 frame format of lz4.frame
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

// MaxJoblibArrays bounds the arrays of one joblib file that Scan steps over.
const MaxJoblibArrays = 1 << 16

// joblibStream scans the pickle joblib.load reads from r: the pickle's
// opcodes as CPython reads them (see scanPickle), except that after each
// BUILD on a NumpyArrayWrapper it steps over the array's bytes as
// NumpyArrayWrapper.read_array does (a padding byte and the padding when
// the wrapper has numpy_array_alignment_bytes, then the elements) or, for
// an array of objects, scans the pickle of the array that stands there.
// The arrays are cut out of the pickle, and one walk goes on across them,
// so that the stack and the memo carry over; a decoder (gopickle, every
// global an inert placeholder) is fed the walked bytes to give each
// wrapper's state. Each byte is walked once, except when a part of the
// pickle is longer than what was read ahead: the walk then starts again,
// with a read-ahead four times longer.
func (s *scanner) joblibStream(r io.Reader, entry string) {
	br := bufio.NewReaderSize(r, 64<<10)
	var data []byte         // the pickle walked so far, arrays cut out, then read-ahead
	segs := []joblibSeg{{}} // where the parts of data are in the stream
	streamOff := int64(0)   // stream offset of data's end
	var readErr error
	var pending [][]byte // read ahead and put back by cut, before br
	npending := 0
	// ensure reads ahead so that data holds n bytes past pos, or the
	// stream's end.
	ensure := func(pos, n int) {
		for len(data)-pos < n && len(pending) > 0 {
			k := min(n-(len(data)-pos), len(pending[0]))
			data = append(data, pending[0][:k]...)
			if pending[0] = pending[0][k:]; len(pending[0]) == 0 {
				pending = pending[1:]
			}
			npending -= k
		}
		for readErr == nil && len(data)-pos < n {
			k := min(n-(len(data)-pos), 1<<20)
			old := len(data)
			data = append(data, make([]byte, k)...)
			m, err := io.ReadFull(br, data[old:])
			data = data[:old+m]
			streamOff += int64(m)
			if err != nil {
				readErr = err
			}
		}
	}
	mapOff := func(off int64) int64 {
		i := len(segs) - 1
		for i > 0 && segs[i].at > off {
			i--
		}
		return segs[i].off + off - segs[i].at
	}
	streamErr := func() error {
		if readErr == nil || readErr == io.EOF || readErr == io.ErrUnexpectedEOF {
			return nil
		}
		if b, ok := r.(*bombLimit); ok {
			return fmt.Errorf("pickle: joblib: %s", b.why(readErr))
		}
		return fmt.Errorf("pickle: joblib: %w", readErr)
	}
	// cut removes n stream bytes at data[pos:]: the read-ahead first,
	// then the stream. It reports whether the stream held them all.
	cut := func(pos int, n int64) bool {
		k := min(n, int64(len(data)-pos))
		// What was read ahead past the cut goes back before the stream
		// (copied once, not moved down on every later cut).
		if rest := data[pos+int(k):]; len(rest) > 0 {
			pending = append([][]byte{append([]byte(nil), rest...)}, pending...)
			npending += len(rest)
		}
		data = data[:pos]
		n -= k
		for n > 0 && len(pending) > 0 {
			k := min(n, int64(len(pending[0])))
			if pending[0] = pending[0][k:]; len(pending[0]) == 0 {
				pending = pending[1:]
			}
			npending -= int(k)
			n -= k
		}
		if n > 0 && readErr == nil {
			m, err := io.CopyN(io.Discard, br, n)
			streamOff += m
			n -= m
			if err != nil {
				readErr = err
			}
		}
		// data[pos:] will start at this stream offset.
		segs = append(segs, joblibSeg{at: int64(pos), off: streamOff - int64(npending)})
		return n == 0
	}
	dec := newJoblibDecoder()
	defer dec.close()
	window := 16 << 10
	ensure(0, window)
	from, fed, reported := 0, 0, 0
	walked := int64(0)
	newWalk := func() *verifier {
		return &verifier{data: data, memo: make(map[int]item), scan: &scanLog{joblib: true, joblibFrom: from}}
	}
	v := newWalk()
	for arrays := 0; ; {
		start := v.pos
		v.data = data
		err := v.run()
		data = v.data // a patched copy, at times (see verifier.patch)
		walked += int64(v.pos - start)
		var ja *joblibArray
		if !errors.As(err, &ja) && errors.Is(err, errTruncated) && readErr == nil && len(data) < MaxPickleSize {
			// Start again from the top with more read ahead; the arrays
			// cut out so far stay out.
			if !s.budget(int64(len(data))) {
				return
			}
			window = min(window*4, MaxPickleSize)
			ensure(from, window)
			v = newWalk()
			continue
		}
		stop := v.pos
		for _, f := range v.scan.findings {
			if f.Offset >= int64(reported) && f.Offset < int64(stop) || ja == nil && f.Offset >= int64(stop) {
				f.Offset = mapOff(f.Offset)
				s.add(entry, 0, []Finding{f})
			}
		}
		reported = stop
		if ja == nil {
			s.add(entry, 0, v.scan.result(stop)[len(v.scan.findings):])
			if e := streamErr(); e != nil {
				s.fail(e)
			} else if err != nil {
				s.fail(fmt.Errorf("%w (in %s)", err, entry))
			} else if s.namesCompanionWrapper() {
				dec.finish(data[fed:stop])
				for _, c := range dec.companions {
					c.Entry, c.Offset = entry, mapOff(c.Offset)
					s.rep.Companions = append(s.rep.Companions, c)
				}
			}
			return
		}
		if arrays++; arrays > MaxJoblibArrays {
			s.fail(fmt.Errorf("pickle: joblib: %s holds more than %d arrays", entry, MaxJoblibArrays))
			return
		}
		if !s.budget(int64(ja.end - fed)) {
			return
		}
		st, err := dec.state(data[fed:ja.end])
		fed = ja.end
		if err != nil {
			s.fail(fmt.Errorf("pickle: joblib: the array wrapper ending at offset %d: %w", mapOff(int64(ja.end)), err))
			return
		}
		pos := ja.end
		switch {
		case st.object:
			// pickle.load of the array's own pickle (protocol 2).
			for w := window; ; w = min(w*4, MaxPickleSize) {
				ensure(pos, w)
				fs, used, err := scanPickle(data[pos:], false)
				if err != nil && errors.Is(err, errTruncated) && readErr == nil && len(data)-pos < MaxPickleSize {
					continue
				}
				at := mapOff(int64(pos))
				s.add(entry+" (array of objects)", at, fs)
				if err != nil {
					if e := streamErr(); e != nil {
						err = e
					}
					s.fail(fmt.Errorf("%w (in the array of objects at offset %d of %s)", err, at, entry))
					return
				}
				if !s.budget(int64(used)) {
					return
				}
				cut(pos, int64(used))
				break
			}
		default:
			n := st.nbytes
			if st.padded {
				ensure(pos, 1)
				if len(data) == pos {
					s.fail(fmt.Errorf("pickle: joblib: %s ends before the array at offset %d", entry, mapOff(int64(pos))))
					return
				}
				n += 1 + int64(data[pos])
			}
			if !cut(pos, n) {
				if e := streamErr(); e != nil {
					s.fail(e)
					return
				}
				s.fail(fmt.Errorf("pickle: joblib: %s ends inside an array of %d bytes", entry, st.nbytes))
				return
			}
		}
		from = pos
		window = 16 << 10
		ensure(pos, window)
	}
}

// joblibSeg places a part of the cut-out pickle: clean offset at is stream
// offset off.
type joblibSeg struct{ at, off int64 }

// wrapperState is what NumpyArrayWrapper.read_array needs of its state.
type wrapperState struct {
	object bool  // an array of Python objects: a pickle follows
	padded bool  // a padding byte and the padding precede the elements
	nbytes int64 // the elements' size
}

// joblibDecoder decodes a joblib pickle's values as its walk goes, with
// gopickle and every global an inert placeholder (nothing is imported or
// called), to give each NumpyArrayWrapper's state at its BUILD. It is fed
// only bytes the walk has checked, so gopickle allocates within the
// walk's limits.
type joblibDecoder struct {
	feed   chan []byte
	hungry chan struct{} // the decoder asks for bytes
	states chan any      // each wrapper's state, as BUILD gives it
	quit   chan struct{}
	done   chan struct{}
	err    error // why the decoder stopped, once done is closed
	buf    []byte
	// consumed counts the bytes gopickle has read; companions are the
	// companion files of the wrappers decoded so far (see Companion).
	consumed   int64
	companions []Companion
}

func newJoblibDecoder() *joblibDecoder {
	d := &joblibDecoder{feed: make(chan []byte), hungry: make(chan struct{}), states: make(chan any), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		u := gopickle.NewUnpickler(d)
		u.FindClass = func(module, name string) (any, error) { return &jbClass{d: d, name: module + "." + name}, nil }
		u.PersistentLoad = func(any) (any, error) { return nil, errors.New("persistent id in a joblib pickle") }
		_, err := u.Load()
		if err == nil {
			err = errors.New("the pickle ended")
		}
		d.err = fmt.Errorf("cannot decode its state (%w)", err)
	}()
	return d
}

// Read gives gopickle the bytes fed, blocking until there are some.
func (d *joblibDecoder) Read(p []byte) (int, error) {
	for len(d.buf) == 0 {
		select {
		case d.hungry <- struct{}{}:
		case <-d.quit:
			return 0, io.EOF
		}
		select {
		case d.buf = <-d.feed:
		case <-d.quit:
			return 0, io.EOF
		}
	}
	n := copy(p, d.buf)
	d.buf = d.buf[n:]
	d.consumed += int64(n)
	return n, nil
}

// state feeds b, the walked bytes through the next wrapper's BUILD, and
// returns what read_array needs of that wrapper's state.
func (d *joblibDecoder) state(b []byte) (wrapperState, error) {
	select {
	case <-d.hungry:
	case <-d.states:
		return wrapperState{}, errors.New("the decoder found a wrapper the walk did not")
	case <-d.done:
		return wrapperState{}, d.err
	}
	d.feed <- append([]byte(nil), b...)
	select {
	case x := <-d.states:
		return wrapperStateOf(x)
	case <-d.hungry:
		// It read every byte fed without reaching the wrapper's BUILD.
		return wrapperState{}, errors.New("the decoder found no wrapper where the walk did")
	case <-d.done:
		return wrapperState{}, d.err
	}
}

// finish feeds b, the walked bytes through the pickle's STOP, and waits
// until the decoder has read them, for the companions they name.
func (d *joblibDecoder) finish(b []byte) {
	for fed := false; ; {
		select {
		case <-d.hungry:
			if fed {
				return
			}
			d.feed <- append([]byte(nil), b...)
			fed = true
		case <-d.states:
			// A wrapper the walk did not see: the walk has the last word.
		case <-d.done:
			return
		}
	}
}

// close ends the decoder's goroutine.
func (d *joblibDecoder) close() {
	close(d.quit)
	<-d.done
}

type jbClass struct {
	d    *joblibDecoder
	name string
}

type jbObject struct {
	d       *joblibDecoder
	class   string
	args    []any
	state   any
	wrapper bool // made by NEWOBJ of NumpyArrayWrapper, as the walk marks it
	// filename is a companion wrapper's file name (see Companion).
	filename any
}

func (c *jbClass) Call(args ...any) (any, error) {
	if c.name == "copyreg._reconstructor" || c.name == "copy_reg._reconstructor" {
		// copyreg._reconstructor(cls, object, None) makes a cls, as the
		// walk's joblibReconstructor reads it.
		if len(args) == 3 {
			cls, ok1 := args[0].(*jbClass)
			base, ok2 := args[1].(*jbClass)
			if ok1 && ok2 && cls.name == joblibWrapper && (base.name == "builtins.object" || base.name == "__builtin__.object") {
				return &jbObject{d: c.d, class: cls.name, wrapper: true}, nil
			}
		}
	}
	o := &jbObject{d: c.d, class: c.name, args: args}
	if _, ok := companionWrappers[c.name]; ok && len(args) > 0 {
		o.filename = args[0] // NDArrayWrapper(filename, ...)
	}
	return o, nil
}

func (c *jbClass) PyNew(args ...any) (any, error) {
	return &jbObject{d: c.d, class: c.name, args: args, wrapper: c.name == joblibWrapper}, nil
}

func (o *jbObject) PySetState(state any) error {
	o.state = state
	if pickled, ok := companionWrappers[o.class]; ok {
		o.d.companion(o, state, pickled)
	}
	if o.wrapper && o.d.states != nil {
		select {
		case o.d.states <- state:
		case <-o.d.quit:
			return errors.New("decoder closed")
		}
	}
	return nil
}

// wrapperStateOf computes, from a NumpyArrayWrapper's state, the size of
// the array's bytes as joblib does: the product of the shape times the
// dtype's item size.
func wrapperStateOf(state any) (wrapperState, error) {
	st, ok := state.(*types.Dict)
	if !ok {
		return wrapperState{}, fmt.Errorf("state is %T, not a dict", state)
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
