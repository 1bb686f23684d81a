// Package inspect implements `ckpt inspect`: list the tensors of a
// checkpoint of any format formats.Open reads, with the format, totals,
// metadata, the module tree (module pickles and TorchScript) and a summary
// of the graph (ONNX), as a table or as JSON, optionally with a SHA-256
// fingerprint per tensor.
//
// Listing reads only a file's index (pickles, headers, protobuf); --hash
// streams every tensor through tensor.Tensor.WriteTo into SHA-256, several
// tensors at once, with a progress bar on a terminal. The fingerprint is
// tensor.Tensor.SHA256's: the same for equal values whatever the format.
//
// Output: Listing.WriteTable for people, Listing.WriteJSON for programs
// ({"format", "tensors": [{"name", "dtype", "shape", "sha256"}], "parameters",
// "buffers", "buffers_from", "bytes", "metadata", "modules", "classes",
// "graph"}, one tensor per line). Totals sum every listed tensor, so a tensor
// listed under two names (tied weights) counts twice, as it does in the
// files convert writes. Buffers are counted apart from parameters where the
// file tells them apart (Listing.Buffers).
package inspect
