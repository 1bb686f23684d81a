package convert

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/internal/testenv"
)

// gen runs testdata/gen/convert_fixtures.py with args and returns its
// output, trimmed.
func gen(t *testing.T, args ...string) string {
	t.Helper()
	py := testenv.Python(t)
	script := filepath.Join(clitest.Root(t), "testdata", "gen", "convert_fixtures.py")
	out, err := exec.Command(py, append([]string{script}, args...)...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("convert_fixtures.py %v: %v\n%s", args, err, msg)
	}
	return strings.TrimSpace(string(out))
}

// TestInteropResume converts a torch-made training checkpoint (model,
// Adam optimizer, StepLR scheduler, epoch, nested config, history) .pt to
// .pt (issue 11 item 7) and has torch 1.13 check that torch.load gives the
// same structure as the original (types, key order, values, tensors and
// their sharing; with weights_only=True too where torch loads the original
// so), and that training resumed from the output (load_state_dict of
// model, optimizer and scheduler, two more steps) gives exactly the
// parameters resuming from the original gives.
func TestInteropResume(t *testing.T) {
	testenv.Python(t)
	dir := t.TempDir()
	orig, out := filepath.Join(dir, "train.pt"), filepath.Join(dir, "converted.pt")
	seed := rand.IntN(1 << 20)
	gen(t, "train-checkpoint", orig, fmt.Sprint(seed))
	ios, stdout, _ := clitest.Streams()
	if err := convertRun(&Options{IO: ios, In: orig, Out: out}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stdout.String(), "flat") {
		t.Errorf("convert flattened the checkpoint:\n%s", stdout)
	}
	if got := gen(t, "same-structure", orig, out); !strings.HasPrefix(got, "ok") {
		t.Errorf("seed %d: torch.load of the output: %s", seed, got)
	}
	if got := gen(t, "resume", orig, out); got != "ok" {
		t.Errorf("seed %d: resuming from the output: %s", seed, got)
	}
}

// TestInteropWeightsOnly converts a checkpoint that torch 1.13's
// torch.load(weights_only=True) reads (no Python floats: its unpickler
// lacks BINFLOAT) and checks that it reads the output too, with the same
// structure: OrderedDict, dict, list, tuple, ints beyond 32 bits, bools
// and None.
func TestInteropWeightsOnly(t *testing.T) {
	testenv.Python(t)
	dir := t.TempDir()
	orig, out := filepath.Join(dir, "weights.pt"), filepath.Join(dir, "converted.pt")
	gen(t, "weights-checkpoint", orig, "3")
	ios, _, _ := clitest.Streams()
	if err := convertRun(&Options{IO: ios, In: orig, Out: out}); err != nil {
		t.Fatal(err)
	}
	if got, want := gen(t, "same-structure", orig, out), "ok (weights_only too)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestInteropONNXAliases exports, with torch 1.13 (eval mode,
// training=PRESERVE, do_constant_folding=False), a model whose equal
// parameters torch merges into one initializer (issue 11 item 5), converts
// the ONNX file to safetensors and has torch load the result with
// load_state_dict(strict=True): every name must be there, with the values
// of the model's state_dict.
func TestInteropONNXAliases(t *testing.T) {
	testenv.Python(t)
	for _, opset := range []string{"13", "17"} {
		t.Run("opset"+opset, func(t *testing.T) {
			dir := t.TempDir()
			model, ref, out := filepath.Join(dir, "m.onnx"), filepath.Join(dir, "ref.pt"), filepath.Join(dir, "m.safetensors")
			gen(t, "onnx-aliased", model, ref, "5", opset)
			ios, _, _ := clitest.Streams()
			if err := convertRun(&Options{IO: ios, In: model, Out: out}); err != nil {
				t.Fatal(err)
			}
			if got := gen(t, "load-strict", ref, out); got != "ok" {
				t.Errorf("torch: %s", got)
			}
		})
	}
}
