// Package pickle reads every format torch.save and torch.jit.save have
// written, without executing anything from the file.
//
// Formats (detected from content by [Load]):
//   - zip (torch >= 1.6): prefix/data.pkl plus one stored entry per storage;
//     any archive prefix; the byteorder record is honoured, and ckpt's
//     metadata record (MetadataRecord) is read into File.Metadata.
//   - legacy (torch 0.1.10 to 1.5, or _use_new_zipfile_serialization=False):
//     five pickles in a row (magic number, protocol version, sys_info, the
//     object, the storage keys) followed by the raw storages.
//   - tar (torch 0.1.1 to 0.1.9): members sys_info, pickle, tensors, storages.
//   - TorchScript (torch.jit.save): a zip archive whose module objects list
//     their parameters and buffers under their state_dict names; the
//     TorchScript code is read only for each class's __parameters__ and
//     __buffers__ lines, never run.
//   - whole-model pickles (torch.save(model)) in the zip or legacy format:
//     module objects are rebuilt inertly (see [Object]) and their
//     _parameters, _buffers and _modules give the state_dict names.
//
// Safety. The pickle VM is github.com/nlpodyssey/gopickle, fed only pickles
// that a validating pass has accepted (verify.go): every opcode known, every
// length inside the data, stack, memo and MARK use simulated, and the sizes
// bounded by the constants in limits.go. Globals go through an allow-list in
// the spirit of torch.load(weights_only=True): torch's rebuild functions,
// containers and storage types may be used; any other class may only be
// instantiated inertly by NEWOBJ (its name and state are recorded, none of
// its code exists here); dangerous modules (os, posix, subprocess, sys,
// builtins' eval/exec/getattr/__import__, runpy, importlib, ...) are refused
// in any use with an error naming the global, such as
// `pickle: forbidden global "posix.system"`. Every pickle of a file is
// checked. A panic inside the VM is recovered and returned as an error.
//
// Laziness. Load reads the archive directory and the pickles only. Tensors
// are [tensor.Tensor] views of [tensor.Storage] values that read the file
// through its io.ReaderAt when their bytes are asked for. Tensors that share
// a storage in the file share one *tensor.Storage, and every view is checked
// with Validate before it is returned.
//
// Seeing what torch sees. The format is taken from the content as
// torch.load takes it: a zip archive when the file starts with a local file
// header, a tar archive when Python's tarfile accepts its first block's
// checksum, a pickle stream otherwise (so a pickle followed by a zip is
// the pickle). Zip members are found as torch's reader finds them (the
// central directory, the first member's prefix, names compared without
// ASCII case, CRCs not checked), and archives that two zip readers could
// see differently are refused: members differing only in case, names with
// NUL, backslashes or "..", encrypted, overlapping or unsupported-method
// members, several end-of-directory records, local names that differ from
// the directory's, offsets that assume prepended bytes. Where CPython's
// unpickler and a naive parser disagree, the reader reads what CPython reads
// or refuses (see rules.go): Python 2 names are renamed through CPython's own
// _compat_pickle tables, dotted names are refused, text numbers and memo
// keys must be plain decimals, escaped protocol 0 strings and arguments
// straddling a FRAME are refused. TorchScript's constants.pkl is checked
// like data.pkl.
//
// Scanning. [Scan] reads a file with the same rules and reports what
// torch.load would act on instead of stopping at it: every global outside
// the allow-list, every refused call, every anomaly, in every pickle of the
// file, with a [Severity], the entry and the byte offset. It never runs a
// pickle through the VM before it scanned it, and a torch file that scans
// clean is also one the reader loads.
//
// Writing. [Encoder] is the project's one pickle writer: it pickles a value
// of the decoded object model (protocol 2, as torch.save), so that what
// Load decodes from it equals the value. The package writes no files:
// formats/pytorch lays the pickle and its storages out as torch's zip
// archive.
//
// The package does not
// support sparse, quantized or complex tensors, numpy object arrays (numpy
// scalars and numeric arrays are decoded, see numpy.go), TorchScript
// archives from before torch 1.4 (model.json and a protobuf), or
// compressed storage entries (torch never writes them). Protocol 0 STRING
// and UNICODE arguments are kept as written, without decoding escapes.
package pickle
