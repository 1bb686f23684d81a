package onnx

import (
	"fmt"

	"github.com/ckptkit/ckpt/tensor"
)

// RawMessage is the encoded body (without tag and length) of a message this
// package keeps as bytes rather than decoding: functions, training_info,
// sparse tensors, quantization annotations, TensorProto segments, opaque types.
type RawMessage []byte

// wire is the per-message state that makes reading and writing lossless:
// which optional fields were present (so an explicit zero is written back),
// which repeated scalar fields used the encoding their schema does not
// declare (packed or not), and the fields this package does not know, kept
// as their exact bytes and written back after the known ones, as protobuf's
// own serializers place them.
type wire struct {
	has     uint32 // bit n: field n was present
	alt     uint32 // bit n: repeated scalar field n was read in the non-default encoding
	unknown []byte // unknown fields, tag and value, in file order
}

func (w *wire) set(n int)          { w.has |= 1 << n }
func (w *wire) present(n int) bool { return w.has&(1<<n) != 0 }
func (w *wire) setAlt(n int)       { w.alt |= 1 << n }
func (w *wire) isAlt(n int) bool   { return w.alt&(1<<n) != 0 }

// Unknown returns the encoded fields of the message that this package does
// not decode, exactly as read; writers emit them after the known fields.
func (w *wire) Unknown() []byte { return w.unknown }

// Model is an ONNX ModelProto. Fields mirror onnx.proto (IR version 8);
// field numbers are given in comments.
type Model struct {
	IRVersion       int64                // 1
	ProducerName    string               // 2
	ProducerVersion string               // 3
	Domain          string               // 4
	ModelVersion    int64                // 5
	DocString       string               // 6
	Graph           *Graph               // 7
	OpsetImport     []*OperatorSetID     // 8
	MetadataProps   []*StringStringEntry // 14
	TrainingInfo    []RawMessage         // 20, TrainingInfoProto kept encoded
	Functions       []RawMessage         // 25, FunctionProto kept encoded
	wire

	closers []interface{ Close() error }
	tensors []*TensorProto // every TensorProto decoded (see ExternalPathErrors)
}

// OperatorSetID is an OperatorSetIdProto: an operator domain and its version.
type OperatorSetID struct {
	Domain  string // 1
	Version int64  // 2
	wire
}

// StringStringEntry is a StringStringEntryProto, a key-value pair.
type StringStringEntry struct {
	Key   string // 1
	Value string // 2
	wire
}

// Graph is a GraphProto.
type Graph struct {
	Node                   []*Node        // 1
	Name                   string         // 2
	Initializer            []*TensorProto // 5
	DocString              string         // 10
	Input                  []*ValueInfo   // 11
	Output                 []*ValueInfo   // 12
	ValueInfo              []*ValueInfo   // 13
	QuantizationAnnotation []RawMessage   // 14, TensorAnnotation kept encoded
	SparseInitializer      []RawMessage   // 15, SparseTensorProto kept encoded
	wire
}

// Node is a NodeProto: one operator application.
type Node struct {
	Input     []string     // 1
	Output    []string     // 2
	Name      string       // 3
	OpType    string       // 4
	Attribute []*Attribute // 5
	DocString string       // 6
	Domain    string       // 7
	wire
}

// AttributeType is AttributeProto.AttributeType.
type AttributeType int32

// The attribute types of onnx.proto.
const (
	AttrUndefined     AttributeType = 0
	AttrFloat         AttributeType = 1
	AttrInt           AttributeType = 2
	AttrString        AttributeType = 3
	AttrTensor        AttributeType = 4
	AttrGraph         AttributeType = 5
	AttrFloats        AttributeType = 6
	AttrInts          AttributeType = 7
	AttrStrings       AttributeType = 8
	AttrTensors       AttributeType = 9
	AttrGraphs        AttributeType = 10
	AttrSparseTensor  AttributeType = 11
	AttrSparseTensors AttributeType = 12
	AttrTypeProto     AttributeType = 13
	AttrTypeProtos    AttributeType = 14
)

// Attribute is an AttributeProto. Type says which value field is in use.
type Attribute struct {
	Name          string         // 1
	F             float32        // 2
	I             int64          // 3
	S             []byte         // 4
	T             *TensorProto   // 5
	G             *Graph         // 6
	Floats        []float32      // 7
	Ints          []int64        // 8
	Strings       [][]byte       // 9
	Tensors       []*TensorProto // 10
	Graphs        []*Graph       // 11
	DocString     string         // 13
	TP            *Type          // 14
	TypeProtos    []*Type        // 15
	Type          AttributeType  // 20
	RefAttrName   string         // 21
	SparseTensor  RawMessage     // 22, nil when absent
	SparseTensors []RawMessage   // 23
	wire
}

