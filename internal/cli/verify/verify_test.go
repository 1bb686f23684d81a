package verify

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/internal/cli/modelcmd"
)

func TestNewCmdVerify(t *testing.T) {
	tests := []struct {
		args    []string
		check   func(*Options) bool
		wantErr bool
	}{
		{[]string{"w.pt", "--arch", "resnet18", "--reference", "y.npy"}, func(o *Options) bool {
			return len(o.Weights) == 1 && o.Arch == "resnet18" && o.Reference == "y.npy" && !o.AtolSet && o.Batch == 2
		}, false},
		{[]string{"a.pt", "b.safetensors", "--arch", "vgg11", "--atol", "1e-3", "--json"}, func(o *Options) bool {
			return len(o.Weights) == 2 && o.Atol == 1e-3 && o.AtolSet && o.JSON
		}, false},
		{[]string{"w.pt", "--rtol", "0.01", "--seed", "9", "--batch", "1"}, func(o *Options) bool {
			return o.AtolSet && o.Rtol == 0.01 && o.Seed == 9 && o.Batch == 1
		}, false},
		{[]string{}, nil, true},
		{[]string{"a", "b", "c"}, nil, true},
		{[]string{"a", "--atol", "x"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got := clitest.Parse(t, NewCmdVerify, tt.args, tt.wantErr)
			if got == nil {
				return
			}
			if !tt.check(got) {
				t.Errorf("options %+v do not match the flags", *got)
			}
		})
	}
}

// The quick-start fixture (testdata/gen/quickstart.py) holds squeezenet1_1
// float16 weights and the output torch computed for an input.
func quickstart(t *testing.T) (weights, io string) {
	dir := filepath.Join(clitest.Root(t), "testdata", "quickstart")
	return filepath.Join(dir, "squeezenet1_1.pt"), filepath.Join(dir, "io.pt")
}

func TestVerifyAgainstTorch(t *testing.T) {
	w, io := quickstart(t)
	ios, stdout, _ := clitest.Streams()
	err := verifyRun(&Options{IO: ios, Weights: []string{w}, Arch: "squeezenet1_1",
		Input: io + ":input", Reference: io + ":output", Batch: 2, JSON: true})
	if err != nil {
		t.Fatalf("verify failed: %v\n%s", err, stdout)
	}
	var rep map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"arch", "ok", "max_abs_err", "max_rel_err", "cosine", "top1_agree", "output_shape"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, stdout)
		}
	}
	if rep["ok"] != true || rep["arch"] != "squeezenet1_1" {
		t.Errorf("got ok=%v arch=%v, want true squeezenet1_1", rep["ok"], rep["arch"])
	}
}

func TestVerifyFindsDifference(t *testing.T) {
	w, io := quickstart(t)
	ios, stdout, _ := clitest.Streams()
	// The input as its own reference: shapes differ, an input error (exit 2).
	err := verifyRun(&Options{IO: ios, Weights: []string{w}, Arch: "squeezenet1_1",
		Input: io + ":input", Reference: io + ":input", Batch: 2})
	if err == nil || cmdutil.ExitCode(err) != cmdutil.ExitInvalid {
		t.Fatalf("got %v, want a shape error with exit 2", err)
	}
	// torch's output with one element moved by 1: a difference (exit 1).
	ref, err := modelcmd.ReadTensor(io + ":output")
	if err != nil {
		t.Fatal(err)
	}
	ref.Data()[0]++
	moved := filepath.Join(t.TempDir(), "moved.npy")
	if err := modelcmd.WriteOutput(moved, ref, false); err != nil {
		t.Fatal(err)
	}
	err = verifyRun(&Options{IO: ios, Weights: []string{w}, Arch: "squeezenet1_1",
		Input: io + ":input", Reference: moved, Batch: 2})
	if !errors.Is(err, cmdutil.ErrDifference) {
		t.Fatalf("got %v, want ErrDifference\n%s", err, stdout)
	}
	if !strings.Contains(stdout.String(), "DIFFERENT") {
		t.Errorf("report does not say DIFFERENT:\n%s", stdout)
	}
}

func TestVerifyTwoFiles(t *testing.T) {
	w, _ := quickstart(t)
	ios, stdout, _ := clitest.Streams()
	if err := verifyRun(&Options{IO: ios, Weights: []string{w, w}, Arch: "squeezenet1_1", Batch: 1}); err != nil {
		t.Fatalf("same weights twice: %v\n%s", err, stdout)
	}
	if !strings.Contains(stdout.String(), "result         OK") {
		t.Errorf("report does not say OK:\n%s", stdout)
	}
}

func TestVerifyUsage(t *testing.T) {
	w, _ := quickstart(t)
	for name, o := range map[string]*Options{
		"no reference":       {Weights: []string{w}, Arch: "squeezenet1_1", Batch: 1},
		"unknown arch":       {Weights: []string{w, w}, Arch: "resnet19", Batch: 1},
		"reference with two": {Weights: []string{w, w}, Arch: "squeezenet1_1", Reference: "x.npy", Batch: 1},
	} {
		t.Run(name, func(t *testing.T) {
			ios, _, _ := clitest.Streams()
			o.IO = ios
			if err := verifyRun(o); cmdutil.ExitCode(err) != cmdutil.ExitInvalid {
				t.Fatalf("got %v, want a usage error", err)
			}
		})
	}
}

// TestVerifyDetectsArch verifies without --arch: the architecture is
// detected from the weights and said on stderr.
func TestVerifyDetectsArch(t *testing.T) {
	w, io := quickstart(t)
	ios, stdout, stderr := clitest.Streams()
	err := verifyRun(&Options{IO: ios, Weights: []string{w}, Input: io + ":input", Reference: io + ":output", Batch: 2})
	if err != nil {
		t.Fatalf("verify failed: %v\n%s", err, stdout)
	}
	if !strings.HasPrefix(stdout.String(), "verify squeezenet1_1: ") {
		t.Errorf("report does not name the detected architecture:\n%s", stdout)
	}
	if !strings.Contains(stderr.String(), "--arch squeezenet1_1 detected") {
		t.Errorf("stderr %q does not say the architecture was detected", stderr)
	}
}

// TestReferenceNeedsInput: a reference output says nothing without the input
// it was computed from (issue 11 item 3), so a seeded input is not made up.
func TestReferenceNeedsInput(t *testing.T) {
	w, io := quickstart(t)
	ios, stdout, _ := clitest.Streams()
	err := verifyRun(&Options{IO: ios, Weights: []string{w}, Arch: "squeezenet1_1", Reference: io + ":output", Batch: 2})
	if got := cmdutil.ExitCode(err); got != cmdutil.ExitInvalid {
		t.Fatalf("got exit %d (%v), want %d", got, err, cmdutil.ExitInvalid)
	}
	if msg := err.Error(); !strings.Contains(msg, "--input") || strings.Contains(msg, "\n") {
		t.Errorf("got message %q, want one line naming --input", msg)
	}
	if stdout.Len() > 0 {
		t.Errorf("got a report, want none:\n%s", stdout)
	}
}
