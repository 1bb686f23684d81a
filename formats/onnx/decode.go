package onnx

import (
	"fmt"
	"io"
	"math"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ckptkit/ckpt/tensor"
)

// MaxDepth bounds the nesting of messages the reader follows (a graph in an
// attribute of a node of a graph is three levels below that graph). It is
// protobuf's own default recursion limit.
const MaxDepth = 100

// MaxMessages bounds the number of messages (nodes, attributes, tensors,
// value infos, ...) one model may contain, so that the memory decoded
// structures take stays within a small multiple of typical models (a large
// transformer graph has some 10^5) even when the input packs millions of
// empty messages into few bytes.
const MaxMessages = 1 << 22

// readBuf is the size of the decoder's read-ahead window.
const readBuf = 64 << 10

// FormatError reports a malformed protobuf encoding at a byte offset of the
// input.
type FormatError struct {
	Offset int64
	Msg    string
}

// Error formats the error with its offset.
func (e *FormatError) Error() string { return fmt.Sprintf("onnx: offset %d: %s", e.Offset, e.Msg) }

// Tags: field number << 3 | wire type.
func tv(n int) uint64   { return uint64(n)<<3 | uint64(protowire.VarintType) }
func tl(n int) uint64   { return uint64(n)<<3 | uint64(protowire.BytesType) }
func tf32(n int) uint64 { return uint64(n)<<3 | uint64(protowire.Fixed32Type) }
func tf64(n int) uint64 { return uint64(n)<<3 | uint64(protowire.Fixed64Type) }

// decoder reads protobuf messages from an io.ReaderAt through a read-ahead
// window, so that large bytes fields (raw_data) can be skipped and recorded
// as ranges of the input instead of being read.
type decoder struct {
	r      io.ReaderAt
	size   int64
	buf    []byte
	bufOff int64 // input offset of buf[0]
	pos    int64 // input offset of the next byte
	limit  int64 // end of the message being read
	depth  int
	count  int // messages read
	maxMsg int // MaxMessages, lowered by tests

	tensors []*TensorProto // every TensorProto decoded, for external data resolution
}

func newDecoder(r io.ReaderAt, size int64) *decoder {
	return &decoder{r: r, size: size, limit: size, maxMsg: MaxMessages}
}

func (d *decoder) errorf(format string, args ...any) error {
	return &FormatError{Offset: d.pos, Msg: fmt.Sprintf(format, args...)}
}

// window returns the buffered bytes from pos, at least n of them unless the
// current message ends sooner, and never past the current message's end.
func (d *decoder) window(n int) ([]byte, error) {
	left := d.limit - d.pos
	if int64(n) > left {
		n = int(left)
	}
	if i := d.pos - d.bufOff; i >= 0 && i <= int64(len(d.buf)) && int64(len(d.buf))-i >= int64(n) {
		b := d.buf[i:]
		return b[:min(int64(len(b)), left)], nil
	}
	want := int(min(max(int64(n), readBuf), d.size-d.pos))
	if cap(d.buf) < want {
		d.buf = make([]byte, want)
	}
	d.buf = d.buf[:want]
	m, err := d.r.ReadAt(d.buf, d.pos)
	d.buf, d.bufOff = d.buf[:m], d.pos
	if m < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("onnx: reading at offset %d: %w", d.pos, err)
	}
	return d.buf[:min(int64(m), left)], nil
}

func (d *decoder) done() bool { return d.pos >= d.limit }

func (d *decoder) uvarint() (uint64, error) {
	b, err := d.window(binaryMaxVarint)
	if err != nil {
		return 0, err
	}
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, d.errorf("bad varint: %v", protowire.ParseError(n))
	}
	d.pos += int64(n)
	return v, nil
}

const binaryMaxVarint = 10

func (d *decoder) fixed32() (uint32, error) {
	b, err := d.window(4)
	if err != nil {
		return 0, err
	}
	v, n := protowire.ConsumeFixed32(b)
	if n < 0 {
		return 0, d.errorf("truncated fixed32")
	}
	d.pos += 4
	return v, nil
}

