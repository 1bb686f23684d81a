package onnx

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ckptkit/ckpt/tensor"
)

// MaxModelSize is the largest ModelProto protobuf can parse (2 GiB - 1).
// Larger models must keep their initializers in external data.
const MaxModelSize = math.MaxInt32

// WriteOptions controls how a Model is written.
type WriteOptions struct {
	// ExternalData, when not empty, names the file (relative to the model's
	// directory, with '/' separators) that receives the elements of the
	// main graph's initializers of at least ExternalThreshold bytes, as
	// onnx.save_model(save_as_external_data=True) does. Initializers held
	// in typed fields and empty ones stay inline (onnx reads a zero length
	// as "to the end of the file").
	ExternalData string
	// ExternalThreshold is the size in bytes from which an initializer goes
	// to ExternalData; 0 sends them all.
	ExternalThreshold int64
}

// Write writes m to the file at path with every tensor's elements inside
// the model (external data read by Open is embedded as raw_data).
func Write(path string, m *Model) error { return WriteFile(path, m, WriteOptions{}) }

// WriteFile writes m to the file at path and, when opts.ExternalData is
// set, the external data file next to it, and syncs both. Neither may be a
// file the model reads its tensors from. On error, partial files are left:
// callers that need atomicity write to a temporary name and rename.
func WriteFile(path string, m *Model, opts WriteOptions) (err error) {
	dataPath := ""
	if opts.ExternalData != "" {
		if !filepath.IsLocal(filepath.FromSlash(opts.ExternalData)) {
			return fmt.Errorf("onnx: external data name %q is not a relative path inside the model directory", opts.ExternalData)
		}
		dataPath = filepath.Join(filepath.Dir(path), filepath.FromSlash(opts.ExternalData))
	}
	for _, p := range []string{path, dataPath} {
		if p != "" && m.readsFrom(p) {
			return fmt.Errorf("onnx: cannot write %s: the model reads its tensors from it", p)
		}
	}
	var data *os.File
	if dataPath != "" {
		if data, err = os.Create(dataPath); err != nil {
			return fmt.Errorf("onnx: %w", err)
		}
		defer func() {
			if cerr := data.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("onnx: %w", cerr)
			}
		}()
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("onnx: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("onnx: %w", cerr)
		}
	}()
	var dw io.Writer
	if data != nil {
		dw = data
	}
	if _, err = Encode(f, m, opts, dw); err != nil {
		return err
	}
	for _, file := range []*os.File{data, f} {
		if file != nil {
			if err := file.Sync(); err != nil {
				return fmt.Errorf("onnx: %w", err)
			}
		}
	}
	return nil
}

// readsFrom reports whether path is one of the files the model has open.
func (m *Model) readsFrom(path string) bool {
	st, err := os.Stat(path)
	if err != nil {
		return false
	}
	for _, c := range m.closers {
		if f, ok := c.(*os.File); ok {
			if fst, err := f.Stat(); err == nil && os.SameFile(st, fst) {
				return true
			}
		}
	}
	return false
}

