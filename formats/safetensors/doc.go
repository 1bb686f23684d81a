// Package safetensors reads and writes Hugging Face's safetensors format,
// single files and sharded checkpoints.
//
// # On-disk layout
//
//	bytes [0, 8)        N, the header length, little-endian uint64
//	bytes [8, 8+N)      the header: a UTF-8 JSON object, padded with spaces
//	                    (the writer pads N to a multiple of 8)
//	bytes [8+N, EOF)    the data buffer: every tensor's bytes, row-major,
//	                    little-endian, back to back
//
// The header maps each tensor name to {"dtype": "F32", "shape": [2, 3],
// "data_offsets": [BEGIN, END]}, offsets relative to the data buffer. The
// optional key "__metadata__" holds a string-to-string map.
//
// # Validation
//
// [Read] checks a header as the reference Rust crate does, and a little
// more, so a file that passes can be read without surprises:
//   - N is at most [MaxHeaderSize] and 8+N fits in the file;
//   - the header is UTF-8 JSON starting with '{', an object of objects;
//     no name appears twice (the Rust crate keeps the last silently; a
//     file with two meanings for one name is refused here);
//   - dtypes are the ten ckpt knows (F64 F32 F16 BF16 I64 I32 I16 I8 U8
//     BOOL), or ones whose element size is known but that package tensor
//     lacks (U16 U32 U64 F8_E4M3 F8_E5M2 F8_E8M0 C64): those are checked
//     like the others and listed in File.Skipped instead of File.Tensors;
//     shapes are non-negative and their products do not overflow;
//   - sorted by offset, tensors are contiguous from 0 and non-overlapping
//     (each BEGIN equals the previous END), END-BEGIN equals the shape's
//     element count times the dtype size, and the last END is the end of
//     the file: no bytes are left over;
//   - __metadata__ values are strings.
//
// Errors name the file and the fault (*HeaderError).
//
// Reading is lazy: [Read] reads the header only; tensors are
// [tensor.Tensor] values whose storage is an io.ReaderAt range of the file.
//
// # Writing
//
// [Write] streams: it writes the header, then each tensor with
// [tensor.Tensor.WriteTo], so memory stays bounded by the tensor package's
// chunk size. Tensors are written in the order given (not re-sorted by dtype
// as the Rust writer does); readers order tensors by offset, so a write and
// read back keeps the order. A consequence: a tensor following one of odd
// byte size may start at an offset that is not a multiple of its element
// size (readers that map the file copy such tensors; the format allows it).
// safetensors has no storage sharing: tensors that share storage in the
// source are written once each.
//
// # Sharding
//
// Sharded checkpoints follow Hugging Face's layout:
// model-00001-of-00003.safetensors ... and model.safetensors.index.json
// ({"metadata": {"total_size": N}, "weight_map": {name: file}}). [PlanShards]
// splits tensors as transformers does, [ParseSize] reads sizes as Hugging
// Face does ("2GB" = 2*10^9 bytes, "2GiB" = 2*2^30), and [OpenIndex] opens a
// whole sharded checkpoint from its index.
package safetensors
