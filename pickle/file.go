package pickle

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/ckptkit/ckpt/tensor"
)

// Format names, as File.Format reports them.
const (
	FormatZip         = "zip"         // torch.save, torch >= 1.6
	FormatLegacy      = "legacy"      // torch.save(_use_new_zipfile_serialization=False), torch 0.1.10 to 1.5
	FormatTar         = "tar"         // torch 0.1.1 to 0.1.9
	FormatTorchScript = "torchscript" // torch.jit.save
)

// File is a decoded PyTorch file. Tensors read their bytes lazily from the
// reader the File was loaded from; they stay valid until Close.
type File struct {
	// Format is one of FormatZip, FormatLegacy, FormatTar, FormatTorchScript.
	Format string
	// IsModule reports a whole-model pickle (torch.save(model)): the saved
	// object, or one of its values, is an nn.Module instance.
	IsModule bool
	// Prefix is the archive's top-level directory (zip and TorchScript).
	Prefix string
	// Tensors lists every tensor of the object in pickle order, named by
	// its path: dict keys, list and tuple indices and object attributes
	// joined by "." ("optimizer.state.0.momentum_buffer"). Inside a module
	// object the names are its state_dict keys and, as in state_dict(),
	// tensors it holds outside its parameters and persistent buffers are
	// not listed. A tensor reachable by two paths (tied weights) is listed
	// under both; a tensor saved alone has the empty name.
	Tensors []Named
	// Meta lists the non-tensor leaves (numbers, strings, bools, None,
	// bytes, globals) outside module objects, in pickle order.
	Meta []Meta
	// Metadata lists the entries of a zip archive's metadata record
	// (MetadataRecord) in the order written, nil when it has none.
	Metadata []KeyValue
	// Modules is the module tree of a whole-model pickle or TorchScript
	// archive (the first module object found), nil otherwise.
	Modules *Module
	// Classes lists the class names of the inert objects found, in order of
	// first appearance, such as "torchvision.models.resnet.ResNet".
	Classes []string
	// Root is the decoded object: see Dict, Tuple, Object and Global for
	// the value types.
	Root any

	closer io.Closer
}

// Named is a tensor and its path in the pickled object ([tensor.Named]).
type Named = tensor.Named

// Meta is a non-tensor leaf of the pickled object and its path.
type Meta struct {
	Path  string
	Value any
}

// Module is a node of a module tree: a torch.nn.Module (or TorchScript
// module) object with its direct parameters and buffers.
type Module struct {
	Name     string    `json:"name"`     // attribute name in the parent ("" or the path for the root)
	Class    string    `json:"class"`    // "torchvision.models.resnet.ResNet"
	Params   []string  `json:"params"`   // direct parameters, in state_dict order
	Buffers  []string  `json:"buffers"`  // direct persistent buffers, in state_dict order
	Children []*Module `json:"children"` // submodules, in registration order
}

// Close releases the file opened by Open. It is a no-op for a File made by
// Load.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	c := f.closer
	f.closer = nil
	return c.Close()
}

// Open opens and decodes the PyTorch file at path. The caller must Close
// the File when done with its tensors.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pickle: %w", err)
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("pickle: %w", err)
	}
	f, err := Load(fh, st.Size())
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	f.closer = fh
	return f, nil
}

// Load decodes a PyTorch file of size bytes read from r, detecting its
// format from its content. It reads the pickles and archive directories
// only; tensor bytes are read from r when asked for.
func Load(r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("pickle: negative size %d", size)
	}
	head := make([]byte, 512)
	n, err := r.ReadAt(head, 0)
	if n < len(head) && err != nil && err != io.EOF {
		return nil, fmt.Errorf("pickle: %w", err)
	}
	head = head[:n]
	switch {
	case n == 0:
		return nil, fmt.Errorf("pickle: empty file")
	case bytes.HasPrefix(head, []byte("PK\x03\x04")) || bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return loadZip(r, size)
	case IsTarHeader(head):
		// As torch.load: a file that is not a zip is a tar archive when
		// Python's tarfile accepts its first block (whatever its magic).
		return loadTar(r, size)
	case pickleStart(head[0]):
		// torch.load reads anything else as a pickle stream.
		return loadLegacy(r, size)
	}
	return nil, fmt.Errorf("pickle: not a PyTorch file (starts with %q)", head[:min(n, 8)])
}

// finish names the tensors of the decoded root.
func (f *File) finish(ts map[string]*tsClass) error {
	w := &walker{f: f, seen: map[string]bool{}, ts: ts}
	w.walk(f.Root, 0)
	if w.err != nil {
		return w.err
	}
	f.IsModule = f.Modules != nil && f.Format != FormatTorchScript
	return nil
}

// readSection reads n bytes at off, refusing sizes over MaxPickleSize.
func readSection(r io.ReaderAt, off, n int64, what string) ([]byte, error) {
	if n < 0 || n > MaxPickleSize {
		return nil, fmt.Errorf("pickle: %s of %d bytes exceeds limit %d", what, n, MaxPickleSize)
	}
	b := make([]byte, n)
	m, err := r.ReadAt(b, off)
	if int64(m) < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("pickle: reading %s at offset %d: %w", what, off, err)
	}
	return b, nil
}