func (d *decoder) fixed64() (uint64, error) {
	b, err := d.window(8)
	if err != nil {
		return 0, err
	}
	v, n := protowire.ConsumeFixed64(b)
	if n < 0 {
		return 0, d.errorf("truncated fixed64")
	}
	d.pos += 8
	return v, nil
}

// tag reads a field's tag and checks its number and wire type.
func (d *decoder) tag() (uint64, error) {
	v, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	num, typ := protowire.DecodeTag(v)
	if num < protowire.MinValidNumber || num > protowire.MaxValidNumber {
		return 0, d.errorf("invalid field number %d", int64(v>>3))
	}
	if typ > protowire.Fixed32Type {
		return 0, d.errorf("invalid wire type %d in field %d", typ, num)
	}
	return v, nil
}

// length reads a length prefix and checks it against the bytes left in the
// current message, before anything is allocated for it.
func (d *decoder) length() (int64, error) {
	v, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	if v > uint64(d.limit-d.pos) {
		return 0, d.errorf("length %d exceeds the %d bytes left in the message", v, d.limit-d.pos)
	}
	return int64(v), nil
}

// readFull reads n bytes at pos into a new slice and advances.
func (d *decoder) readFull(n int64) ([]byte, error) {
	out := make([]byte, n)
	if n <= readBuf {
		b, err := d.window(int(n))
		if err != nil {
			return nil, err
		}
		copy(out, b)
	} else if m, err := d.r.ReadAt(out, d.pos); int64(m) < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("onnx: reading %d bytes at offset %d: %w", n, d.pos, err)
	}
	d.pos += n
	return out, nil
}

func (d *decoder) bytes() ([]byte, error) {
	n, err := d.length()
	if err != nil {
		return nil, err
	}
	return d.readFull(n)
}

func (d *decoder) str() (string, error) {
	b, err := d.bytes()
	return string(b), err
}

// skipBytes reads a length prefix and skips the bytes, returning their
// input offset and length.
func (d *decoder) skipBytes() (off, n int64, err error) {
	if n, err = d.length(); err != nil {
		return 0, 0, err
	}
	off = d.pos
	d.pos += n
	return off, n, nil
}

// message reads a length-delimited sub-message, calling field for each of
// its fields with the tag and the tag's offset.
func (d *decoder) message(field func(tag uint64, start int64) error) error {
	n, err := d.length()
	if err != nil {
		return err
	}
	if d.depth >= MaxDepth {
		return d.errorf("messages nested deeper than %d", MaxDepth)
	}
	if d.count++; d.count > d.maxMsg {
		return d.errorf("more than %d messages", d.maxMsg)
	}
	outer := d.limit
	d.limit = d.pos + n
	d.depth++
	if err := d.fields(field); err != nil {
		return err
	}
	d.depth--
	d.limit = outer
	return nil
}

// fields calls field for every field up to the current limit.
func (d *decoder) fields(field func(tag uint64, start int64) error) error {
	for !d.done() {
		start := d.pos
		tag, err := d.tag()
		if err != nil {
			return err
		}
		if protowire.Type(tag&7) == protowire.EndGroupType {
			return d.errorf("unexpected end group in field %d", tag>>3)
		}
		if err := field(tag, start); err != nil {
			return err
		}
	}
	if d.pos != d.limit {
		return d.errorf("field overruns its message by %d bytes", d.pos-d.limit)
	}
	return nil
}

// skip skips the value of a field whose tag was just read.
func (d *decoder) skip(tag uint64) error {
	switch protowire.Type(tag & 7) {
	case protowire.VarintType:
		_, err := d.uvarint()
		return err
	case protowire.Fixed32Type:
		_, err := d.fixed32()
		return err
	case protowire.Fixed64Type:
		_, err := d.fixed64()
		return err
	case protowire.BytesType:
		_, _, err := d.skipBytes()
		return err
	case protowire.StartGroupType:
		if d.depth >= MaxDepth {
			return d.errorf("groups nested deeper than %d", MaxDepth)
		}
		d.depth++
		defer func() { d.depth-- }()
		for {
			if d.done() {
				return d.errorf("unterminated group %d", tag>>3)
			}
			t, err := d.tag()
			if err != nil {
				return err
			}
			if protowire.Type(t&7) == protowire.EndGroupType {
				if t>>3 != tag>>3 {
					return d.errorf("group %d ended by end group %d", tag>>3, t>>3)
				}
				return nil
			}
			if err := d.skip(t); err != nil {
				return err
			}
		}
	}
	return d.errorf("invalid wire type %d", tag&7)
}

