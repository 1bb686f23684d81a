// Package modelcmd holds what the commands that run models share (ckpt run,
// verify, predict, bench): loading an architecture with its weights, reading
// input tensors from .pt, .safetensors or .npy files, writing outputs, and
// running a forward pass in inference mode.
package modelcmd

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/formats/npy"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
	"github.com/ckptkit/ckpt/nn/models"
	"github.com/ckptkit/ckpt/tensor"
)

// ArchFlag registers the --arch flag, with the registered names in its help.
func ArchFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "arch", "", "torchvision architecture (builder name, e.g. resnet18; see 'ckpt bench --list')")
	_ = cmd.RegisterFlagCompletionFunc("arch", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return models.Names(), cobra.ShellCompDirectiveNoFileComp
	})
}

// CheckArch returns a usage error when arch is empty or unknown, naming the
// close matches the registry suggests.
func CheckArch(arch string) (models.Spec, error) {
	if arch == "" {
		return models.Spec{}, cmdutil.UsageError("--arch is required (one of: %s)", strings.Join(models.Names(), ", "))
	}
	s, err := models.Lookup(arch)
	if err != nil {
		return models.Spec{}, cmdutil.UsageError("%v", err)
	}
	return s, nil
}

// LoadModel builds arch from the weights file at path, in eval mode, as
// [Load] does with the default options and nothing said on stderr.
func LoadModel(arch, path string, numClasses int) (nn.Module, error) {
	m, err := Load(&cmdutil.IOStreams{ErrOut: io.Discard}, path, arch, numClasses, LoadOptions{})
	if err != nil {
		return nil, err
	}
	return m.Module, nil
}

// SplitSpec splits "FILE:KEY" into its parts. A spec naming an existing file
// is a file without key, so paths that contain ':' still work.
func SplitSpec(spec string) (file, key string) {
	if _, err := os.Stat(spec); err == nil {
		return spec, ""
	}
	if i := strings.LastIndexByte(spec, ':'); i > 0 {
		return spec[:i], spec[i+1:]
	}
	return spec, ""
}

// ReadTensor reads the tensor that spec ("FILE" or "FILE:KEY") names: a .npy
// array, or an entry of any checkpoint formats.Open reads (KEY picks a tensor
// by name, such as "input" in a saved dict; without KEY the file must hold
// exactly one tensor). The values are widened to float32.
func ReadTensor(spec string) (*nn.Tensor, error) {
	var x *nn.Tensor
	err := readStored(spec, func(where string, t *tensor.Tensor) (err error) {
		x, err = fromStored(where, t)
		return err
	})
	return x, err
}

// readStored finds the stored tensor spec ("FILE" or "FILE:KEY") names, a
// .npy array or an entry of any checkpoint formats.Open reads, and hands it
// to use while its file is open, with the name to report it by.
func readStored(spec string, use func(where string, t *tensor.Tensor) error) error {
	file, key := SplitSpec(spec)
	if strings.EqualFold(filepath.Ext(file), ".npy") {
		if key != "" {
			return cmdutil.UsageError("%s: a .npy file holds one array; drop :%s", file, key)
		}
		t, closeFn, err := npy.Open(file)
		if err != nil {
			return cmdutil.FileError(file, err)
		}
		defer closeFn()
		return use(file, t)
	}
	c, err := formats.Open(file)
	if err != nil {
		return cmdutil.FileError(file, err)
	}
	defer c.Close()
	names := c.Names()
	if key == "" {
		if len(c.Tensors) != 1 {
			return cmdutil.UsageError("%s holds %s; pick one with %s:KEY (%s)", file, cmdutil.Plural(len(c.Tensors), "tensor"), file, list(names))
		}
		return use(file, c.Tensors[0].Tensor)
	}
	t := c.Tensor(key)
	if t == nil {
		return cmdutil.UsageError("%s: no tensor %q (have %s)", file, key, list(names))
	}
	return use(file+":"+key, t)
}

func list(names []string) string {
	if len(names) > 8 {
		return strings.Join(names[:8], ", ") + fmt.Sprintf(", ... %d more", len(names)-8)
	}
	return strings.Join(names, ", ")
}

func fromStored(where string, t *tensor.Tensor) (*nn.Tensor, error) {
	if !t.DType.IsFloat() {
		return nil, fmt.Errorf("%s: input is %s, want a floating-point tensor", where, t.DType)
	}
	x, err := nn.FromStored(t)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return x, nil
}

// SeededInput returns a deterministic batch of standard-normal images of
// shape [batch, 3, size, size], the same for the same seed on every machine.
func SeededInput(seed uint64, batch, size int) *nn.Tensor {
	r := rand.New(rand.NewPCG(seed, 0x636b7074)) // "ckpt"
	data := make([]float32, batch*3*size*size)
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	return nn.New(data, batch, 3, size, size)
}

// InputSize is the square input size an architecture's weights expect (the
// crop size of its preprocessing), 224 when unknown.
func InputSize(s models.Spec) int {
	if s.Preprocess.CropSize > 0 {
		return s.Preprocess.CropSize
	}
	return 224
}

// Forward runs m on x in inference mode (no autograd graph, through
// [nn.Infer], so repeated calls reuse their memory). A shape error inside
// the model (an input the architecture cannot take, [nn.ShapeError]) is
// returned as an error, as is an input without elements; any other panic is a bug in ckpt and propagates, so
// that it is reported as an internal error, not as bad input.
func Forward(m nn.Module, x *nn.Tensor) (out *nn.Tensor, err error) {
	if slices.Contains(x.Shape(), 0) {
		return nil, fmt.Errorf("input %s has no elements", Shape(x.Shape()))
	}
	if lm, ok := m.(*Model); ok {
		m = lm.Module
	}
	if g, ok := m.(*graph.Graph); ok {
		return forwardGraph(g, x)
	}
	if err := nn.Guard(func() { out = nn.Infer(m, x) }); err != nil {
		return nil, fmt.Errorf("forward pass on input %s failed: %w", Shape(x.Shape()), err)
	}
	return out, nil
}

// WriteOutput writes t to path by its extension: .npy (numpy.load reads it),
// .safetensors or .pt/.pth (one tensor named "output"; torch.load gives a
// dict {"output": tensor}). The file is written atomically and an existing
// one is replaced only with force.
func WriteOutput(path string, t *nn.Tensor, force bool) error {
	st := nn.ToStored(t)
	switch strings.ToLower(filepath.Ext(path)) {
	case ".npy":
		if !force {
			if _, err := os.Stat(path); err == nil {
				return cmdutil.UsageError("%s exists; pass --force to replace it", path)
			}
		}
		tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		if err := npy.Write(tmp, st); err != nil {
			tmp.Close()
			return err
		}
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		return os.Rename(tmp.Name(), path)
	case ".safetensors", ".pt", ".pth", ".bin":
		c := &formats.Checkpoint{Tensors: []formats.Named{{Name: "output", Tensor: st}}}
		_, err := formats.Save(path, c, formats.SaveOptions{Force: force})
		return err
	}
	return cmdutil.UsageError("%s: output must end in .npy, .safetensors or .pt", path)
}

// Shape formats a shape as torch prints sizes: [2, 1000].
func Shape(s []int) string {
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = fmt.Sprint(v)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// SameShape reports whether two shapes are equal.
func SameShape(a, b []int) bool { return slices.Equal(a, b) }
