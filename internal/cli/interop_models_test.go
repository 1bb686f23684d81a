package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/internal/testenv"
)

// pyRun runs a Python script with args and returns its stdout.
func pyRun(t *testing.T, py, script string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(py, append([]string{"-c", script}, args...)...)
	cmd.Env = append(os.Environ(), "CKPT_TORCH_THREADS=1")
	b, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("python: %v\n%s", err, stderr)
	}
	return b
}

// TestInteropInspectCounts checks inspect's parameters and buffers lines
// against torch's own count (parameters() and buffers()) for a whole-model
// pickle and a TorchScript archive (testdata/gen/pickle_fixtures.py) and
// for the state_dict of a torchvision resnet18 made here.
func TestInteropInspectCounts(t *testing.T) {
	py := testenv.Python(t)
	root := clitest.Root(t)
	dir := t.TempDir()
	sd := filepath.Join(dir, "resnet18.pt")
	script := `
import sys, json, torch, torchvision
sys.path.insert(0, sys.argv[1])
import __main__, pickle_fixtures
__main__.SmallCNN = pickle_fixtures.SmallCNN
def counts(m):
    return [sum(p.numel() for p in m.parameters()), sum(b.numel() for b in m.buffers())]
r = torchvision.models.resnet18(num_classes=10)
torch.save(r.state_dict(), sys.argv[4])
print(json.dumps({"model_zip": counts(torch.load(sys.argv[2])), "torchscript": counts(torch.jit.load(sys.argv[3])),
                  "resnet18": counts(r)}))
`
	pk := filepath.Join(root, "testdata", "pickle")
	b := pyRun(t, py, script, filepath.Join(root, "testdata", "gen"), filepath.Join(pk, "model_zip.pt"), filepath.Join(pk, "torchscript.pt"), sd)
	var want map[string][2]int64
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"model_zip": filepath.Join(pk, "model_zip.pt"), "torchscript": filepath.Join(pk, "torchscript.pt"), "resnet18": sd} {
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := run("inspect", "--json", path)
			if code != 0 {
				t.Fatalf("inspect: exit %d: %s", code, stderr)
			}
			var l struct{ Parameters, Buffers int64 }
			if err := json.Unmarshal([]byte(stdout), &l); err != nil {
				t.Fatal(err)
			}
			if w := want[name]; l.Parameters != w[0] || l.Buffers != w[1] {
				t.Errorf("got %d parameters and %d buffers, want torch's %d and %d", l.Parameters, l.Buffers, w[0], w[1])
			}
		})
	}
}

