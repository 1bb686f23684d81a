package modelcmd

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/models"
	"github.com/ckptkit/ckpt/tensor"
)

// names is a Source with the given keys, each a 1-element tensor.
type names []string

func (n names) Names() []string { return n }
func (n names) Tensor(name string) *tensor.Tensor {
	for _, k := range n {
		if k == name {
			return &tensor.Tensor{DType: tensor.Float32, Shape: []int64{1}}
		}
	}
	return nil
}

// quickstart is the quick-start fixture: torchvision's squeezenet1_1 with
// 10 classes (testdata/gen/quickstart.py).
func quickstart(t *testing.T) string {
	return filepath.Join(clitest.Root(t), "testdata", "quickstart", "squeezenet1_1.pt")
}

// rewrite saves the tensors of path under new names (rename(old)) to a
// temporary safetensors file.
func rewrite(t *testing.T, path string, rename func(string) string) string {
	t.Helper()
	c, err := formats.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := &formats.Checkpoint{}
	for _, nt := range c.Tensors {
		if n := rename(nt.Name); n != "" {
			out.Tensors = append(out.Tensors, formats.Named{Name: n, Tensor: nt.Tensor})
		}
	}
	dst := filepath.Join(t.TempDir(), "w.safetensors")
	if _, err := formats.Save(dst, out, formats.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestLoadPrefixes loads the quick-start weights saved under the prefixes
// training code uses, found by themselves or named by --key and
// --strip-prefix, and checks the model computes the same output.
func TestLoadPrefixes(t *testing.T) {
	qs := quickstart(t)
	x := SeededInput(1, 1, 64)
	ref, err := LoadModel("squeezenet1_1", qs, 0)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Forward(ref, x)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, prefix string
		opts         LoadOptions
		arch         string
		note         string // in stderr
	}{
		{"lightning", "state_dict.model.", LoadOptions{}, "squeezenet1_1", `under "state_dict.model."`},
		{"backbone detected", "backbone.", LoadOptions{}, "", "--arch squeezenet1_1 detected"},
		{"encoder", "encoder.", LoadOptions{}, "squeezenet1_1", `under "encoder."`},
		{"net", "net.", LoadOptions{}, "squeezenet1_1", `under "net."`},
		{"key", "model.", LoadOptions{Key: "model"}, "squeezenet1_1", ""},
		{"strip-prefix", "model.", LoadOptions{StripPrefix: "model."}, "squeezenet1_1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := rewrite(t, qs, func(n string) string { return tt.prefix + n })
			ios, _, stderr := clitest.Streams()
			m, err := Load(ios, w, tt.arch, 0, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if m.Spec.Name != "squeezenet1_1" {
				t.Errorf("got arch %s, want squeezenet1_1", m.Spec.Name)
			}
			if !strings.Contains(stderr.String(), tt.note) {
				t.Errorf("stderr %q, want it to say %q", stderr, tt.note)
			}
			got, err := Forward(m, x)
			if err != nil {
				t.Fatal(err)
			}
			if !nn.AllClose(got, want, 0, 0) {
				t.Errorf("output differs from the unprefixed weights'")
			}
		})
	}
	t.Run("ambiguous", func(t *testing.T) {
		c, _ := formats.Open(qs)
		defer c.Close()
		out := &formats.Checkpoint{}
		for _, nt := range c.Tensors {
			out.Tensors = append(out.Tensors, formats.Named{Name: "model." + nt.Name, Tensor: nt.Tensor}, formats.Named{Name: "ema." + nt.Name, Tensor: nt.Tensor})
		}
		w := filepath.Join(t.TempDir(), "two.safetensors")
		if _, err := formats.Save(w, out, formats.SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		ios, _, _ := clitest.Streams()
		_, err := Load(ios, w, "squeezenet1_1", 0, LoadOptions{})
		if cmdutil.ExitCode(err) != cmdutil.ExitInvalid || !strings.Contains(fmtErr(err), "--key") {
			t.Fatalf("got %v, want a usage error pointing at --key", err)
		}
		if _, err := Load(ios, w, "squeezenet1_1", 0, LoadOptions{Key: "ema"}); err != nil {
			t.Fatalf("--key ema: %v", err)
		}
	})
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestLoadMisfit loads weights into the wrong architecture, and weights
// that fit none: the error is short, counts the keys of each kind, and
// names the architecture that fits or the closest.
func TestLoadMisfit(t *testing.T) {
	qs := quickstart(t)
	noBias := rewrite(t, qs, func(n string) string {
		if n == "classifier.1.bias" {
			return ""
		}
		return n
	})
	extra := rewrite(t, qs, func(n string) string {
		if n == "features.0.bias" {
			return "features.0.extra"
		}
		return n
	})
	tests := []struct {
		name, weights, arch string
		want                []string
	}{
		{"other arch", qs, "resnet18", []string{"the weights do not fit resnet18: ", "keys missing", "keys unexpected", `missing "`, "and ", "more",
			"the weights match squeezenet1_1 exactly: use --arch squeezenet1_1"}},
		{"sibling arch", qs, "squeezenet1_0", []string{"the weights do not fit squeezenet1_0: ", "shape mismatches", "shapes (weights vs squeezenet1_0) differ for",
			"match squeezenet1_1 exactly"}},
		{"one key missing", noBias, "squeezenet1_1", []string{"1 key missing, 0 keys unexpected, 0 shape mismatches", `"classifier.1.bias"`,
			"they match no registered architecture better"}},
		{"none fits, arch detected", noBias, "", []string{"--arch is required: the weights match no registered architecture; the closest is squeezenet1_1 (1 key missing, 0 keys unexpected, 0 shape mismatches)"}},
		{"renamed key", extra, "", []string{"the closest is squeezenet1_1 (1 key missing, 1 key unexpected, 0 shape mismatches)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, _, _ := clitest.Streams()
			_, err := Load(ios, tt.weights, tt.arch, 0, LoadOptions{})
			if err == nil {
				t.Fatal("got no error")
			}
			if cmdutil.ExitCode(err) != cmdutil.ExitInvalid {
				t.Errorf("exit code %d, want 2", cmdutil.ExitCode(err))
			}
			msg := err.Error()
			if len(msg)-len(tt.weights) > 700 { // three examples of each kind: a few hundred bytes, not the 8-16 KB of every key
				t.Errorf("message is %d bytes, want a summary: %s", len(msg), msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
		})
	}
}

// TestLoadDetects loads the quick-start weights without --arch.
func TestLoadDetects(t *testing.T) {
	ios, _, stderr := clitest.Streams()
	m, err := Load(ios, quickstart(t), "", 0, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Spec.Name != "squeezenet1_1" {
		t.Errorf("got %s, want squeezenet1_1", m.Spec.Name)
	}
	if want := "--arch squeezenet1_1 detected: the weights match its keys and shapes exactly"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q lacks %q", stderr, want)
	}
}

// panicky is a module whose forward pass panics with v.
type panicky struct {
	nn.Base
	v any
}

func (p *panicky) Forward(*nn.Tensor) *nn.Tensor { panic(p.v) }

// TestForwardPanics checks that Forward returns a shape error as an error
// and lets every other panic (a bug) through.
func TestForwardPanics(t *testing.T) {
	x := nn.Zeros(1, 3, 4, 4)
	_, err := Forward(&panicky{v: &nn.ShapeError{Op: "Conv2d", Msg: "want 3 channels"}}, x)
	var se *nn.ShapeError
	if !errors.As(err, &se) {
		t.Fatalf("shape error: got %v, want an error wrapping *nn.ShapeError", err)
	}
	defer func() {
		if r := recover(); r == nil {
			t.Error("a bug's panic was turned into an error, want it to propagate")
		}
	}()
	_, err = Forward(&panicky{v: "index out of range"}, x)
	t.Errorf("got error %v, want a panic", err)
}

// TestForwardBadInputs runs inputs no architecture takes through models of
// several families: each is an error (exit 2 in the CLI), never a panic,
// which Forward would let through as a bug.
func TestForwardBadInputs(t *testing.T) {
	for _, arch := range []string{"squeezenet1_1", "resnet18", "mobilenet_v3_small", "shufflenet_v2_x0_5"} {
		m, err := models.Build(arch, models.Config{NumClasses: 10})
		if err != nil {
			t.Fatal(err)
		}
		m.Eval()
		for _, shape := range [][]int{{1, 1, 64, 64}, {3, 64, 64}, {1, 3, 0, 0}, {0, 3, 32, 32}, {2, 4, 32, 32}} {
			t.Run(fmt.Sprint(arch, shape), func(t *testing.T) {
				if _, err := Forward(m, nn.Zeros(shape...)); err == nil {
					t.Errorf("got no error, want one")
				}
			})
		}
	}
}

func TestLoadBadTransformInput(t *testing.T) {
	ios, _, _ := clitest.Streams()
	_, err := Load(ios, quickstart(t), "squeezenet1_1", 0, LoadOptions{TransformInput: "yes"})
	if cmdutil.ExitCode(err) != cmdutil.ExitInvalid || !strings.Contains(fmtErr(err), "want on or off") {
		t.Errorf("got %v, want a usage error", err)
	}
}

// TestLoadHugeClassifier refuses classifier sizes that would size a huge
// allocation, from --num-classes and from a file whose classifier weight
// has 2^21 rows (mis-shaped otherwise, so the model would allocate a fresh
// [2^21, 512, 1, 1] weight: 4 GB).
func TestLoadHugeClassifier(t *testing.T) {
	ios, _, _ := clitest.Streams()
	_, err := Load(ios, quickstart(t), "squeezenet1_1", 1<<40, LoadOptions{})
	if cmdutil.ExitCode(err) != cmdutil.ExitInvalid || !strings.Contains(fmtErr(err), "at most") {
		t.Errorf("--num-classes 2^40: got %v, want a refusal", err)
	}
	c, err := formats.Open(quickstart(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big, err := tensor.FromBytes(tensor.Float16, []int64{MaxClasses + 1, 1, 1, 1}, make([]byte, 2*(MaxClasses+1)))
	if err != nil {
		t.Fatal(err)
	}
	out := &formats.Checkpoint{}
	for _, nt := range c.Tensors {
		if nt.Name == "classifier.1.weight" {
			nt.Tensor = big
		}
		out.Tensors = append(out.Tensors, nt)
	}
	w := filepath.Join(t.TempDir(), "big.safetensors")
	if _, err := formats.Save(w, out, formats.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = Load(ios, w, "squeezenet1_1", 0, LoadOptions{})
	if cmdutil.ExitCode(err) != cmdutil.ExitInvalid || !strings.Contains(fmtErr(err), "has 1048577 classes; ckpt builds at most 1048576") {
		t.Errorf("file: got %v, want a refusal", err)
	}
}

// TestMisfitGolden keeps the wording of the misfit reports (go test
// -update rewrites testdata/*.golden).
func TestMisfitGolden(t *testing.T) {
	root := clitest.Root(t)
	t.Chdir(root)
	for name, arch := range map[string]string{"misfit_resnet18": "resnet18", "misfit_squeezenet1_0": "squeezenet1_0"} {
		t.Run(name, func(t *testing.T) {
			ios, _, _ := clitest.Streams()
			_, err := Load(ios, filepath.Join("testdata", "quickstart", "squeezenet1_1.pt"), arch, 0, LoadOptions{})
			if err == nil {
				t.Fatal("got no error")
			}
			clitest.Golden(t, name, []byte(err.Error()+"\n"))
		})
	}
}
