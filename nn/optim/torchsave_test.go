package optim

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/internal/testenv"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/pickle"
)

// trainedOptimizer returns an optimizer that took steps on three parameters
// in two groups, with a scheduler's initial_lr, for every algorithm.
func trainedOptimizer(t *testing.T, alg Algorithm) *Optimizer {
	t.Helper()
	ps := []*nn.Tensor{nn.RandN(3, 4).SetRequiresGrad(true), nn.RandN(3).SetRequiresGrad(true), nn.RandN(2, 1, 2).SetRequiresGrad(true)}
	opts := []Option{LR(0.05), Momentum(0.9), AMSGrad()}
	if alg == SGD {
		opts = opts[:2]
	}
	o, err := New(alg, ps[:2], opts...)
	if err != nil {
		t.Fatal(err)
	}
	// In SGD the second group has no momentum: torch stores momentum_buffer=None.
	if _, err := o.AddParamGroup(ps[2:], LR(0.01), Betas(0.5, 0.75), Momentum(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := NewStepLR(o, 1, 0.5); err != nil {
		t.Fatal(err)
	}
	for k := 0; k < 3; k++ {
		for i, p := range ps {
			if i == 1 && k == 0 && alg == SGD {
				continue
			}
			p.SetGrad(nn.RandN(p.Shape()...))
		}
		o.Step()
	}
	return o
}

// TestWriteTorchRoundTrip writes state dicts with WriteTorch and reads them
// back through package pickle; every entry's data is 64-byte aligned.
func TestWriteTorchRoundTrip(t *testing.T) {
	for _, alg := range []Algorithm{SGD, Adam, AdamW} {
		t.Run(string(alg), func(t *testing.T) {
			sd := trainedOptimizer(t, alg).StateDict()
			var buf bytes.Buffer
			if err := WriteTorch(&buf, sd); err != nil {
				t.Fatal(err)
			}
			r := bytes.NewReader(buf.Bytes())
			f, err := pickle.Load(r, int64(buf.Len()))
			if err != nil {
				t.Fatal(err)
			}
			back, err := ReadStateDict(f, "")
			if err != nil {
				t.Fatal(err)
			}
			compareStateDicts(t, "WriteTorch", back, sd)
			if got, want := len(back.State), len(sd.State); got != want {
				t.Errorf("got %d states, want %d", got, want)
			}
			zr, err := zip.NewReader(r, int64(buf.Len()))
			if err != nil {
				t.Fatal(err)
			}
			for _, zf := range zr.File {
				off, err := zf.DataOffset()
				if err != nil || off%64 != 0 || zf.Method != zip.Store {
					t.Errorf("%s: data offset %d (%v), method %d; want a multiple of 64, stored", zf.Name, off, err, zf.Method)
				}
			}
		})
	}
}

// TestWriteTorchResumesInTorch continues, in torch, from a state Go wrote:
// Go resumes torch's adam_state.pt and sgd_state.pt for the fixture's steps,
// writes its state with WriteTorch, and torch loads it with torch.load into a fresh optimizer and takes more steps
// (testdata/gen/optim_resume_check.py); Go takes the same steps from its own
// state and must land where torch does.
func TestWriteTorchResumesInTorch(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping torch interop in -short mode")
	}
	py := testenv.Python(t)
	cases := loadCases(t, "../../testdata/optim/resume.json")
	for i := range cases {
		c := &cases[i]
		t.Run(c.Name, func(t *testing.T) {
			f, err := pickle.Open(filepath.Join("../../testdata/optim", c.File))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sd, err := ReadStateDict(f, "")
			if err != nil {
				t.Fatal(err)
			}
			params := make([]*nn.Tensor, len(c.Params))
			for i := range c.Params {
				params[i] = c.Params[i].tensor(t).SetRequiresGrad(true)
			}
			o := buildCase(t, c, params)
			if err := o.LoadStateDict(sd); err != nil {
				t.Fatal(err)
			}
			for _, row := range c.Grads {
				for i, g := range row {
					params[i].SetGrad(g.tensor(t))
				}
				o.Step()
			}
			dir := t.TempDir()
			state := filepath.Join(dir, "go_state.pt")
			out, err := os.Create(state)
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteTorch(out, o.StateDict()); err != nil {
				t.Fatal(err)
			}
			if err := out.Close(); err != nil {
				t.Fatal(err)
			}
			spec := map[string]any{"alg": c.Alg, "defaults": c.Defaults, "group2": c.Group2, "params": tensorsJSON(params)}
			specPath := filepath.Join(dir, "spec.json")
			b, _ := json.Marshal(spec)
			if err := os.WriteFile(specPath, b, 0o644); err != nil {
				t.Fatal(err)
			}
			res := filepath.Join(dir, "out.json")
			if b, err := exec.Command(py, "../../testdata/gen/optim_resume_check.py", "--state", state, "--spec", specPath, "--out", res).CombinedOutput(); err != nil {
				t.Fatalf("torch could not resume: %v\n%s", err, b)
			}
			var got struct {
				ParamGroups []map[string]any     `json:"param_groups"`
				Grads       [][]*fixTensor       `json:"grads"`
				Final       []fixTensor          `json:"final"`
				State       map[string]fixTensor `json:"state"`
			}
			b, err = os.ReadFile(res)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			for gi, pg := range got.ParamGroups {
				if lr := pg["lr"].(float64); lr != o.Groups[gi].LR {
					t.Errorf("group %d lr in torch: got %v, want %v", gi, lr, o.Groups[gi].LR)
				}
			}
			for _, row := range got.Grads {
				for i, g := range row {
					params[i].SetGrad(g.tensor(t))
				}
				o.Step()
			}
			for i := range params {
				checkTensor(t, fmt.Sprintf("param %d", i), params[i], &got.Final[i])
			}
			checkState(t, o.StateDict(), got.State)
		})
	}
}

func tensorsJSON(ts []*nn.Tensor) []map[string]any {
	out := make([]map[string]any, len(ts))
	for i, t := range ts {
		s := make([]string, t.Numel())
		for j, v := range t.Data() {
			s[j] = fmt.Sprint(v)
		}
		out[i] = map[string]any{"shape": t.Shape(), "data": strings.Join(s, " ")}
	}
	return out
}
