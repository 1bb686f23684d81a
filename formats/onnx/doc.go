// Package onnx reads and writes ONNX models (ModelProto, onnx.proto IR
// version 8) losslessly, and exposes their initializers as stored tensors
// (package tensor).
//
// # Which code does what
//
// Reading and writing use this package's own protobuf wire code, built on
// google.golang.org/protobuf/encoding/protowire, with no generated code:
//   - every field of ModelProto, GraphProto, NodeProto, AttributeProto (all
//     attribute types), ValueInfoProto, TypeProto (tensor, sequence, map,
//     optional, sparse tensor; opaque kept encoded), TensorShapeProto and
//     TensorProto (all data types, raw_data, every typed field, external
//     data) is decoded; FunctionProto, TrainingInfoProto, SparseTensorProto,
//     TensorAnnotation and TensorProto.Segment are kept as encoded bytes;
//   - fields this package does not know are kept as their exact bytes and
//     written back after the known fields, and the presence of optional
//     fields set to zero and the packed or unpacked encoding of repeated
//     fields are remembered, so that a model written by protobuf's own
//     serializers (onnx, PyTorch, ONNX Runtime) and read and written back
//     unchanged has the same bytes.
//
// github.com/owulveryck/onnx-go (v0.5.0) is used only by this package's
// tests, as an independent decoder that float32 models are cross-checked
// against: it refuses FLOAT16 and BFLOAT16 tensors, has no external data and
// cannot write, so it cannot serve as the reader.
//
// # Tensors
//
// [TensorProto.Tensor] and [Model.Initializers] give a *tensor.Tensor whose
// bytes are little-endian and row-major whatever the encoding: raw_data and
// external data are lazy ranges of their files (nothing is read until the
// elements are asked for); typed fields (float_data, int32_data - which
// also carries FLOAT16, BFLOAT16, INT8, UINT8, INT16 and BOOL -, int64_data,
// double_data) are converted to bytes. Data types with no tensor.DType
// (UINT16, UINT32, UINT64, STRING, complex, float8) are kept and written
// back, but cannot be exposed as tensors: [Model.Initializers] returns them
// apart, as [Unsupported] entries (name, data type, dims), so that a caller
// lists what it can and names what it cannot.
//
// External data (data_location EXTERNAL) is resolved by [Open] relative to
// the model's directory through an os.Root: the location must be a relative
// path that stays inside the directory, ".." and symbolic links leaving it
// are refused, and offset and length must lie inside the file. By default
// [Write] embeds external elements as raw_data; [WriteOptions].ExternalData
// writes initializers to an external file instead, as needed for models
// over 2 GiB ([MaxModelSize]). Writing streams elements from their source.
//
// # Untrusted input
//
// Malformed input gives an error, never a panic. Every length is checked
// against the bytes left in its enclosing message before anything is
// allocated, so no allocation exceeds the input's size (repeated varint
// fields decode to at most 8 bytes per input byte); messages nest at most
// [MaxDepth] deep and number at most [MaxMessages]; initializers of the main graph are checked at Open:
// dims non-negative with at most tensor.MaxElements elements, and raw_data,
// external data or typed field sizes equal to what the dims and data type
// require. Other tensors (attribute values) are checked when they are read.
//
// # Weight replacement
//
// [Model.ReplaceInitializers] writes a checkpoint's tensors into a graph by
// initializer name (ckpt convert CKPT OUT.onnx --graph MODEL.onnx): every
// initializer must have a tensor of the same data type and shape, all the
// problems are reported at once, and unused checkpoint tensors are listed;
// initializers of a data type no tensor has (which no checkpoint can hold)
// keep their values and are listed as kept.
// Parameters that torch.onnx.export deduplicated into Identity nodes (equal
// values at export, as in a freshly initialized model) are split back into
// initializers of their own.
//
// This package does not run models, check them against operator schemas,
// or follow subgraphs when listing or replacing initializers.
package onnx