// unknown skips a field this package does not decode and appends its exact
// encoding (tag included, from start) to w.unknown.
func (d *decoder) unknown(w *wire, tag uint64, start int64) error {
	if err := d.skip(tag); err != nil {
		return err
	}
	n := d.pos - start
	end := d.pos
	d.pos = start
	b, err := d.readFull(n)
	if err != nil {
		return err
	}
	d.pos = end
	w.unknown = append(w.unknown, b...)
	return nil
}

// Repeated scalars: both encodings are accepted, as protobuf requires.
// packedByDefault is the schema's encoding; the other one is recorded in
// w.alt so that writing reproduces what was read.

func (d *decoder) repeated(w *wire, num int, tag uint64, packedByDefault bool, one func() error) error {
	if protowire.Type(tag&7) != protowire.BytesType {
		if packedByDefault {
			w.setAlt(num)
		}
		return one()
	}
	if !packedByDefault {
		w.setAlt(num)
	}
	n, err := d.length()
	if err != nil {
		return err
	}
	outer := d.limit
	d.limit = d.pos + n
	for !d.done() {
		if err := one(); err != nil {
			return err
		}
	}
	d.limit = outer
	return nil
}

func (d *decoder) int64s(w *wire, num int, tag uint64, packed bool, dst *[]int64) error {
	return d.repeated(w, num, tag, packed, func() error {
		v, err := d.uvarint()
		*dst = append(*dst, int64(v))
		return err
	})
}

func (d *decoder) int32s(w *wire, num int, tag uint64, packed bool, dst *[]int32) error {
	return d.repeated(w, num, tag, packed, func() error {
		v, err := d.uvarint()
		*dst = append(*dst, int32(v))
		return err
	})
}

func (d *decoder) uint64s(w *wire, num int, tag uint64, packed bool, dst *[]uint64) error {
	return d.repeated(w, num, tag, packed, func() error {
		v, err := d.uvarint()
		*dst = append(*dst, v)
		return err
	})
}

func (d *decoder) float32s(w *wire, num int, tag uint64, packed bool, dst *[]float32) error {
	if protowire.Type(tag&7) == protowire.BytesType {
		// Reserve exactly: the count is known from the length.
		save := d.pos
		n, err := d.length()
		if err != nil {
			return err
		}
		if n%4 != 0 {
			return d.errorf("packed float field %d of %d bytes", num, n)
		}
		d.pos = save
		*dst = growTo(*dst, int(n/4))
	}
	return d.repeated(w, num, tag, packed, func() error {
		v, err := d.fixed32()
		*dst = append(*dst, math.Float32frombits(v))
		return err
	})
}

func (d *decoder) float64s(w *wire, num int, tag uint64, packed bool, dst *[]float64) error {
	if protowire.Type(tag&7) == protowire.BytesType {
		save := d.pos
		n, err := d.length()
		if err != nil {
			return err
		}
		if n%8 != 0 {
			return d.errorf("packed double field %d of %d bytes", num, n)
		}
		d.pos = save
		*dst = growTo(*dst, int(n/8))
	}
	return d.repeated(w, num, tag, packed, func() error {
		v, err := d.fixed64()
		*dst = append(*dst, math.Float64frombits(v))
		return err
	})
}

func growTo[T any](s []T, extra int) []T {
	if cap(s)-len(s) >= extra {
		return s
	}
	out := make([]T, len(s), len(s)+extra)
	copy(out, s)
	return out
}

// Scalar field helpers: each reads the value and marks the field present.

func (d *decoder) setInt64(w *wire, num int, dst *int64) error {
	v, err := d.uvarint()
	*dst = int64(v)
	w.set(num)
	return err
}

