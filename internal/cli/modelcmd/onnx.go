package modelcmd

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
	"github.com/ckptkit/ckpt/nn/graph/onnximport"
	"github.com/ckptkit/ckpt/tensor"
)

// The ONNX path of the model commands: an .onnx file is its own
// architecture, so --arch is not needed; the graph is imported into
// nn/graph and run on nn's kernels.

// IsONNX reports whether path names an ONNX model (by extension, or by
// content for other names).
func IsONNX(path string) bool {
	if strings.EqualFold(filepath.Ext(path), ".onnx") {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 64)
	n, _ := io.ReadFull(f, head)
	return !strings.EqualFold(filepath.Ext(path), ".pb") && onnx.Detect(head[:n])
}

// LoadGraph opens an ONNX model and imports it, in eval mode. A node ckpt
// cannot run is an error (exit 2) whose one line names it.
func LoadGraph(path string) (*graph.Graph, *onnx.Model, error) {
	m, err := onnx.Open(path)
	if err != nil {
		return nil, nil, cmdutil.FileError(path, err)
	}
	g, err := onnximport.Import(m, onnximport.Options{})
	if err != nil {
		m.Close()
		return nil, nil, cmdutil.FileError(path, err)
	}
	g.Eval()
	return g, m, nil
}

// ReadValue reads a graph input: FILE.pb (a serialized ONNX TensorProto,
// any element type), FILE.npy, or FILE.safetensors:KEY / FILE.pt:KEY.
func ReadValue(spec string) (*graph.Value, error) {
	file, _ := SplitSpec(spec)
	if strings.EqualFold(filepath.Ext(file), ".pb") {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, cmdutil.FileError(file, err)
		}
		tp, err := onnx.UnmarshalTensor(b)
		if err != nil {
			return nil, cmdutil.FileError(file, err)
		}
		v, err := onnximport.ValueFromProto(tp)
		if err != nil {
			return nil, cmdutil.FileError(file, err)
		}
		return v, nil
	}
	var v *graph.Value
	err := readStored(spec, func(where string, t *tensor.Tensor) (err error) {
		v, err = valueOfStored(where, t)
		return err
	})
	return v, err
}

// valueOfStored converts a stored tensor of any dtype into a graph value.
func valueOfStored(where string, t *tensor.Tensor) (*graph.Value, error) {
	shape := make([]int, len(t.Shape))
	for k, d := range t.Shape {
		shape[k] = int(d)
	}
	if t.DType.IsFloat() {
		if t.DType == tensor.Float32 || t.DType == tensor.Float16 || t.DType == tensor.BFloat16 {
			x, err := nn.FromStored(t)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			if t.DType == tensor.Float32 {
				return graph.FromTensor(x), nil
			}
			dt := map[tensor.DType]graph.DType{tensor.Float16: graph.Float16, tensor.BFloat16: graph.BFloat16}[t.DType]
			f := make([]float64, x.Numel())
			for k, v := range x.Data() {
				f[k] = float64(v)
			}
			return graph.FromFloat64s(dt, shape, f), nil
		}
	}
	b, err := t.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	n := int(t.NumElements())
	le := binary.LittleEndian
	if t.DType == tensor.Float64 {
		f := make([]float64, n)
		for k := range f {
			f[k] = math.Float64frombits(le.Uint64(b[8*k:]))
		}
		return graph.FromFloat64s(graph.Float64, shape, f), nil
	}
	dt, ok := map[tensor.DType]graph.DType{tensor.Int8: graph.Int8, tensor.Int16: graph.Int16, tensor.Int32: graph.Int32,
		tensor.Int64: graph.Int64, tensor.Uint8: graph.Uint8, tensor.Bool: graph.Bool}[t.DType]
	if !ok {
		return nil, fmt.Errorf("%s: dtype %s is not supported", where, t.DType)
	}
	v := make([]int64, n)
	size := t.DType.Size()
	for k := range v {
		switch {
		case size == 1 && (dt == graph.Int8):
			v[k] = int64(int8(b[k]))
		case size == 1:
			v[k] = int64(b[k])
		case size == 2:
			v[k] = int64(int16(le.Uint16(b[2*k:])))
		case size == 4:
			v[k] = int64(int32(le.Uint32(b[4*k:])))
		default:
			v[k] = int64(le.Uint64(b[8*k:]))
		}
	}
	return graph.FromInt64s(dt, shape, v), nil
}

// GraphInputs matches --input specs to the graph's inputs: in graph input
// order, or NAME=FILE.
func GraphInputs(g *graph.Graph, specs []string) ([]*graph.Value, error) {
	ins := g.Inputs()
	vals := make([]*graph.Value, len(ins))
	next := 0
	for _, spec := range specs {
		k := -1
		if name, file, ok := strings.Cut(spec, "="); ok {
			for j, in := range ins {
				if in.Name == name {
					k = j
				}
			}
			if k < 0 {
				names := make([]string, len(ins))
				for j, in := range ins {
					names[j] = in.Name
				}
				return nil, cmdutil.UsageError("the graph has no input %q (inputs: %s)", name, list(names))
			}
			spec = file
		} else {
			for next < len(ins) && vals[next] != nil {
				next++
			}
			k = next
		}
		if k >= len(ins) {
			return nil, cmdutil.UsageError("%d inputs given, the graph takes %d", len(specs), len(ins))
		}
		if vals[k] != nil {
			return nil, cmdutil.UsageError("input %q given twice", ins[k].Name)
		}
		v, err := ReadValue(spec)
		if err != nil {
			return nil, err
		}
		vals[k] = v
	}
	for k, v := range vals {
		if v == nil {
			return nil, cmdutil.UsageError("no --input for graph input %q (%s); give %d inputs in graph order or NAME=FILE", ins[k].Name, ins[k].DType, len(ins))
		}
	}
	return vals, nil
}

