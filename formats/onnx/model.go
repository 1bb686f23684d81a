package onnx

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/ckptkit/ckpt/internal/localpath"
	"github.com/ckptkit/ckpt/tensor"
)

// Open reads the ONNX model at path. Initializer elements stored as raw_data
// or external data are not read: the returned Model keeps the files open and
// its tensors read them on demand, so the Model must be closed. External data
// is resolved relative to the model's directory.
func Open(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("onnx: %w", err)
	}
	m, err := decode(f, st.Size(), filepath.Dir(path), f)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return m, nil
}

// Decode reads a ModelProto of size bytes from r. Tensors keep reading r
// lazily, so r must stay valid while the Model is used. External data is
// resolved relative to dir; with dir == "" it is not resolved: such tensors
// are written back as the same external references, and their elements
// cannot be read.
func Decode(r io.ReaderAt, size int64, dir string) (*Model, error) {
	return decode(r, size, dir, nil)
}

// Unmarshal reads a ModelProto from b without resolving external data. The
// Model's tensors refer to b, which must not be modified while it is used.
func Unmarshal(b []byte) (*Model, error) {
	return Decode(bytes.NewReader(b), int64(len(b)), "")
}

// decode reads the model; on failure it closes owned (when not nil) and
// every file it opened.
func decode(r io.ReaderAt, size int64, dir string, owned io.Closer) (*Model, error) {
	m := &Model{}
	if owned != nil {
		m.closers = append(m.closers, owned)
	}
	if err := m.decode(r, size, dir); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

func (m *Model) decode(r io.ReaderAt, size int64, dir string) error {
	d := newDecoder(r, size)
	if err := d.decodeModel(m); err != nil {
		return err
	}
	m.tensors = d.tensors
	if dir != "" {
		if err := m.resolveExternal(dir, d.tensors); err != nil {
			return err
		}
	}
	if m.Graph != nil {
		for _, t := range m.Graph.Initializer {
			if err := t.validate(); err != nil {
				return fmt.Errorf("onnx: initializer %q: %w", t.Name, err)
			}
		}
	}
	return nil
}

// Close closes the files the Model reads from. Tensors obtained from it
// cannot be read afterwards.
func (m *Model) Close() error {
	var first error
	for _, c := range m.closers {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	m.closers = nil
	return first
}

// Unsupported is an initializer whose data type has no tensor.DType
// (UINT16, UINT32, UINT64, STRING, COMPLEX64, COMPLEX128, the float8
// types): it is kept in the model and written back, but cannot be exposed
// as a tensor.
type Unsupported struct {
	Name     string
	DataType DataType
	Dims     []int64
}

// Initializers returns the main graph's initializers as stored tensors, in
// graph order, and separately, in graph order too, those whose data type
// has no tensor.DType (so a caller can list what it can and name what it
// cannot). Raw and external elements are read lazily; typed fields are
// converted to little-endian bytes. It fails, naming the initializer, on
// malformed data or a duplicate name.
func (m *Model) Initializers() ([]Named, []Unsupported, error) {
	if m.Graph == nil {
		return nil, nil, nil
	}
	out := make([]Named, 0, len(m.Graph.Initializer))
	var skipped []Unsupported
	seen := make(map[string]bool, len(m.Graph.Initializer))
	for _, t := range m.Graph.Initializer {
		if seen[t.Name] {
			return nil, nil, fmt.Errorf("onnx: initializer %q: duplicate name", t.Name)
		}
		seen[t.Name] = true
		if _, ok := t.DataType.DType(); !ok && t.data == nil {
			if err := t.validate(); err != nil {
				return nil, nil, fmt.Errorf("onnx: initializer %q: %w", t.Name, err)
			}
			skipped = append(skipped, Unsupported{Name: t.Name, DataType: t.DataType, Dims: slices.Clone(t.Dims)})
			continue
		}
		x, err := t.tensor()
		if err != nil {
			return nil, nil, fmt.Errorf("onnx: initializer %q: %w", t.Name, err)
		}
		out = append(out, Named{Name: t.Name, Tensor: x})
	}
	return out, skipped, nil
}

// Tensor returns the elements as a stored tensor: a lazy view of the file
// for raw_data and external data, little-endian bytes decoded from the typed
// fields otherwise. It fails when the data type has no tensor.DType or the
// element count does not match the dims.
func (t *TensorProto) Tensor() (*tensor.Tensor, error) {
	x, err := t.tensor()
	if err != nil {
		return nil, fmt.Errorf("onnx: tensor %q: %w", t.Name, err)
	}
	return x, nil
}

// SetData replaces the tensor's elements, data type and dims by x's. The
// elements are written as raw_data (or external data, by WriteOptions);
// typed fields and external references are cleared. x is read when the
// model is written, so it must stay readable until then.
func (t *TensorProto) SetData(x *tensor.Tensor) error {
	dt, ok := DataTypeOf(x.DType)
	if !ok {
		return fmt.Errorf("onnx: tensor %q: dtype %s has no ONNX data type", t.Name, x.DType)
	}
	if err := x.Validate(); err != nil {
		return fmt.Errorf("onnx: tensor %q: %w", t.Name, err)
	}
	t.DataType = dt
	t.Dims = slices.Clone(x.Shape)
	t.FloatData, t.Int32Data, t.StringData, t.Int64Data, t.DoubleData, t.Uint64Data = nil, nil, nil, nil, nil, nil
	t.ExternalData, t.DataLocation = nil, LocationDefault
	t.raw, t.ext, t.data = nil, nil, x
	t.has &^= 1 << 14
	t.set(2)
	t.set(9)
	return nil
}

// numElements is the product of the dims, checked for sign and overflow.
func (t *TensorProto) numElements() (int64, error) {
	n := uint64(1)
	for _, s := range t.Dims {
		if s < 0 {
			return 0, fmt.Errorf("negative dimension in dims %v", t.Dims)
		}
		hi, lo := bits.Mul64(n, uint64(s))
		if hi != 0 || lo > tensor.MaxElements {
			return 0, fmt.Errorf("dims %v have too many elements", t.Dims)
		}
		n = lo
	}
	return int64(n), nil
}

// typed returns the name and length of the typed field the data type
// uses, and how many entries each element takes; ok is false for types
// whose typed encoding this package does not know.
func (t *TensorProto) typed() (field string, n int, per int64, ok bool) {
	switch t.DataType {
	case Float:
		return "float_data", len(t.FloatData), 1, true
	case Complex64:
		return "float_data", len(t.FloatData), 2, true
	case Int32, Int16, Int8, Uint16, Uint8, Bool, Float16, BFloat16, 17, 18, 19, 20:
		return "int32_data", len(t.Int32Data), 1, true
	case String:
		return "string_data", len(t.StringData), 1, true
	case Int64:
		return "int64_data", len(t.Int64Data), 1, true
	case Double:
		return "double_data", len(t.DoubleData), 1, true
	case Complex128:
		return "double_data", len(t.DoubleData), 2, true
	case Uint32, Uint64:
		return "uint64_data", len(t.Uint64Data), 1, true
	}
	return "", 0, 0, false
}

func (t *TensorProto) hasTyped() bool {
	return len(t.FloatData)+len(t.Int32Data)+len(t.StringData)+len(t.Int64Data)+len(t.DoubleData)+len(t.Uint64Data) > 0
}

// validate checks that the element data agrees with the dims and data type.
func (t *TensorProto) validate() error {
	n, err := t.numElements()
	if err != nil {
		return err
	}
	if t.data != nil {
		return nil
	}
	es := t.DataType.elemSize()
	switch {
	case t.DataLocation == LocationExternal:
		if t.raw != nil || t.hasTyped() {
			return fmt.Errorf("external data and data in the tensor")
		}
		if t.ext != nil && es > 0 && t.ext.Size() != n*es {
			return fmt.Errorf("%d bytes of external data for %s%v, want %d", t.ext.Size(), t.DataType, t.Dims, n*es)
		}
	case t.DataLocation != LocationDefault:
		return fmt.Errorf("unknown data_location %d", t.DataLocation)
	case t.raw != nil:
		if t.hasTyped() {
			return fmt.Errorf("both raw_data and typed data")
		}
		if es > 0 && t.raw.Size() != n*es {
			return fmt.Errorf("%d bytes of raw_data for %s%v, want %d", t.raw.Size(), t.DataType, t.Dims, n*es)
		}
	default:
		field, got, per, ok := t.typed()
		if ok && int64(got) != n*per {
			return fmt.Errorf("%d values in %s for %s%v, want %d", got, field, t.DataType, t.Dims, n*per)
		}
	}
	return nil
}

// tensor builds the stored tensor; errors are not prefixed.
func (t *TensorProto) tensor() (*tensor.Tensor, error) {
	if t.data != nil {
		return t.data, nil
	}
	dt, ok := t.DataType.DType()
	if !ok {
		return nil, fmt.Errorf("data type %s has no tensor dtype", t.DataType)
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	shape := slices.Clone(t.Dims)
	if shape == nil {
		shape = []int64{}
	}
	var s *tensor.Storage
	switch {
	case t.DataLocation == LocationExternal:
		if t.ext == nil {
			return nil, fmt.Errorf("external data %q was not resolved (open the model from its file)", t.externalLocation())
		}
		s = t.ext
	case t.raw != nil:
		s = t.raw
	default:
		b, err := t.typedBytes(dt)
		if err != nil {
			return nil, err
		}
		s = tensor.NewStorageBytes(b)
	}
	x := tensor.New(dt, shape, s)
	if err := x.Validate(); err != nil {
		return nil, err
	}
	if x.NumBytes() != s.Size() {
		return nil, fmt.Errorf("%d bytes of data for %s%v, want %d", s.Size(), t.DataType, t.Dims, x.NumBytes())
	}
	return x, nil
}

// typedBytes converts the typed field to little-endian bytes of dt. Values
// in int32_data for 8- and 16-bit types must fit that width, signed or not.
func (t *TensorProto) typedBytes(dt tensor.DType) ([]byte, error) {
	le := binary.LittleEndian
	switch t.DataType {
	case Float:
		b := make([]byte, 4*len(t.FloatData))
		for i, v := range t.FloatData {
			le.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b, nil
	case Double:
		b := make([]byte, 8*len(t.DoubleData))
		for i, v := range t.DoubleData {
			le.PutUint64(b[8*i:], math.Float64bits(v))
		}
		return b, nil
	case Int64:
		b := make([]byte, 8*len(t.Int64Data))
		for i, v := range t.Int64Data {
			le.PutUint64(b[8*i:], uint64(v))
		}
		return b, nil
	case Int32:
		b := make([]byte, 4*len(t.Int32Data))
		for i, v := range t.Int32Data {
			le.PutUint32(b[4*i:], uint32(v))
		}
		return b, nil
	case Int16, Float16, BFloat16:
		b := make([]byte, 2*len(t.Int32Data))
		for i, v := range t.Int32Data {
			if v < math.MinInt16 || v > math.MaxUint16 {
				return nil, fmt.Errorf("int32_data[%d] = %d does not fit %s", i, v, t.DataType)
			}
			le.PutUint16(b[2*i:], uint16(v))
		}
		return b, nil
	case Int8, Uint8:
		b := make([]byte, len(t.Int32Data))
		for i, v := range t.Int32Data {
			if v < math.MinInt8 || v > math.MaxUint8 {
				return nil, fmt.Errorf("int32_data[%d] = %d does not fit %s", i, v, t.DataType)
			}
			b[i] = byte(v)
		}
		return b, nil
	case Bool:
		b := make([]byte, len(t.Int32Data))
		for i, v := range t.Int32Data {
			if v != 0 {
				b[i] = 1
			}
		}
		return b, nil
	}
	return nil, fmt.Errorf("data type %s has no tensor dtype %s", t.DataType, dt)
}

// externalLocation returns the location of t's external data: the last
// "location" entry, as onnx's ExternalDataInfo (which sets an attribute
// per entry) and resolveExternal read it.
func (t *TensorProto) externalLocation() string {
	loc := ""
	for _, e := range t.ExternalData {
		if e.Key == "location" {
			loc = e.Value
		}
	}
	return loc
}

// ExternalPathError is an external data location that leaves the model's
// directory: a path with "..", an absolute path, or a path through a
// symbolic link to outside the directory. onnx.load before onnx 1.16
// (CVE-2024-27318) and other readers open such a path, so a model can make
// them read any file of the machine into its weights.
type ExternalPathError struct {
	Tensor, Location string
	// Target is where a symbolic link leads, "" for a path that leaves
	// the directory by itself.
	Target string
}

func (e *ExternalPathError) Error() string {
	if e.Target != "" {
		return fmt.Sprintf("onnx: tensor %q: external data location %q is a symbolic link to %q, outside the model directory", e.Tensor, e.Location, e.Target)
	}
	return fmt.Sprintf("onnx: tensor %q: external data location %q is not a relative path inside the model directory", e.Tensor, e.Location)
}

// CheckExternalLocation is the rule every reader of external data follows
// (Open, and through it the graph importer and `ckpt scan`): the location
// of tensor's data must stay inside dir as localpath.Check has it (a
// relative path without "..", NUL or a volume name, '/' or '\' as
// separator, no symbolic link out of dir when dir is not ""). It returns
// an *ExternalPathError otherwise.
func CheckExternalLocation(dir, tensor, loc string) error {
	if target, ok := localpath.Check(dir, loc); !ok {
		return &ExternalPathError{Tensor: tensor, Location: loc, Target: target}
	}
	return nil
}

// ExternalPathErrors returns an *ExternalPathError for every tensor of m
// (initializers, node attributes, subgraphs) whose external data location
// leaves dir, the model's directory; m is a model decoded without
// resolving its external data (Decode with dir "").
func (m *Model) ExternalPathErrors(dir string) []*ExternalPathError {
	var out []*ExternalPathError
	for _, t := range m.tensors {
		if t.DataLocation != LocationExternal {
			continue
		}
		var pe *ExternalPathError
		if errors.As(CheckExternalLocation(dir, t.Name, t.externalLocation()), &pe) {
			out = append(out, pe)
		}
	}
	return out
}

// resolveExternal opens the external data files of every tensor stored as
// external data. Locations must be relative paths inside dir: they are
// opened through an os.Root, so neither ".." nor symbolic links can leave
// it. The byte range must lie inside the file.
func (m *Model) resolveExternal(dir string, ts []*TensorProto) error {
	var root *os.Root
	files := map[string]*os.File{}
	for _, t := range ts {
		if t.DataLocation != LocationExternal {
			continue
		}
		loc, off, length := "", int64(0), int64(-1)
		for _, e := range t.ExternalData {
			var err error
			switch e.Key {
			case "location":
				loc = e.Value
			case "offset":
				off, err = strconv.ParseInt(e.Value, 10, 64)
			case "length":
				length, err = strconv.ParseInt(e.Value, 10, 64)
			}
			if err != nil || off < 0 || (e.Key == "length" && length < 0) {
				return fmt.Errorf("onnx: tensor %q: external data %s %q is not a byte count", t.Name, e.Key, e.Value)
			}
		}
		if err := CheckExternalLocation(dir, t.Name, loc); err != nil {
			return err
		}
		name := filepath.Clean(filepath.FromSlash(loc))
		f := files[name]
		if f == nil {
			if root == nil {
				var err error
				if root, err = os.OpenRoot(dir); err != nil {
					return fmt.Errorf("onnx: tensor %q: external data: %w", t.Name, err)
				}
				m.closers = append(m.closers, root)
			}
			var err error
			if f, err = root.Open(name); err != nil {
				return fmt.Errorf("onnx: tensor %q: external data: %w", t.Name, err)
			}
			files[name] = f
			m.closers = append(m.closers, f)
		}
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("onnx: tensor %q: external data: %w", t.Name, err)
		}
		size := st.Size()
		if off > size {
			return fmt.Errorf("onnx: tensor %q: external data offset %d is past the end of %q (%d bytes)", t.Name, off, loc, size)
		}
		if length < 0 {
			length = size - off
		}
		if length > size-off {
			return fmt.Errorf("onnx: tensor %q: external data [%d, +%d) is past the end of %q (%d bytes)", t.Name, off, length, loc, size)
		}
		t.ext = tensor.NewStorage(f, off, length)
		t.ext.Key = loc
	}
	return nil
}

// UnmarshalTensor reads a serialized TensorProto (such as the input_0.pb
// files of ONNX's test data sets). Its raw_data refers to b, which must not
// be modified while the tensor is used; external data is not resolved.
func UnmarshalTensor(b []byte) (*TensorProto, error) {
	d := newDecoder(bytes.NewReader(b), int64(len(b)))
	t := &TensorProto{}
	if err := d.fields(d.tensorField(t)); err != nil {
		return nil, err
	}
	return t, nil
}