// Marshal returns the encoding of m, every tensor's elements inside it.
func Marshal(m *Model) ([]byte, error) {
	var b bytes.Buffer
	if _, err := Encode(&b, m, WriteOptions{}, nil); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteTo writes the encoding of m to w, every tensor's elements inside it.
func (m *Model) WriteTo(w io.Writer) (int64, error) { return Encode(w, m, WriteOptions{}, nil) }

// Encode writes m to w as a ModelProto and, when opts.ExternalData is set,
// the elements of the initializers it selects to data, back to back in
// graph order (their offsets are recorded in the model). Fields are written
// in field-number order followed by the fields kept unknown, as protobuf's
// serializers do, so a model read and written unchanged keeps its bytes
// (except external data, which is embedded unless opts selects it again).
// Tensor elements are streamed from their source. It returns the bytes
// written to w.
func Encode(w io.Writer, m *Model, opts WriteOptions, data io.Writer) (int64, error) {
	plan := map[*TensorProto]extRef{}
	if opts.ExternalData != "" {
		if data == nil {
			return 0, fmt.Errorf("onnx: external data %q requested without a writer for it", opts.ExternalData)
		}
		var off int64
		var order []*TensorProto
		if m.Graph != nil {
			for _, t := range m.Graph.Initializer {
				n, ok := t.streamable()
				if !ok || n == 0 || n < opts.ExternalThreshold {
					continue
				}
				if _, dup := plan[t]; dup {
					continue
				}
				plan[t] = extRef{loc: opts.ExternalData, off: off, n: n}
				order = append(order, t)
				off += n
			}
		}
		bw := bufio.NewWriterSize(data, 1<<20)
		for _, t := range order {
			if err := t.copyData(bw, plan[t].n); err != nil {
				return 0, fmt.Errorf("onnx: initializer %q: %w", t.Name, err)
			}
		}
		if err := bw.Flush(); err != nil {
			return 0, fmt.Errorf("onnx: writing external data: %w", err)
		}
	}
	size := &encoder{plan: plan}
	size.model(m)
	if size.err != nil {
		return 0, size.err
	}
	if size.n > MaxModelSize {
		return 0, fmt.Errorf("onnx: model of %d bytes exceeds protobuf's 2 GiB limit; write initializers as external data", size.n)
	}
	// The size is known: a small model gets a small buffer (a fixed 1 MiB,
	// zeroed on every call, was most of the time of encoding a small model).
	bw := bufio.NewWriterSize(w, int(min(max(size.n, 4096), 1<<20)))
	e := &encoder{w: bw, plan: plan}
	e.model(m)
	if e.err == nil {
		e.err = bw.Flush()
	}
	if e.err == nil && e.n != size.n {
		e.err = fmt.Errorf("onnx: internal error: wrote %d bytes, sized %d", e.n, size.n)
	}
	return e.n, e.err
}

// extRef places a tensor's elements in the external data file being written.
type extRef struct {
	loc    string
	off, n int64
}

// streamable returns the byte size of a tensor's elements when they can be
// copied as bytes (raw_data, SetData, resolved external data).
func (t *TensorProto) streamable() (int64, bool) {
	switch {
	case t.data != nil:
		return t.data.NumBytes(), true
	case t.DataLocation == LocationExternal:
		if t.ext != nil {
			return t.ext.Size(), true
		}
		return 0, false
	case t.raw != nil:
		return t.raw.Size(), true
	}
	return 0, false
}

// copyData writes the n bytes of a streamable tensor's elements to w.
func (t *TensorProto) copyData(w io.Writer, n int64) error {
	var got int64
	var err error
	switch {
	case t.data != nil:
		got, err = t.data.WriteTo(w)
	case t.DataLocation == LocationExternal:
		got, err = storageCopier(t.ext)(w)
	default:
		got, err = storageCopier(t.raw)(w)
	}
	if err == nil && got != n {
		err = fmt.Errorf("wrote %d bytes of elements, want %d", got, n)
	}
	return err
}

// storageCopier returns a function that copies all of s to a writer.
func storageCopier(s *tensor.Storage) func(io.Writer) (int64, error) {
	return func(w io.Writer) (int64, error) {
		return io.Copy(w, io.NewSectionReader(s, 0, s.Size()))
	}
}

// encoder writes protobuf fields, or only counts their bytes when w is nil.
// Nested messages are counted first to write their length prefix.
type encoder struct {
	w    *bufio.Writer
	n    int64
	err  error
	plan map[*TensorProto]extRef
	tmp  [10]byte // one varint or fixed64
}

func (e *encoder) write(b []byte) {
	e.n += int64(len(b))
	if e.w != nil && e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *encoder) varint(v uint64) { e.write(protowire.AppendVarint(e.tmp[:0], v)) }

func (e *encoder) tag(num int, typ protowire.Type) {
	e.varint(uint64(protowire.EncodeTag(protowire.Number(num), typ)))
}

func (e *encoder) int64f(w *wire, num int, v int64) {
	if v != 0 || w.present(num) {
		e.tag(num, protowire.VarintType)
		e.varint(uint64(v))
	}
}

func (e *encoder) int32f(w *wire, num int, v int32) { e.int64f(w, num, int64(v)) }

func (e *encoder) lenPrefixed(num int, b []byte) {
	e.tag(num, protowire.BytesType)
	e.varint(uint64(len(b)))
	e.write(b)
}

func (e *encoder) strf(w *wire, num int, s string) {
	if s != "" || w.present(num) {
		e.tag(num, protowire.BytesType)
		e.varint(uint64(len(s)))
		e.n += int64(len(s))
		if e.w != nil && e.err == nil {
			_, e.err = e.w.WriteString(s)
		}
	}
}

func (e *encoder) strs(num int, ss []string) {
	var none wire
	for _, s := range ss {
		none.set(num)
		e.strf(&none, num, s)
	}
}

func (e *encoder) rawf(num int, b RawMessage) {
	if b != nil {
		e.lenPrefixed(num, b)
	}
}

func (e *encoder) raws(num int, bs []RawMessage) {
	for _, b := range bs {
		e.lenPrefixed(num, b)
	}
}

// message writes a length-delimited sub-message whose fields body writes.
func (e *encoder) message(num int, body func(*encoder)) {
	c := &encoder{plan: e.plan}
	body(c)
	if c.err != nil {
		e.err = c.err
		return
	}
	e.tag(num, protowire.BytesType)
	e.varint(uint64(c.n))
	if e.w == nil {
		e.n += c.n
		return
	}
	start := e.n
	body(e)
	if e.err == nil && e.n-start != c.n {
		e.err = fmt.Errorf("onnx: internal error: message %d wrote %d bytes, sized %d", num, e.n-start, c.n)
	}
}

// packedVarints writes repeated varints, packed or one tag each.
func (e *encoder) varints(num int, n int, at func(i int) uint64, packed bool) {
	if n == 0 {
		return
	}
	if !packed {
		for i := range n {
			e.tag(num, protowire.VarintType)
			e.varint(at(i))
		}
		return
	}
	size := 0
	for i := range n {
		size += protowire.SizeVarint(at(i))
	}
	e.tag(num, protowire.BytesType)
	e.varint(uint64(size))
	for i := range n {
		e.varint(at(i))
	}
}

func (e *encoder) fixed32s(num int, vs []float32, packed bool) {
	if len(vs) == 0 {
		return
	}
	if packed {
		e.tag(num, protowire.BytesType)
		e.varint(uint64(4 * len(vs)))
	}
	for _, v := range vs {
		if !packed {
			e.tag(num, protowire.Fixed32Type)
		}
		e.write(protowire.AppendFixed32(e.tmp[:0], math.Float32bits(v)))
	}
}

func (e *encoder) fixed64s(num int, vs []float64, packed bool) {
	if len(vs) == 0 {
		return
	}
	if packed {
		e.tag(num, protowire.BytesType)
		e.varint(uint64(8 * len(vs)))
	}
	for _, v := range vs {
		if !packed {
			e.tag(num, protowire.Fixed64Type)
		}
		e.write(protowire.AppendFixed64(e.tmp[:0], math.Float64bits(v)))
	}
}

func (e *encoder) model(m *Model) {
	w := &m.wire
	e.int64f(w, 1, m.IRVersion)
	e.strf(w, 2, m.ProducerName)
	e.strf(w, 3, m.ProducerVersion)
	e.strf(w, 4, m.Domain)
	e.int64f(w, 5, m.ModelVersion)
	e.strf(w, 6, m.DocString)
	if m.Graph != nil {
		e.message(7, func(e *encoder) { e.graph(m.Graph) })
	}
	for _, o := range m.OpsetImport {
		e.message(8, func(e *encoder) {
			e.strf(&o.wire, 1, o.Domain)
			e.int64f(&o.wire, 2, o.Version)
			e.write(o.unknown)
		})
	}
	e.entries(14, m.MetadataProps)
	e.raws(20, m.TrainingInfo)
	e.raws(25, m.Functions)
	e.write(w.unknown)
}

func (e *encoder) entries(num int, es []*StringStringEntry) {
	for _, s := range es {
		e.message(num, func(e *encoder) {
			e.strf(&s.wire, 1, s.Key)
			e.strf(&s.wire, 2, s.Value)
			e.write(s.unknown)
		})
	}
}

func (e *encoder) graph(g *Graph) {
	w := &g.wire
	for _, n := range g.Node {
		e.message(1, func(e *encoder) { e.node(n) })
	}
	e.strf(w, 2, g.Name)
	for _, t := range g.Initializer {
		e.message(5, func(e *encoder) { e.tensor(t) })
	}
	e.strf(w, 10, g.DocString)
	for _, v := range g.Input {
		e.message(11, func(e *encoder) { e.valueInfo(v) })
	}
	for _, v := range g.Output {
		e.message(12, func(e *encoder) { e.valueInfo(v) })
	}
	for _, v := range g.ValueInfo {
		e.message(13, func(e *encoder) { e.valueInfo(v) })
	}
	e.raws(14, g.QuantizationAnnotation)
	e.raws(15, g.SparseInitializer)
	e.write(w.unknown)
}

func (e *encoder) node(n *Node) {
	w := &n.wire
	e.strs(1, n.Input)
	e.strs(2, n.Output)
	e.strf(w, 3, n.Name)
	e.strf(w, 4, n.OpType)
	for _, a := range n.Attribute {
		e.message(5, func(e *encoder) { e.attribute(a) })
	}
	e.strf(w, 6, n.DocString)
	e.strf(w, 7, n.Domain)
	e.write(w.unknown)
}

func (e *encoder) attribute(a *Attribute) {
	w := &a.wire
	e.strf(w, 1, a.Name)
	if math.Float32bits(a.F) != 0 || w.present(2) {
		e.tag(2, protowire.Fixed32Type)
		e.write(protowire.AppendFixed32(e.tmp[:0], math.Float32bits(a.F)))
	}
	e.int64f(w, 3, a.I)
	if len(a.S) > 0 || w.present(4) {
		e.lenPrefixed(4, a.S)
	}
	if a.T != nil {
		e.message(5, func(e *encoder) { e.tensor(a.T) })
	}
	if a.G != nil {
		e.message(6, func(e *encoder) { e.graph(a.G) })
	}
	e.fixed32s(7, a.Floats, w.isAlt(7))
	e.varints(8, len(a.Ints), func(i int) uint64 { return uint64(a.Ints[i]) }, w.isAlt(8))
	for _, s := range a.Strings {
		e.lenPrefixed(9, s)
	}
	for _, t := range a.Tensors {
		e.message(10, func(e *encoder) { e.tensor(t) })
	}
	for _, g := range a.Graphs {
		e.message(11, func(e *encoder) { e.graph(g) })
	}
	e.strf(w, 13, a.DocString)
	if a.TP != nil {
		e.message(14, func(e *encoder) { e.typeProto(a.TP) })
	}
	for _, t := range a.TypeProtos {
		e.message(15, func(e *encoder) { e.typeProto(t) })
	}
	e.int32f(w, 20, int32(a.Type))
	e.strf(w, 21, a.RefAttrName)
	e.rawf(22, a.SparseTensor)
	e.raws(23, a.SparseTensors)
	e.write(w.unknown)
}

func (e *encoder) valueInfo(v *ValueInfo) {
	e.strf(&v.wire, 1, v.Name)
	if v.Type != nil {
		e.message(2, func(e *encoder) { e.typeProto(v.Type) })
	}
	e.strf(&v.wire, 3, v.DocString)
	e.write(v.unknown)
}

func (e *encoder) typeProto(t *Type) {
	if t.Tensor != nil {
		e.message(1, func(e *encoder) { e.tensorType(t.Tensor) })
	}
	if s := t.Sequence; s != nil {
		e.message(4, func(e *encoder) {
			if s.ElemType != nil {
				e.message(1, func(e *encoder) { e.typeProto(s.ElemType) })
			}
			e.write(s.unknown)
		})
	}
	if m := t.Map; m != nil {
		e.message(5, func(e *encoder) {
			e.int32f(&m.wire, 1, int32(m.KeyType))
			if m.ValueType != nil {
				e.message(2, func(e *encoder) { e.typeProto(m.ValueType) })
			}
			e.write(m.unknown)
		})
	}
	e.strf(&t.wire, 6, t.Denotation)
	e.rawf(7, t.Opaque)
	if t.SparseTensor != nil {
		e.message(8, func(e *encoder) { e.tensorType(t.SparseTensor) })
	}
	if o := t.Optional; o != nil {
		e.message(9, func(e *encoder) {
			if o.ElemType != nil {
				e.message(1, func(e *encoder) { e.typeProto(o.ElemType) })
			}
			e.write(o.unknown)
		})
	}
	e.write(t.unknown)
}

func (e *encoder) tensorType(t *TensorType) {
	e.int32f(&t.wire, 1, int32(t.ElemType))
	if s := t.Shape; s != nil {
		e.message(2, func(e *encoder) {
			for _, d := range s.Dim {
				e.message(1, func(e *encoder) {
					e.int64f(&d.wire, 1, d.Value)
					e.strf(&d.wire, 2, d.Param)
					e.strf(&d.wire, 3, d.Denotation)
					e.write(d.unknown)
				})
			}
			e.write(s.unknown)
		})
	}
	e.write(t.unknown)
}

// tensor writes a TensorProto. Its elements go, in this order of
// preference: to the external data file being written (when planned);
// into raw_data when they were read from external data; as stored.
func (e *encoder) tensor(t *TensorProto) {
	w := &t.wire
	ref, external := e.plan[t]
	embed := !external && t.DataLocation == LocationExternal && t.ext != nil
	asStored := !external && !embed
	e.varints(1, len(t.Dims), func(i int) uint64 { return uint64(t.Dims[i]) }, w.isAlt(1))
	e.int32f(w, 2, int32(t.DataType))
	e.rawf(3, t.Segment)
	if asStored {
		e.fixed32s(4, t.FloatData, !w.isAlt(4))
		e.varints(5, len(t.Int32Data), func(i int) uint64 { return uint64(int64(t.Int32Data[i])) }, !w.isAlt(5))
		for _, s := range t.StringData {
			e.lenPrefixed(6, s)
		}
		e.varints(7, len(t.Int64Data), func(i int) uint64 { return uint64(t.Int64Data[i]) }, !w.isAlt(7))
	}
	e.strf(w, 8, t.Name)
	var src func(io.Writer) (int64, error)
	var n int64
	switch {
	case embed:
		n, src = t.ext.Size(), storageCopier(t.ext)
	case asStored && t.data != nil:
		n, src = t.data.NumBytes(), t.data.WriteTo
	case asStored && t.raw != nil:
		n, src = t.raw.Size(), storageCopier(t.raw)
	}
	if src != nil {
		e.tag(9, protowire.BytesType)
		e.varint(uint64(n))
		e.n += n
		if e.w != nil && e.err == nil {
			got, err := src(e.w)
			if err == nil && got != n {
				err = fmt.Errorf("wrote %d bytes of elements, want %d", got, n)
			}
			if err != nil {
				e.err = fmt.Errorf("onnx: tensor %q: %w", t.Name, err)
			}
		}
	}
	if asStored {
		e.fixed64s(10, t.DoubleData, !w.isAlt(10))
		e.varints(11, len(t.Uint64Data), func(i int) uint64 { return t.Uint64Data[i] }, !w.isAlt(11))
	}
	e.strf(w, 12, t.DocString)
	switch {
	case external:
		e.entries(13, []*StringStringEntry{
			{Key: "location", Value: ref.loc},
			{Key: "offset", Value: strconv.FormatInt(ref.off, 10)},
			{Key: "length", Value: strconv.FormatInt(ref.n, 10)},
		})
		e.int32f(w, 14, int32(LocationExternal))
	case asStored:
		e.entries(13, t.ExternalData)
		e.int32f(w, 14, int32(t.DataLocation))
	}
	e.write(w.unknown)
}

// MarshalTensor returns the encoding of a TensorProto, as UnmarshalTensor
// reads it.
func MarshalTensor(t *TensorProto) ([]byte, error) {
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	e := &encoder{w: bw}
	e.tensor(t)
	if e.err == nil {
		e.err = bw.Flush()
	}
	if e.err != nil {
		return nil, e.err
	}
	return b.Bytes(), nil
}
