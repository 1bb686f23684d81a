// Package tensor is the stored-tensor model that every checkpoint format in ckpt
// shares: a dtype, a shape, strides and an offset into a [Storage] whose bytes
// are read lazily from an io.ReaderAt.
//
// A Tensor here is a description of bytes on disk, not a compute tensor (that
// is package nn). Listing a checkpoint builds Tensors without reading any
// element; elements are read only when asked for, by [Tensor.WriteTo],
// [Tensor.Bytes], [Tensor.Float32s] or [Tensor.SHA256].
//
// Invariants:
//   - DType names are PyTorch's: float32, float64, float16, bfloat16, int8,
//     int16, int32, int64, uint8, bool.
//   - Shape, Stride and Offset count elements, as torch does, never bytes.
//     Strides may be 0 (expanded tensors) and need not be row-major
//     (transposed, channels_last); they are never negative.
//   - Two Tensors that share a *Storage share bytes, as torch views do.
//     Writers use the pointer to keep shared storages shared.
//   - [Tensor.Validate] checks a view against its storage with overflow-safe
//     arithmetic; readers of untrusted files call it before a Tensor escapes.
//   - Bytes produced by this package are little-endian and row-major
//     (contiguous), whatever the layout or byte order of the storage.
//
// Memory: contiguous tensors stream through buffers of [ChunkSize] bytes; a
// strided view is gathered from at most its own size plus [SpanSlack] bytes
// of storage, so writing a checkpoint tensor by tensor peaks near its largest
// tensor plus 64 MiB.
package tensor