// ValueInfo is a ValueInfoProto: a named value and its type.
type ValueInfo struct {
	Name      string // 1
	Type      *Type  // 2
	DocString string // 3
	wire
}

// Type is a TypeProto. At most one of Tensor, Sequence, Map, Opaque,
// SparseTensor and Optional is set in a well-formed model.
type Type struct {
	Tensor       *TensorType   // 1 tensor_type
	Sequence     *SequenceType // 4 sequence_type
	Map          *MapType      // 5 map_type
	Denotation   string        // 6
	Opaque       RawMessage    // 7 opaque_type (onnx-ml), nil when absent
	SparseTensor *TensorType   // 8 sparse_tensor_type
	Optional     *OptionalType // 9 optional_type
	wire
}

// TensorType is TypeProto.Tensor (also used for TypeProto.SparseTensor,
// which has the same fields): an element type and an optional shape.
type TensorType struct {
	ElemType DataType // 1
	Shape    *Shape   // 2, nil when the rank is unknown
	wire
}

// SequenceType is TypeProto.Sequence.
type SequenceType struct {
	ElemType *Type // 1
	wire
}

// MapType is TypeProto.Map.
type MapType struct {
	KeyType   DataType // 1
	ValueType *Type    // 2
	wire
}

// OptionalType is TypeProto.Optional.
type OptionalType struct {
	ElemType *Type // 1
	wire
}

// Shape is a TensorShapeProto.
type Shape struct {
	Dim []*Dimension // 1
	wire
}

// Dimension is TensorShapeProto.Dimension: a fixed size (Value, when
// HasValue) or a symbolic one (Param, when HasParam), or neither (unknown).
type Dimension struct {
	Value      int64  // 1 dim_value
	Param      string // 2 dim_param
	Denotation string // 3
	wire
}

// HasValue reports whether the dimension has a dim_value.
func (d *Dimension) HasValue() bool { return d.present(1) || d.Value != 0 }

// HasParam reports whether the dimension has a dim_param.
func (d *Dimension) HasParam() bool { return d.present(2) || d.Param != "" }

// SetValue makes the dimension the fixed size v.
func (d *Dimension) SetValue(v int64) { d.Value, d.Param = v, ""; d.has &^= 1 << 2; d.set(1) }

// SetParam makes the dimension the symbolic size p.
func (d *Dimension) SetParam(p string) { d.Value, d.Param = 0, p; d.has &^= 1 << 1; d.set(2) }

// DataType is TensorProto.DataType, the element type of an ONNX tensor.
type DataType int32

// The data types of onnx.proto (and the float8 and 4-bit types of later
// onnx releases, which are kept losslessly but have no tensor.DType).
const (
	Undefined  DataType = 0
	Float      DataType = 1
	Uint8      DataType = 2
	Int8       DataType = 3
	Uint16     DataType = 4
	Int16      DataType = 5
	Int32      DataType = 6
	Int64      DataType = 7
	String     DataType = 8
	Bool       DataType = 9
	Float16    DataType = 10
	Double     DataType = 11
	Uint32     DataType = 12
	Uint64     DataType = 13
	Complex64  DataType = 14
	Complex128 DataType = 15
	BFloat16   DataType = 16
)

var dataTypeNames = map[DataType]string{
	Undefined: "UNDEFINED", Float: "FLOAT", Uint8: "UINT8", Int8: "INT8", Uint16: "UINT16",
	Int16: "INT16", Int32: "INT32", Int64: "INT64", String: "STRING", Bool: "BOOL",
	Float16: "FLOAT16", Double: "DOUBLE", Uint32: "UINT32", Uint64: "UINT64",
	Complex64: "COMPLEX64", Complex128: "COMPLEX128", BFloat16: "BFLOAT16",
	17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2", 20: "FLOAT8E5M2FNUZ",
	21: "UINT4", 22: "INT4", 23: "FLOAT4E2M1",
}

// String returns onnx.proto's name for the type, such as "FLOAT16".
func (t DataType) String() string {
	if s, ok := dataTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("DATATYPE(%d)", int32(t))
}

