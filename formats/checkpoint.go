package formats

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/pickle"
	"github.com/ckptkit/ckpt/tensor"
)

// Source format names, as Checkpoint.Format reports them.
const (
	FormatPyTorchZip         = "pytorch-zip"         // torch.save, torch >= 1.6
	FormatPyTorchLegacy      = "pytorch-legacy"      // torch.save, torch 0.1.10 to 1.5
	FormatPyTorchTar         = "pytorch-tar"         // torch 0.1.1 to 0.1.9
	FormatTorchScript        = "torchscript"         // torch.jit.save
	FormatSafetensors        = "safetensors"         // a single .safetensors file
	FormatSafetensorsSharded = "safetensors-sharded" // an index.json and its safetensors shards
	FormatPyTorchSharded     = "pytorch-sharded"     // an index.json and its PyTorch shards
	FormatONNX               = "onnx"                // an ONNX model's initializers
)

// Target format names for SaveOptions.Format.
const (
	PyTorch     = "pytorch"
	Safetensors = "safetensors"
	ONNX        = "onnx"
)

// Named is a tensor and its name in the checkpoint ([tensor.Named]).
type Named = tensor.Named

// Meta is one metadata entry: a key and a string value ([pickle.KeyValue],
// what a .pt's metadata record holds).
type Meta = pickle.KeyValue

// Skipped is a tensor of the source file that has no tensor.DType.
type Skipped struct {
	Name string
	// Type is the source format's name for its element type ("UINT16").
	Type  string
	Shape []int64
}

// SkippedError is Save's error for a checkpoint with skipped tensors.
type SkippedError struct {
	Skipped []Skipped
}

// Error names the skipped tensors and their types.
func (e *SkippedError) Error() string {
	return fmt.Sprintf("formats: %d tensor(s) have no ckpt dtype and would be missing from the output: %s",
		len(e.Skipped), SkippedList(e.Skipped, 8))
}

// SkippedList describes skipped tensors for a message: `"u16" (UINT16),
// ...`, at most n of them and the count of the rest.
func SkippedList(s []Skipped, n int) string {
	var b strings.Builder
	for i, x := range s {
		if i == n {
			fmt.Fprintf(&b, ", ... (%d more)", len(s)-n)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q (%s)", x.Name, x.Type)
	}
	return b.String()
}

// Checkpoint is a set of named tensors and string metadata, in file order.
// Tensors read their bytes from the file they came from until Close.
type Checkpoint struct {
	// Format is the source format (one of the Format* constants), or ""
	// for a checkpoint built in memory.
	Format string
	// Tensors lists the tensors in file order. Names are unique.
	Tensors []Named
	// Meta lists the metadata in file order. Keys are unique.
	Meta []Meta

	// Skipped lists, in file order, the tensors of the file that ckpt's
	// tensor model cannot represent (ONNX initializers of data type
	// UINT16, UINT32, UINT64, STRING, complex or float8; safetensors U16,
	// U32, U64, F8_* or C64 tensors): they are not in
	// Tensors. Save refuses a checkpoint with skipped tensors, since the
	// output would silently lack them; Transform's Exclude removes them.
	Skipped []Skipped

	// Pickle is the decoded PyTorch file (module tree, classes, root
	// object) when the checkpoint came from one, nil otherwise.
	Pickle *pickle.File
	// Object is the object a PyTorch file holds (a training checkpoint's
	// dict with its nested dicts, lists, numbers, strings and optimizer
	// state), in package pickle's value model, its tensors being those of
	// Tensors. Save writes it to PyTorch output with its structure, as
	// torch.save wrote it, instead of a flat state_dict. It is nil for
	// other formats, for whole-model pickles and TorchScript (whose output
	// is their state_dict), and after a Transform that left out or renamed
	// tensors of anything but a state_dict (a dict of tensors, which stays
	// one under the new names).
	Object any
	// outside lists the metadata keys that are not inside Object (after a
	// Transform with Key).
	outside []string
	// ONNX is the decoded model when the checkpoint came from an ONNX file.
	ONNX *onnx.Model

	closers []io.Closer
}

// Close releases the files the checkpoint reads from. Its tensors must not
// be read afterwards.
func (c *Checkpoint) Close() error {
	var errs []error
	for i := len(c.closers) - 1; i >= 0; i-- {
		errs = append(errs, c.closers[i].Close())
	}
	c.closers = nil
	return errors.Join(errs...)
}

// Names returns the tensors' names in file order. With [Checkpoint.Tensor]
// it makes a Checkpoint a [tensor.Source], so it can be handed to nn's
// Builder and LoadStateDict directly.
func (c *Checkpoint) Names() []string { return tensor.Names(c.Tensors) }

// Tensor returns the tensor named name, or nil.
func (c *Checkpoint) Tensor(name string) *tensor.Tensor {
	for _, nt := range c.Tensors {
		if nt.Name == name {
			return nt.Tensor
		}
	}
	return nil
}

// Metadata returns the metadata as a map.
func (c *Checkpoint) Metadata() map[string]string {
	if len(c.Meta) == 0 {
		return nil
	}
	m := make(map[string]string, len(c.Meta))
	for _, e := range c.Meta {
		m[e.Key] = e.Value
	}
	return m
}

// NumBytes returns the total size of the tensors' elements.
func (c *Checkpoint) NumBytes() int64 {
	var n int64
	for _, nt := range c.Tensors {
		n += nt.Tensor.NumBytes()
	}
	return n
}

// metaJSON encodes a pickle leaf value as JSON text: numbers, strings,
// booleans and None as JSON; bytes as a base64 string; a global as its
// dotted name. Non-finite floats, which JSON lacks, become the strings
// "nan", "inf" and "-inf" as Python prints them.
func metaJSON(v any) string {
	var b []byte
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case *big.Int:
		return x.String()
	case float64:
		switch {
		case math.IsNaN(x):
			return `"nan"`
		case math.IsInf(x, 1):
			return `"inf"`
		case math.IsInf(x, -1):
			return `"-inf"`
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		b, _ = json.Marshal(x)
	case []byte:
		b, _ = json.Marshal(base64.StdEncoding.EncodeToString(x))
	case *pickle.Global:
		b, _ = json.Marshal(x.String())
	default:
		b, _ = json.Marshal(v)
	}
	return string(b)
}