// RunGraph runs g in eval mode without recording gradients; a failing node
// is an error naming it.
func RunGraph(g *graph.Graph, ins []*graph.Value) ([]*graph.Value, error) {
	var outs []*graph.Value
	var err error
	nn.NoGrad(func() {
		if e := nn.Guard(func() { outs, err = g.RunOrdered(ins...) }); e != nil {
			err = e
		}
	})
	if err != nil {
		return nil, &cmdutil.ExitError{Code: cmdutil.ExitInvalid, Err: err}
	}
	return outs, nil
}

// WriteGraphOutputs writes one output to OUT by its extension (.npy,
// .safetensors, .pt, .pb), or several as OUT/output_<i>.pb (OUT a
// directory, made if needed). Nothing is written unless every output can
// be.
func WriteGraphOutputs(out string, outs []*graph.Value, force bool) ([]string, error) {
	if len(outs) == 1 && !isDir(out) {
		v := outs[0]
		if strings.EqualFold(filepath.Ext(out), ".pb") {
			return []string{out}, writePB(out, v, force)
		}
		if v.Tensor() == nil {
			return nil, cmdutil.UsageError("the output is %s; write it as .pb", v.DType())
		}
		return []string{out}, WriteOutput(out, v.Tensor(), force)
	}
	if ext := filepath.Ext(out); ext != "" && !isDir(out) {
		return nil, cmdutil.UsageError("the graph has %d outputs: --output must be a directory (gets output_<i>.pb), not %s", len(outs), out)
	}
	bufs := make([][]byte, len(outs))
	for k, v := range outs {
		tp, err := onnximport.ProtoFromValue(fmt.Sprintf("output_%d", k), v)
		if err != nil {
			return nil, err
		}
		if bufs[k], err = onnx.MarshalTensor(tp); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for k := range outs {
		p := filepath.Join(out, fmt.Sprintf("output_%d.pb", k))
		if _, err := os.Stat(p); err == nil && !force {
			return nil, cmdutil.UsageError("%s exists; pass --force to replace it", p)
		}
		paths = append(paths, p)
	}
	for k, p := range paths {
		if err := atomicWrite(p, bufs[k]); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func writePB(path string, v *graph.Value, force bool) error {
	if _, err := os.Stat(path); err == nil && !force {
		return cmdutil.UsageError("%s exists; pass --force to replace it", path)
	}
	tp, err := onnximport.ProtoFromValue("output", v)
	if err != nil {
		return err
	}
	b, err := onnx.MarshalTensor(tp)
	if err != nil {
		return err
	}
	return atomicWrite(path, b)
}

func atomicWrite(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// CompareValues checks got against want elementwise within
// atol + rtol·|want| (NaN where NaN); it returns the largest absolute
// error and a description of the first mismatch, "" when they match.
func CompareValues(got, want *graph.Value, rtol, atol float64) (float64, string) {
	if got.DType() != want.DType() && !(got.DType().IsFloat() && want.DType().IsFloat()) {
		return math.Inf(1), fmt.Sprintf("got %s, want %s", got.DType(), want.DType())
	}
	if !SameShape(got.Shape(), want.Shape()) {
		return math.Inf(1), fmt.Sprintf("got shape %s, want %s", Shape(got.Shape()), Shape(want.Shape()))
	}
	g, w := got.Float64s(), want.Float64s()
	maxErr, first := 0.0, ""
	for k := range w {
		d := math.Abs(g[k] - w[k])
		if math.IsNaN(w[k]) && math.IsNaN(g[k]) || g[k] == w[k] {
			continue
		}
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		maxErr = math.Max(maxErr, d)
		if d > atol+rtol*math.Abs(w[k]) && first == "" {
			first = fmt.Sprintf("element %d: got %g, want %g", k, g[k], w[k])
		}
	}
	return maxErr, first
}

// inputsFlag is a repeatable --input: the first value also fills the
// single-input field the torchvision path reads.
type inputsFlag struct {
	first *string
	all   *[]string
}

func (f inputsFlag) String() string { return *f.first }

func (f inputsFlag) Set(s string) error {
	if len(*f.all) == 0 {
		*f.first = s
	}
	*f.all = append(*f.all, s)
	return nil
}

func (f inputsFlag) Type() string { return "stringArray" }

// InputsFlag defines a repeatable --input flag: *first gets the first
// value, *all every value (an ONNX graph's inputs, in order or NAME=FILE).
func InputsFlag(cmd *cobra.Command, first *string, all *[]string, usage string) {
	cmd.Flags().Var(inputsFlag{first, all}, "input", usage)
}

// forwardGraph runs a single-input graph on x and returns its first
// output, which must be float32.
func forwardGraph(g *graph.Graph, x *nn.Tensor) (*nn.Tensor, error) {
	if n := len(g.Inputs()); n != 1 {
		return nil, cmdutil.UsageError("the graph takes %d inputs; use ckpt run with one --input each", n)
	}
	outs, err := RunGraph(g, []*graph.Value{graph.FromTensor(x)})
	if err != nil {
		return nil, err
	}
	if outs[0].Tensor() == nil {
		return nil, fmt.Errorf("output %q is %s, not float32", g.Outputs()[0], outs[0].DType())
	}
	return outs[0].Tensor(), nil
}