func (d *decoder) setInt32(w *wire, num int, dst *int32) error {
	v, err := d.uvarint()
	*dst = int32(v)
	w.set(num)
	return err
}

func (d *decoder) setString(w *wire, num int, dst *string) error {
	s, err := d.str()
	*dst = s
	w.set(num)
	return err
}

func (d *decoder) setBytes(w *wire, num int, dst *[]byte) error {
	b, err := d.bytes()
	*dst = b
	w.set(num)
	return err
}

func (d *decoder) raw(dst *RawMessage) error {
	b, err := d.bytes()
	*dst = b
	return err
}

func (d *decoder) appendRaw(dst *[]RawMessage) error {
	b, err := d.bytes()
	*dst = append(*dst, b)
	return err
}

func (d *decoder) appendString(dst *[]string) error {
	s, err := d.str()
	*dst = append(*dst, s)
	return err
}

// decodeModel reads a ModelProto that spans the whole input.
func (d *decoder) decodeModel(m *Model) error {
	w := &m.wire
	return d.fields(func(tag uint64, start int64) error {
		switch tag {
		case tv(1):
			return d.setInt64(w, 1, &m.IRVersion)
		case tl(2):
			return d.setString(w, 2, &m.ProducerName)
		case tl(3):
			return d.setString(w, 3, &m.ProducerVersion)
		case tl(4):
			return d.setString(w, 4, &m.Domain)
		case tv(5):
			return d.setInt64(w, 5, &m.ModelVersion)
		case tl(6):
			return d.setString(w, 6, &m.DocString)
		case tl(7):
			if m.Graph == nil {
				m.Graph = &Graph{}
			}
			return d.graph(m.Graph)
		case tl(8):
			o := &OperatorSetID{}
			m.OpsetImport = append(m.OpsetImport, o)
			return d.opset(o)
		case tl(14):
			e := &StringStringEntry{}
			m.MetadataProps = append(m.MetadataProps, e)
			return d.entry(e)
		case tl(20):
			return d.appendRaw(&m.TrainingInfo)
		case tl(25):
			return d.appendRaw(&m.Functions)
		}
		return d.unknown(w, tag, start)
	})
}

func (d *decoder) opset(o *OperatorSetID) error {
	w := &o.wire
	return d.message(func(tag uint64, start int64) error {
		switch tag {
		case tl(1):
			return d.setString(w, 1, &o.Domain)
		case tv(2):
			return d.setInt64(w, 2, &o.Version)
		}
		return d.unknown(w, tag, start)
	})
}

func (d *decoder) entry(e *StringStringEntry) error {
	w := &e.wire
	return d.message(func(tag uint64, start int64) error {
		switch tag {
		case tl(1):
			return d.setString(w, 1, &e.Key)
		case tl(2):
			return d.setString(w, 2, &e.Value)
		}
		return d.unknown(w, tag, start)
	})
}

func (d *decoder) graph(g *Graph) error {
	w := &g.wire
	return d.message(func(tag uint64, start int64) error {
		switch tag {
		case tl(1):
			n := &Node{}
			g.Node = append(g.Node, n)
			return d.node(n)
		case tl(2):
			return d.setString(w, 2, &g.Name)
		case tl(5):
			t := &TensorProto{}
			g.Initializer = append(g.Initializer, t)
			return d.tensor(t)
		case tl(10):
			return d.setString(w, 10, &g.DocString)
		case tl(11):
			v := &ValueInfo{}
			g.Input = append(g.Input, v)
			return d.valueInfo(v)
		case tl(12):
			v := &ValueInfo{}
			g.Output = append(g.Output, v)
			return d.valueInfo(v)
		case tl(13):
			v := &ValueInfo{}
			g.ValueInfo = append(g.ValueInfo, v)
			return d.valueInfo(v)
		case tl(14):
			return d.appendRaw(&g.QuantizationAnnotation)
		case tl(15):
			return d.appendRaw(&g.SparseInitializer)
		}
		return d.unknown(w, tag, start)
	})
}

