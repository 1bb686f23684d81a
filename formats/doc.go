// Package formats is the checkpoint model shared by every file format ckpt
// reads and writes, and the operations on it that ckpt convert and ckpt diff
// need.
//
// A [Checkpoint] is an ordered list of named tensors ([tensor.Tensor], whose
// bytes are read lazily from the file) plus ordered string metadata and the
// name of the format it came from. [Open] recognizes a file by its content,
// never by its extension:
//
//	zip archive, legacy pickle, tar  PyTorch (package pickle): torch.save in
//	                                 every era, TorchScript, whole models,
//	                                 and bare pickles package pickle reads
//	8-byte length + '{'              safetensors (package formats/safetensors)
//	JSON object with "weight_map"    a sharded checkpoint's index file: all
//	                                 its shards, safetensors or PyTorch
//	protobuf ModelProto fields       ONNX (package formats/onnx): the main
//	                                 graph's initializers
//
// ([Detect] gives the exact rules.) A file is recognized when its reader
// can tell what is wrong with it, so that a damaged file is refused with
// the reader's reason rather than "not a ... file".
//
// Tensors the source holds that ckpt's tensor model cannot represent (ONNX
// initializers of data type UINT16, UINT32, UINT64, STRING, complex or
// float8; safetensors U16, U32, U64, F8_* and C64 tensors) are listed in
// Checkpoint.Skipped, not dropped silently: [Save]
// refuses a checkpoint that has any, and Options.Exclude leaves them out.
//
// [Save] writes a Checkpoint by the target's extension (.pt/.pth/.bin
// PyTorch zip, .safetensors, .onnx) or an explicit format. Writers stream
// tensor by tensor, so memory stays near the tensor package's chunk size
// (plus, for a strided view, the storage span it covers); output goes to a
// temporary file in the target directory that is synced and renamed into
// place, so a failed or interrupted Save never leaves a partial file, and an
// existing file is only replaced with SaveOptions.Force. On Linux, a
// contiguous tensor copied unchanged from a file into a safetensors output
// is copied by the kernel (copy_file_range), so converting from the page
// cache runs at the speed of cp.
//
// Metadata: PyTorch files' non-tensor values (epoch, arch, hyper-parameters)
// become metadata entries named by their path, with the value encoded as
// JSON ("7", "\"resnet50\"", "0.625"); safetensors' __metadata__ strings are
// kept as they are; a PyTorch zip archive's metadata record
// (pickle.MetadataRecord, which ckpt writes) gives entries kept as they
// are, after the pickle's. Saving to safetensors writes the metadata into
// __metadata__; saving to ONNX writes it to metadata_props (unless a graph is
// given); saving to PyTorch writes it into the metadata record (of every
// shard), except the leaves of an object written with its structure, which
// stay in its pickle, and a safetensors file's "format": "pt" marker. Metadata a target cannot hold is reported as dropped
// in the [SaveResult].
//
// [Transform] applies ckpt convert's options (--key, --strip-prefix,
// --rename, --dtype) lazily: renamed tensors share their source's bytes, and
// cast tensors convert while they stream. [Diff] compares two checkpoints
// across formats, streaming.
//
// The package does not execute anything from a file (package pickle's
// allow-list applies), does not change values unless a cast is asked for,
// and does not keep storage sharing where the target format has none
// (safetensors, ONNX).
package formats
