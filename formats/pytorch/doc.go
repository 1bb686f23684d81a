// Package pytorch writes PyTorch's zip checkpoint format (torch >= 1.6), the
// file torch.save(obj, path) makes: [Write] a state_dict, so that
// torch.load(path, weights_only=True) returns an OrderedDict that
// model.load_state_dict(sd, strict=True) accepts; [WriteObject] any object
// of package pickle's value model (a training checkpoint with its nested
// dicts, lists, numbers and optimizer state), so that torch.load returns
// the same structure. Reading .pt files is package pickle's job; the
// pickle itself is written by pickle.Encoder, the project's one pickle
// writer.
//
// # Layout written
//
// A zip archive, every entry STORED (uncompressed), under the prefix
// "archive/":
//
//	archive/data.pkl     pickle protocol 2 of the state_dict (below)
//	archive/data/0 ...   one entry per storage: raw little-endian elements
//	archive/version      "3\n", the zip format's version record
//	archive/byteorder    "little"
//	archive/extra/ckpt_metadata.json
//	                     string metadata, only when some is given
//	                     (WriteMeta, WriteObjectMeta)
//
// The metadata record (pickle.MetadataRecord) is one JSON object of string
// keys to string values in the order given, like safetensors'
// __metadata__: {"arch":"resnet18","classes":"[\"cat\",\"dog\"]"}.
// torch.load ignores it (it reads data.pkl, data/, version and byteorder;
// TorchScript keeps its own extra files under the same extra/ directory),
// and Python reads it with
// json.loads(zipfile.ZipFile(path).read("archive/extra/ckpt_metadata.json")).
// Package pickle reads it into File.Metadata.
//
// Every entry's data starts at a multiple of 64 bytes from the start of the
// file, as torch aligns it: the local header's extra field carries an
// "FB" block of 'Z' padding, as torch's writer makes it. Entries are streamed
// with a zip data descriptor (CRC-32 after the data), and zip64 records are
// written when a storage or the archive passes 4 GiB, so memory stays
// bounded whatever the checkpoint size.
//
// # data.pkl
//
// The pickle (protocol 2, see pickle.Encoder) is what torch's own pickler
// writes. For Write: collections.OrderedDict() filled with SETITEMS; each
// value is torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
// False, OrderedDict()), where storage is the persistent id
// ('storage', torch.<Type>Storage, key, 'cpu', numel): only opcodes and
// globals torch's weights_only unpickler accepts. WriteObject's tensors
// that require grad are wrapped in torch._utils._rebuild_parameter, as
// torch pickles nn.Parameter. Output is deterministic.
//
// # Shared storage
//
// Tensors that are row-major contiguous views (any offset) of one source
// storage, with one dtype, share one data/N entry holding the whole source
// storage, so tied weights stay tied in torch. A non-contiguous or expanded
// (stride 0) tensor is written contiguous into a storage of its own: its
// values are kept exactly, its sharing with other tensors is not. Write writes
// requires_grad False, as in a state_dict.
package pytorch