func (d *decoder) node(n *Node) error {
	w := &n.wire
	return d.message(func(tag uint64, start int64) error {
		switch tag {
		case tl(1):
			return d.appendString(&n.Input)
		case tl(2):
			return d.appendString(&n.Output)
		case tl(3):
			return d.setString(w, 3, &n.Name)
		case tl(4):
			return d.setString(w, 4, &n.OpType)
		case tl(5):
			a := &Attribute{}
			n.Attribute = append(n.Attribute, a)
			return d.attribute(a)
		case tl(6):
			return d.setString(w, 6, &n.DocString)
		case tl(7):
			return d.setString(w, 7, &n.Domain)
		}
		return d.unknown(w, tag, start)
	})
}

func (d *decoder) attribute(a *Attribute) error {
	w := &a.wire
	return d.message(func(tag uint64, start int64) error {
		switch tag {
		case tl(1):
			return d.setString(w, 1, &a.Name)
		case tf32(2):
			v, err := d.fixed32()
			a.F = math.Float32frombits(v)
			w.set(2)
			return err
		case tv(3):
			return d.setInt64(w, 3, &a.I)
		case tl(4):
			return d.setBytes(w, 4, &a.S)
		case tl(5):
			if a.T == nil {
				a.T = &TensorProto{}
			}
			return d.tensor(a.T)
		case tl(6):
			if a.G == nil {
				a.G = &Graph{}
			}
			return d.graph(a.G)
		case tf32(7), tl(7):
			return d.float32s(w, 7, tag, false, &a.Floats)
		case tv(8), tl(8):
			return d.int64s(w, 8, tag, false, &a.Ints)
		case tl(9):
			b, err := d.bytes()
			a.Strings = append(a.Strings, b)
			return err
		case tl(10):
			t := &TensorProto{}
			a.Tensors = append(a.Tensors, t)
			return d.tensor(t)
		case tl(11):
			g := &Graph{}
			a.Graphs = append(a.Graphs, g)
			return d.graph(g)
		case tl(13):
			return d.setString(w, 13, &a.DocString)
		case tl(14):
			if a.TP == nil {
				a.TP = &Type{}
			}
			return d.typeProto(a.TP)
		case tl(15):
			t := &Type{}
			a.TypeProtos = append(a.TypeProtos, t)
			return d.typeProto(t)
		case tv(20):
			v, err := d.uvarint()
			a.Type = AttributeType(int32(v))
			w.set(20)
			return err
		case tl(21):
			return d.setString(w, 21, &a.RefAttrName)
		case tl(22):
			return d.raw(&a.SparseTensor)
		case tl(23):
			return d.appendRaw(&a.SparseTensors)
		}
		return d.unknown(w, tag, start)
	})
}

func (d *decoder) valueInfo(v *ValueInfo) error {
	w := &v.wire
	return d.message(func(tag uint64, start int64) error {
		switch tag {
		case tl(1):
			return d.setString(w, 1, &v.Name)
		case tl(2):
			if v.Type == nil {
				v.Type = &Type{}
			}
			return d.typeProto(v.Type)
		case tl(3):
			return d.setString(w, 3, &v.DocString)
		}
		return d.unknown(w, tag, start)
	})
}

