// Package scan implements `ckpt scan`: tell whether model files are
// dangerous, seeing each file as torch.load would (pickle.Scan), and report
// every finding with its severity, where it is and why it matters, as text,
// JSON or SARIF 2.1.0.
//
// Every file is first read as torch.load reads it, whatever its name or
// other format: a safetensors, ONNX or .npy file whose bytes are also a
// pickle that runs code is reported. Files of the other formats are then
// validated by their own readers (safetensors headers, ONNX protobuf,
// .npy/.npz headers; object arrays are pickles and scanned as such), and a
// sharded checkpoint's *.index.json brings in its shards.
//
// Exit status: 0 when nothing at or above --fail-on was found and every file
// was read to the end, 1 when a finding reached --fail-on (even if a file
// also failed to parse: a pickle that breaks after a dangerous global is
// dangerous), 2 when a file could not be scanned. Nothing is reported clean
// that was not read.
package scan
