package run

import (
	"path/filepath"
	"testing"

	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/internal/cli/modelcmd"
	"github.com/ckptkit/ckpt/verify"
)

func TestNewCmdRun(t *testing.T) {
	ios, _, _ := clitest.Streams()
	var got *Options
	cmd := NewCmdRun(ios, func(o *Options) error { got = o; return nil })
	cmd.SetArgs([]string{"--arch", "resnet18", "--weights", "w.pt", "--input", "x.pt:input", "-o", "y.npy", "--force",
		"--transform-input", "off", "--key", "state_dict", "--strip-prefix", "model."})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Arch != "resnet18" || got.Weights != "w.pt" || got.Input != "x.pt:input" || got.Output != "y.npy" || !got.Force ||
		got.Load != (modelcmd.LoadOptions{TransformInput: "off", Key: "state_dict", StripPrefix: "model."}) {
		t.Errorf("options %+v do not match the flags", *got)
	}
}

// TestRunWritesTorchOutput runs the quick-start model (testdata/gen/
// quickstart.py) and compares every output format it writes with the output
// torch computed.
func TestRunWritesTorchOutput(t *testing.T) {
	dir := filepath.Join(clitest.Root(t), "testdata", "quickstart")
	io := filepath.Join(dir, "io.pt")
	want, err := modelcmd.ReadTensor(io + ":output")
	if err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{".npy", ".safetensors", ".pt"} {
		t.Run(ext, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "y"+ext)
			ios, _, _ := clitest.Streams()
			o := &Options{IO: ios, Arch: "squeezenet1_1", Weights: filepath.Join(dir, "squeezenet1_1.pt"), Input: io + ":input", Output: out}
			if err := runRun(o); err != nil {
				t.Fatal(err)
			}
			spec := out
			if ext != ".npy" {
				spec += ":output"
			}
			got, err := modelcmd.ReadTensor(spec)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := verify.Compare(got.Data(), want.Data(), want.Shape(), verify.DefaultTolerance)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK {
				t.Fatalf("written output differs from torch's: max abs err %g", rep.MaxAbsErr)
			}
			// A second run must not replace the file without --force.
			if err := runRun(o); cmdutil.ExitCode(err) != cmdutil.ExitInvalid {
				t.Fatalf("second run without --force: got %v, want exit 2", err)
			}
			o.Force = true
			if err := runRun(o); err != nil {
				t.Fatalf("with --force: %v", err)
			}
		})
	}
}
