package diff

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/tensor"
)

func TestNewCmdDiff(t *testing.T) {
	tests := []struct {
		args    []string
		want    Options
		wantErr bool
	}{
		{args: []string{"a.pt", "b.safetensors"}, want: Options{A: "a.pt", B: "b.safetensors"}},
		{args: []string{"--json", "--atol", "1e-3", "a.pt", "b.onnx"}, want: Options{A: "a.pt", B: "b.onnx", JSON: true, ATol: 1e-3}},
		{args: []string{"--tensors-only", "a.pt", "b.pt"}, want: Options{A: "a.pt", B: "b.pt", TensorsOnly: true}},
		{args: []string{"a.pt"}, wantErr: true},
		{args: []string{"--atol", "small", "a.pt", "b.pt"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got := clitest.Parse(t, NewCmdDiff, tt.args, tt.wantErr)
			if got == nil {
				return
			}
			if got.A != tt.want.A || got.B != tt.want.B || got.JSON != tt.want.JSON || got.ATol != tt.want.ATol || got.TensorsOnly != tt.want.TensorsOnly {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

// setup copies fixtures (made by testdata/gen/pickle_fixtures.py) into a
// temporary working directory and derives from them, with package
// formats, the files no fixture provides: checkpoint.pt's state_dict
// (trained from another seed than zip_state_dict.pt: same names and
// shapes, other values) and zip_state_dict.pt cast to float16.
func setup(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(clitest.Root(t), "testdata", "pickle")
	for _, f := range []string{"zip_state_dict.pt", "legacy_state_dict.pt", "checkpoint.pt", "../onnx/dtypes.onnx", "../formats/meta_a.pt", "../formats/meta_b.pt"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	derive := func(in, out string, o formats.Options) {
		c, err := formats.Open(in)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		x, _, err := formats.Transform(c, o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := formats.Save(out, x, formats.SaveOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	derive("checkpoint.pt", "other_seed.safetensors", formats.Options{Key: "state_dict"})
	derive("zip_state_dict.pt", "half.safetensors", formats.Options{DType: tensor.Float16})
	derive("checkpoint.pt", "checkpoint.safetensors", formats.Options{})
	derive("checkpoint.safetensors", "flat.pt", formats.Options{})
}

// TestGolden checks the report, as text and JSON, and the exit status of
// each outcome.
func TestGolden(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options
		equal bool
	}{
		{"equal_across_formats", Options{A: "zip_state_dict.pt", B: "legacy_state_dict.pt"}, true},
		{"names_differ", Options{A: "zip_state_dict.pt", B: "checkpoint.pt"}, false},
		{"values_differ", Options{A: "zip_state_dict.pt", B: "other_seed.safetensors"}, false},
		{"values_differ_json", Options{A: "zip_state_dict.pt", B: "other_seed.safetensors", JSON: true}, false},
		{"half_exact", Options{A: "zip_state_dict.pt", B: "half.safetensors"}, false},
		// float16 keeps 11 significant bits: values of these small layers
		// (|x| < 4) round by at most 2^-11 * 4 ~ 0.002.
		{"half_within_atol", Options{A: "zip_state_dict.pt", B: "half.safetensors", ATol: 0.002}, true},
		{"half_within_atol_json", Options{A: "zip_state_dict.pt", B: "half.safetensors", ATol: 0.002, JSON: true}, true},
		// dtypes.onnx (onnx_fixtures.py) has UINT16, UINT32, UINT64,
		// COMPLEX64 and STRING initializers ckpt cannot read: not equal
		// even to itself.
		{"not_compared", Options{A: "dtypes.onnx", B: "dtypes.onnx"}, false},
		// meta_a.pt and meta_b.pt (convert_fixtures.py) have the same
		// tensors; epoch, arch and the optimizer's lr differ.
		{"meta_differs", Options{A: "meta_a.pt", B: "meta_b.pt"}, false},
		{"meta_differs_json", Options{A: "meta_a.pt", B: "meta_b.pt", JSON: true}, false},
		{"meta_tensors_only", Options{A: "meta_a.pt", B: "meta_b.pt", TensorsOnly: true}, true},
		// checkpoint.pt as safetensors: the metadata is kept, and the
		// "format" marker convert adds is not a difference.
		{"meta_kept_in_safetensors", Options{A: "checkpoint.pt", B: "checkpoint.safetensors"}, true},
		// ... and as PyTorch from that safetensors file, flat: the metadata
		// is in its metadata record.
		{"meta_kept_in_pt", Options{A: "checkpoint.pt", B: "flat.pt"}, true},
	}
	setup(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, stdout, stderr := clitest.Streams()
			opts := tt.opts
			opts.IO = ios
			err := diffRun(&opts)
			if tt.equal && err != nil {
				t.Errorf("got %v, want equal (nil)", err)
			}
			if !tt.equal && !errors.Is(err, cmdutil.ErrDifference) {
				t.Errorf("got %v, want ErrDifference", err)
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr = %q, want nothing", stderr)
			}
			if opts.JSON {
				var r Report
				if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
					t.Fatalf("output is not JSON: %v", err)
				}
				if r.Equal != tt.equal {
					t.Errorf("equal = %v, want %v", r.Equal, tt.equal)
				}
			}
			clitest.Golden(t, tt.name, stdout.Bytes())
		})
	}
}

func TestBadInput(t *testing.T) {
	setup(t)
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"missing a", Options{A: "nope.pt", B: "zip_state_dict.pt"}, "nope.pt: no such file or directory"},
		{"missing b", Options{A: "zip_state_dict.pt", B: "nope.pt"}, "nope.pt: no such file or directory"},
		{"negative atol", Options{A: "zip_state_dict.pt", B: "zip_state_dict.pt", ATol: -1}, "--atol -1"},
		{"nan atol", Options{A: "zip_state_dict.pt", B: "zip_state_dict.pt", ATol: math.NaN()}, "--atol NaN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, stdout, _ := clitest.Streams()
			opts := tt.opts
			opts.IO = ios
			err := diffRun(&opts)
			if cmdutil.ExitCode(err) != cmdutil.ExitInvalid || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v (exit %d), want exit 2 with %q", err, cmdutil.ExitCode(err), tt.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout = %q, want no report", stdout)
			}
		})
	}
}

func TestFloatJSON(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{{0, "0"}, {0.00125, "0.00125"}, {1e-9, "1e-09"}, {math.Inf(1), `"inf"`}}
	for _, tt := range tests {
		b, err := json.Marshal(Float(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("Float(%v): got %s, want %s", tt.in, b, tt.want)
		}
	}
}

func TestPrefixHint(t *testing.T) {
	tests := []struct {
		a, b []string
		want string
		inA  bool
	}{
		{[]string{"state_dict.w", "state_dict.b", "optimizer.x"}, []string{"w", "b"}, "state_dict.", true},
		{[]string{"w", "b"}, []string{"module.w", "module.b"}, "module.", false},
		{[]string{"w"}, []string{"b"}, "", false},
		{nil, []string{"b"}, "", false},
	}
	for _, tt := range tests {
		p, inA := prefixHint(tt.a, tt.b)
		if p != tt.want || (p != "" && inA != tt.inA) {
			t.Errorf("prefixHint(%v, %v) = %q, %v; want %q, %v", tt.a, tt.b, p, inA, tt.want, tt.inA)
		}
	}
}
