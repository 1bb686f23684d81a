package pickle

// Limits on untrusted input. Every pickle is checked against them by a
// validating pass before any object is built; a file that exceeds one is
// refused with an error that names the limit.
const (
	// MaxPickleSize bounds the size of one pickle stream in bytes.
	MaxPickleSize = 64 << 20
	// MaxOps bounds the number of opcodes in one pickle.
	MaxOps = 4 << 20
	// MaxStack bounds the number of items on the pickle stack, counting
	// the items under every MARK.
	MaxStack = 1 << 20
	// MaxMarks bounds how deeply MARKs may nest.
	MaxMarks = 256
	// MaxWork bounds what the VM may allocate for one pickle, as estimated
	// by the validating pass from its opcodes and their arguments (a
	// ResNet-50 state_dict needs about 4 MB of it).
	MaxWork = 512 << 20
	// MaxMemo bounds the number of memo entries of one pickle.
	MaxMemo = 1 << 20
	// MaxLine bounds the argument of a newline-terminated opcode (protocol 0
	// strings, globals, decimal numbers) in bytes.
	MaxLine = 1 << 20
	// MaxDigits bounds decimal (INT, LONG, FLOAT) and LONG4 arguments,
	// whose decoding time grows faster than their length.
	MaxDigits = 1024
	// MaxDepth bounds the nesting depth of the decoded object tree.
	MaxDepth = 512
	// MaxNodes bounds the number of objects converted from the VM's values
	// and, separately, visited when naming tensors, so that shared
	// sub-objects cannot make the walk exponential.
	MaxNodes = 4 << 20
	// MaxEntries bounds the number of entries of a zip or tar archive.
	MaxEntries = 1 << 20
	// MaxRatio bounds the compression ratio of a deflated zip entry that is
	// read (pickles and records); torch writes every entry stored.
	MaxRatio = 200
	// MaxStorages bounds the number of storages of a legacy file.
	MaxStorages = 1 << 20
	// MaxMetadataSize bounds the size in bytes of a zip archive's metadata
	// record (MetadataRecord).
	MaxMetadataSize = 1 << 20
)

// limit holds the limits in force: the constants above, except in the fuzz
// harnesses, which lower them (see fuzzLimits) so that an input that runs
// up to a limit (a billion-laughs graph, millions of opcodes) costs
// milliseconds instead of a second of fuzzing, while the refusal at the
// limit is still exercised.
var limit = struct {
	ops, stack, memo, nodes int
	work                    int64
}{MaxOps, MaxStack, MaxMemo, MaxNodes, MaxWork}