// TestInteropTransformInput makes googlenet and inception_v3 in torch with
// transform_input False and True (testdata/gen/models_parity.py: random
// weights, calibrated BatchNorm statistics, eval-mode output of one random
// image), and checks `ckpt verify`: within tolerance with the matching
// --transform-input, DIFFERENT with the other one, with a hint that names
// the flag; without the flag, on (the default) for a state_dict and what
// the file records for a whole-model pickle and a TorchScript archive.
func TestInteropTransformInput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds googlenet and inception_v3 in torch")
	}
	py := testenv.Python(t)
	root := clitest.Root(t)
	dir := t.TempDir()
	gen := exec.Command(py, filepath.Join(root, "testdata", "gen", "models_parity.py"), "--serve")
	gen.Env = append(os.Environ(), "CKPT_TORCH_THREADS=2")
	var settings []tiSetting
	var reqs strings.Builder
	for _, a := range []struct {
		arch string
		size int
	}{{"googlenet", 112}, {"inception_v3", 160}} {
		for _, ti := range []bool{false, true} {
			s := tiSetting{a.arch, a.size, ti}
			settings = append(settings, s)
			req, _ := json.Marshal(map[string]any{"arch": s.arch, "seed": 7, "out": s.dir(dir), "batch": 1, "size": s.size,
				"kwargs": map[string]any{"transform_input": ti, "aux_logits": false}})
			reqs.Write(req)
			reqs.WriteByte('\n')
		}
	}
	gen.Stdin = strings.NewReader(reqs.String())
	out, err := gen.Output()
	if err != nil {
		t.Fatalf("models_parity.py --serve: %v", err)
	}
	for i, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var resp struct {
			OK    bool
			Error string
		}
		if err := json.Unmarshal([]byte(line), &resp); err != nil || !resp.OK {
			t.Fatalf("request %d: %v %s", i, err, resp.Error)
		}
	}
	// The googlenet without transform_input also as a whole-model pickle and
	// a TorchScript archive, which record the setting.
	off := settings[0]
	pyRun(t, py, `
import sys, torch, torchvision
m = torchvision.models.googlenet(transform_input=False, aux_logits=False, init_weights=False)
m.load_state_dict(torch.load(sys.argv[1]))
m.eval()
torch.save(m, sys.argv[2])
torch.jit.save(torch.jit.script(m), sys.argv[3])
`, off.weights(dir), filepath.Join(dir, "whole.pt"), filepath.Join(dir, "script.pt"))

	for _, s := range settings {
		right, wrong := "off", "on"
		if s.ti {
			right, wrong = "on", "off"
		}
		io := filepath.Join(s.dir(dir), s.arch+".io.pt")
		verify := func(weights string, flags ...string) (int, string, string) {
			args := append([]string{"verify", weights, "--arch", s.arch, "--input", io + ":input", "--reference", io + ":output"}, flags...)
			return run(args...)
		}
		t.Run(fmt.Sprintf("%s/transform_input=%v", s.arch, s.ti), func(t *testing.T) {
			if code, stdout, stderr := verify(s.weights(dir), "--transform-input", right); code != 0 {
				t.Errorf("--transform-input %s: exit %d, want 0\n%s%s", right, code, stdout, stderr)
			}
			code, stdout, _ := verify(s.weights(dir), "--transform-input", wrong)
			if code != 1 || !strings.Contains(stdout, "DIFFERENT") {
				t.Errorf("--transform-input %s: exit %d, want 1 (DIFFERENT)\n%s", wrong, code, stdout)
			}
			if want := "try --transform-input " + right; !strings.Contains(stdout, "hint") || !strings.Contains(stdout, want) {
				t.Errorf("--transform-input %s: report lacks a hint with %q:\n%s", wrong, want, stdout)
			}
			code, stdout, _ = verify(s.weights(dir), "--transform-input", wrong, "--json")
			var rep struct {
				OK   bool
				Hint string
			}
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 1 || rep.OK || !strings.Contains(rep.Hint, "try --transform-input "+right) {
				t.Errorf("--json: exit %d, report %s, want ok false and a hint", code, stdout)
			}
			// Without the flag a state_dict runs with it on.
			code, stdout, _ = verify(s.weights(dir))
			if s.ti && code != 0 || !s.ti && (code != 1 || !strings.Contains(stdout, "try --transform-input off")) {
				t.Errorf("no flag: exit %d, want %s\n%s", code, map[bool]string{true: "0", false: "1 with a hint"}[s.ti], stdout)
			}
		})
	}
	for _, f := range []string{"whole.pt", "script.pt"} {
		t.Run("recorded/"+f, func(t *testing.T) {
			io := filepath.Join(off.dir(dir), "googlenet.io.pt")
			code, stdout, stderr := run("verify", filepath.Join(dir, f), "--input", io+":input", "--reference", io+":output")
			if code != 0 {
				t.Errorf("exit %d, want 0 (transform_input off, as the file records)\n%s%s", code, stdout, stderr)
			}
			if !strings.Contains(stderr, "--arch googlenet detected") {
				t.Errorf("stderr %q does not say googlenet was detected", stderr)
			}
		})
	}
}

// tiSetting is one model of TestInteropTransformInput.
type tiSetting struct {
	arch string
	size int
	ti   bool
}

func (s tiSetting) dir(base string) string {
	return filepath.Join(base, fmt.Sprintf("%s_%v", s.arch, s.ti))
}

func (s tiSetting) weights(base string) string { return filepath.Join(s.dir(base), s.arch+".pt") }