// elemSize is the size of one element in raw_data, or 0 when it is not a
// whole number of bytes or not known (STRING, 4-bit types, unknown types).
func (t DataType) elemSize() int64 {
	switch t {
	case Uint8, Int8, Bool, 17, 18, 19, 20:
		return 1
	case Uint16, Int16, Float16, BFloat16:
		return 2
	case Float, Int32, Uint32:
		return 4
	case Int64, Double, Uint64, Complex64:
		return 8
	case Complex128:
		return 16
	}
	return 0
}

// DType returns the tensor.DType that holds elements of t, and false when
// there is none (UINT16, UINT32, UINT64, STRING, complex and 8/4-bit float
// types).
func (t DataType) DType() (tensor.DType, bool) {
	switch t {
	case Float:
		return tensor.Float32, true
	case Double:
		return tensor.Float64, true
	case Float16:
		return tensor.Float16, true
	case BFloat16:
		return tensor.BFloat16, true
	case Int8:
		return tensor.Int8, true
	case Int16:
		return tensor.Int16, true
	case Int32:
		return tensor.Int32, true
	case Int64:
		return tensor.Int64, true
	case Uint8:
		return tensor.Uint8, true
	case Bool:
		return tensor.Bool, true
	}
	return tensor.Invalid, false
}

// DataTypeOf returns the ONNX data type of elements of d.
func DataTypeOf(d tensor.DType) (DataType, bool) {
	switch d {
	case tensor.Float32:
		return Float, true
	case tensor.Float64:
		return Double, true
	case tensor.Float16:
		return Float16, true
	case tensor.BFloat16:
		return BFloat16, true
	case tensor.Int8:
		return Int8, true
	case tensor.Int16:
		return Int16, true
	case tensor.Int32:
		return Int32, true
	case tensor.Int64:
		return Int64, true
	case tensor.Uint8:
		return Uint8, true
	case tensor.Bool:
		return Bool, true
	}
	return Undefined, false
}

// DataLocation is TensorProto.DataLocation.
type DataLocation int32

// Where a tensor's elements are stored.
const (
	LocationDefault  DataLocation = 0 // in the TensorProto (raw_data or a typed field)
	LocationExternal DataLocation = 1 // in another file, named by external_data
)

// TensorProto is an ONNX TensorProto. Its elements are in exactly one of:
// raw_data (lazy: a range of the model file, see HasRawData), the typed
// field its DataType uses (FloatData, Int32Data, ...), or external data
// (DataLocation == LocationExternal, ExternalData naming the file). Use
// [TensorProto.Tensor] to read the elements whatever the encoding, and
// [TensorProto.SetData] to replace them.
type TensorProto struct {
	Dims         []int64              // 1
	DataType     DataType             // 2
	Segment      RawMessage           // 3, nil when absent
	FloatData    []float32            // 4: FLOAT, COMPLEX64
	Int32Data    []int32              // 5: INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16, BFLOAT16
	StringData   [][]byte             // 6: STRING
	Int64Data    []int64              // 7: INT64
	Name         string               // 8
	DoubleData   []float64            // 10: DOUBLE, COMPLEX128
	Uint64Data   []uint64             // 11: UINT32, UINT64
	DocString    string               // 12
	ExternalData []*StringStringEntry // 13
	DataLocation DataLocation         // 14
	wire

	raw  *tensor.Storage // raw_data (9) as read: a range of the source
	ext  *tensor.Storage // external data, resolved by Open
	data *tensor.Tensor  // elements set by SetData, written as raw_data
}

// HasRawData reports whether the elements are held as raw_data (read from
// the file or set by SetData).
func (t *TensorProto) HasRawData() bool { return t.raw != nil || t.data != nil }

// Named is an initializer read as a stored tensor, under its ONNX name
// ([tensor.Named]).
type Named = tensor.Named

// TensorValue describes a tensor value of element type dt with the given
// dimensions, for building graphs in Go; a negative dimension is the
// dynamic batch axis, a symbolic dimension named "batch".
func TensorValue(name string, dt DataType, dims ...int64) *ValueInfo {
	s := &Shape{}
	for _, d := range dims {
		dim := &Dimension{}
		if d < 0 {
			dim.SetParam("batch")
		} else {
			dim.SetValue(d)
		}
		s.Dim = append(s.Dim, dim)
	}
	return &ValueInfo{Name: name, Type: &Type{Tensor: &TensorType{ElemType: dt, Shape: s}}}
}