func (d *decoder) typeProto(t *Type) error {
	w := &t.wire
	return d.message(func(tag uint64, start int64) error {
		switch tag {
		case tl(1):
			if t.Tensor == nil {
				t.Tensor = &TensorType{}
			}
			return d.tensorType(t.Tensor)
		case tl(4):
			if t.Sequence == nil {
				t.Sequence = &SequenceType{}
			}
			s := t.Sequence
			return d.message(func(tag uint64, start int64) error {
				if tag == tl(1) {
					if s.ElemType == nil {
						s.ElemType = &Type{}
					}
					return d.typeProto(s.ElemType)
				}
				return d.unknown(&s.wire, tag, start)
			})
		case tl(5):
			if t.Map == nil {
				t.Map = &MapType{}
			}
			m := t.Map
			return d.message(func(tag uint64, start int64) error {
				switch tag {
				case tv(1):
					return d.setInt32(&m.wire, 1, (*int32)(&m.KeyType))
				case tl(2):
					if m.ValueType == nil {
						m.ValueType = &Type{}
					}
					return d.typeProto(m.ValueType)
				}
				return d.unknown(&m.wire, tag, start)
			})
		case tl(6):
			return d.setString(w, 6, &t.Denotation)
		case tl(7):
			return d.raw(&t.Opaque)
		case tl(8):
			if t.SparseTensor == nil {
				t.SparseTensor = &TensorType{}
			}
			return d.tensorType(t.SparseTensor)
		case tl(9):
			if t.Optional == nil {
				t.Optional = &OptionalType{}
			}
			o := t.Optional
			return d.message(func(tag uint64, start int64) error {
				if tag == tl(1) {
					if o.ElemType == nil {
						o.ElemType = &Type{}
					}
					return d.typeProto(o.ElemType)
				}
				return d.unknown(&o.wire, tag, start)
			})
		}
		return d.unknown(w, tag, start)
	})
}

func (d *decoder) tensorType(t *TensorType) error {
	w := &t.wire
	return d.message(func(tag uint64, start int64) error {
		switch tag {
		case tv(1):
			return d.setInt32(w, 1, (*int32)(&t.ElemType))
		case tl(2):
			if t.Shape == nil {
				t.Shape = &Shape{}
			}
			return d.shape(t.Shape)
		}
		return d.unknown(w, tag, start)
	})
}

func (d *decoder) shape(s *Shape) error {
	return d.message(func(tag uint64, start int64) error {
		if tag != tl(1) {
			return d.unknown(&s.wire, tag, start)
		}
		dim := &Dimension{}
		s.Dim = append(s.Dim, dim)
		w := &dim.wire
		return d.message(func(tag uint64, start int64) error {
			switch tag {
			case tv(1):
				return d.setInt64(w, 1, &dim.Value)
			case tl(2):
				return d.setString(w, 2, &dim.Param)
			case tl(3):
				return d.setString(w, 3, &dim.Denotation)
			}
			return d.unknown(w, tag, start)
		})
	})
}

// tensor reads a TensorProto sub-message.
func (d *decoder) tensor(t *TensorProto) error {
	d.tensors = append(d.tensors, t)
	return d.message(d.tensorField(t))
}

func (d *decoder) tensorField(t *TensorProto) func(tag uint64, start int64) error {
	w := &t.wire
	return func(tag uint64, start int64) error {
		switch tag {
		case tv(1), tl(1):
			return d.int64s(w, 1, tag, false, &t.Dims)
		case tv(2):
			return d.setInt32(w, 2, (*int32)(&t.DataType))
		case tl(3):
			return d.raw(&t.Segment)
		case tf32(4), tl(4):
			return d.float32s(w, 4, tag, true, &t.FloatData)
		case tv(5), tl(5):
			return d.int32s(w, 5, tag, true, &t.Int32Data)
		case tl(6):
			b, err := d.bytes()
			t.StringData = append(t.StringData, b)
			return err
		case tv(7), tl(7):
			return d.int64s(w, 7, tag, true, &t.Int64Data)
		case tl(8):
			return d.setString(w, 8, &t.Name)
		case tl(9):
			off, n, err := d.skipBytes()
			if err != nil {
				return err
			}
			t.raw = tensor.NewStorage(d.r, off, n)
			t.raw.Key = "raw_data"
			t.data = nil
			w.set(9)
			return nil
		case tf64(10), tl(10):
			return d.float64s(w, 10, tag, true, &t.DoubleData)
		case tv(11), tl(11):
			return d.uint64s(w, 11, tag, true, &t.Uint64Data)
		case tl(12):
			return d.setString(w, 12, &t.DocString)
		case tl(13):
			e := &StringStringEntry{}
			t.ExternalData = append(t.ExternalData, e)
			return d.entry(e)
		case tv(14):
			return d.setInt32(w, 14, (*int32)(&t.DataLocation))
		}
		return d.unknown(w, tag, start)
	}
}
