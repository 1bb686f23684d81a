package optim

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/internal/testenv"
	"github.com/ckptkit/ckpt/nn"
)

// The fixtures in testdata/optim are made by testdata/gen/optim_cases.py with
// PyTorch 1.13 (seed 0); TestOptimInterop regenerates them with a random
// seed and a random number of steps.

type fixTensor struct {
	Shape []int  `json:"shape"`
	Data  string `json:"data"`
}

func (f *fixTensor) tensor(t *testing.T) *nn.Tensor {
	t.Helper()
	fields := strings.Fields(f.Data)
	v := make([]float32, len(fields))
	for i, s := range fields {
		x, err := strconv.ParseFloat(s, 32)
		if err != nil {
			t.Fatalf("fixture value %q: %v", s, err)
		}
		v[i] = float32(x)
	}
	return nn.New(v, f.Shape...)
}

type fixSched struct {
	Type   string         `json:"type"`
	Kwargs map[string]any `json:"kwargs"`
}

type fixCase struct {
	Name     string               `json:"name"`
	Alg      string               `json:"alg"`
	Defaults map[string]any       `json:"defaults"`
	Group2   map[string]any       `json:"group2"`
	Sched    *fixSched            `json:"sched"`
	Init     []fixTensor          `json:"init"`
	Grads    [][]*fixTensor       `json:"grads"`
	LRs      [][]float64          `json:"lrs"`
	Final    []fixTensor          `json:"final"`
	State    map[string]fixTensor `json:"state"`
	Params   []fixTensor          `json:"params"`
	File     string               `json:"file"`
	Groups   []map[string]any     `json:"param_groups"`
}

func loadCases(t *testing.T, path string) []fixCase {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Cases []fixCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(d.Cases) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	return d.Cases
}

// kwargOptions turns torch keyword arguments into Options.
func kwargOptions(t *testing.T, kw map[string]any) []Option {
	t.Helper()
	var opts []Option
	for k, v := range kw {
		switch k {
		case "lr":
			opts = append(opts, LR(v.(float64)))
		case "momentum":
			opts = append(opts, Momentum(v.(float64)))
		case "dampening":
			opts = append(opts, Dampening(v.(float64)))
		case "weight_decay":
			opts = append(opts, WeightDecay(v.(float64)))
		case "eps":
			opts = append(opts, Eps(v.(float64)))
		case "betas":
			b := v.([]any)
			opts = append(opts, Betas(b[0].(float64), b[1].(float64)))
		case "nesterov":
			if v.(bool) {
				opts = append(opts, Nesterov())
			}
		case "maximize":
			if v.(bool) {
				opts = append(opts, Maximize())
			}
		case "amsgrad":
			if v.(bool) {
				opts = append(opts, AMSGrad())
			}
		default:
			t.Fatalf("unknown torch option %s", k)
		}
	}
	return opts
}

// buildCase makes the optimizer of a case: one group of all parameters, or
// the first two and then the third with group2's overrides, as the
// generator does.
func buildCase(t *testing.T, c *fixCase, params []*nn.Tensor) *Optimizer {
	t.Helper()
	first := params
	if c.Group2 != nil {
		first = params[:2]
	}
	o, err := New(Algorithm(c.Alg), first, kwargOptions(t, c.Defaults)...)
	if err != nil {
		t.Fatal(err)
	}
	if c.Group2 != nil {
		if _, err := o.AddParamGroup(params[2:], kwargOptions(t, c.Group2)...); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

func buildSched(t *testing.T, o *Optimizer, s *fixSched) Scheduler {
	t.Helper()
	if s == nil {
		return nil
	}
	f := func(m map[string]any, k string) float64 { return m[k].(float64) }
	kw := s.Kwargs
	var sch Scheduler
	var err error
	switch s.Type {
	case "StepLR":
		sch, err = NewStepLR(o, int(f(kw, "step_size")), f(kw, "gamma"))
	case "MultiStepLR":
		var ms []int
		for _, m := range kw["milestones"].([]any) {
			ms = append(ms, int(m.(float64)))
		}
		sch, err = NewMultiStepLR(o, ms, f(kw, "gamma"))
	case "CosineAnnealingLR":
		sch, err = NewCosineAnnealingLR(o, int(f(kw, "T_max")), f(kw, "eta_min"))
	case "LinearLR":
		sch, err = NewLinearLR(o, f(kw, "start_factor"), f(kw, "end_factor"), int(f(kw, "total_iters")))
	case "SequentialLR":
		w := kw["warmup"].(map[string]any)
		warm, err1 := NewLinearLR(o, f(w, "start_factor"), f(w, "end_factor"), int(f(w, "total_iters")))
		cos, err2 := NewCosineAnnealingLR(o, int(f(kw, "T_max")), f(kw, "eta_min"))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		ms := []int{int(kw["milestones"].([]any)[0].(float64))}
		sch, err = NewSequentialLR(o, []*LRScheduler{warm, cos}, ms)
	default:
		t.Fatalf("unknown scheduler %s", s.Type)
	}
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// Tolerances. Parameters: every update is computed with torch's float32
// operations in torch's order, so results differ only where torch's
// vectorised kernels fuse a multiply-add or divide in another order: an ulp
// or two per step, compounded over up to a dozen steps, stays below 2e-6 of
// the value; an absolute 1e-7 covers values that pass near zero. A wrong
// formula (bias correction, dampening, decoupled decay) is off by 1e-3 or
// more. Learning rates are float64 on both sides: 1e-12 relative.
const (
	rtol, atol = 2e-6, 1e-7
	lrTol      = 1e-12
)

func checkTensor(t *testing.T, what string, got *nn.Tensor, want *fixTensor) {
	t.Helper()
	w := want.tensor(t)
	if got == nil {
		t.Errorf("%s: missing, want %v", what, w)
		return
	}
	if !nn.AllClose(got.Reshape(w.Shape()...), w, rtol, atol) {
		t.Errorf("%s: got %v, want %v", what, got.Data(), w.Data())
	}
}

func runCase(t *testing.T, c *fixCase) {
	params := make([]*nn.Tensor, len(c.Init))
	for i := range c.Init {
		params[i] = c.Init[i].tensor(t).SetRequiresGrad(true)
	}
	o := buildCase(t, c, params)
	sch := buildSched(t, o, c.Sched)
	var lrs [][]float64
	if sch != nil {
		lrs = append(lrs, sch.LastLR())
	}
	for _, row := range c.Grads {
		o.ZeroGrad()
		for i, g := range row {
			if g != nil {
				params[i].SetGrad(g.tensor(t))
			}
		}
		o.Step()
		if sch != nil {
			sch.Step()
			lrs = append(lrs, sch.LastLR())
		}
	}
	for i := range params {
		checkTensor(t, fmt.Sprintf("param %d", i), params[i], &c.Final[i])
	}
	checkState(t, o.StateDict(), c.State)
	if c.LRs != nil {
		if len(lrs) != len(c.LRs) {
			t.Fatalf("got %d learning-rate records, want %d", len(lrs), len(c.LRs))
		}
		for k := range lrs {
			for g := range lrs[k] {
				if d := math.Abs(lrs[k][g] - c.LRs[k][g]); d > lrTol*math.Abs(c.LRs[k][g]) {
					t.Errorf("lr after scheduler step %d, group %d: got %v, want %v", k, g, lrs[k][g], c.LRs[k][g])
				}
			}
		}
	}
}

// checkState compares a state dict's tensors with torch's, by flattened name.
func checkState(t *testing.T, sd *StateDict, want map[string]fixTensor) {
	t.Helper()
	got, _ := sd.Flatten("")
	if len(got) != len(want) {
		t.Errorf("got %d state tensors %v, want %d", len(got), got.Names(), len(want))
	}
	for _, nt := range got {
		w, ok := want[nt.Name]
		if !ok {
			t.Errorf("state tensor %s: torch has none", nt.Name)
			continue
		}
		g, err := nn.FromStored(nt.Tensor)
		if err != nil {
			t.Fatal(err)
		}
		checkTensor(t, nt.Name, g, &w)
	}
}

func TestOptimParity(t *testing.T) {
	cases := loadCases(t, "../../testdata/optim/cases.json")
	for i := range cases {
		c := &cases[i]
		t.Run(c.Name, func(t *testing.T) { runCase(t, c) })
	}
}

// TestOptimInterop regenerates every case and the saved optimizer and
// scheduler states with a random seed (and step count) and runs the parity
// and resume tests on them.
func TestOptimInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping torch interop in -short mode")
	}
	py := testenv.Python(t)
	seed := time.Now().UnixNano() % 1000000
	dir := t.TempDir()
	if b, err := exec.Command(py, "../../testdata/gen/optim_cases.py", "--seed", fmt.Sprint(seed), "--out-dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("generator failed: %v\n%s", err, b)
	}
	t.Logf("seed %d", seed)
	cases := loadCases(t, dir+"/cases.json")
	for i := range cases {
		c := &cases[i]
		t.Run(c.Name, func(t *testing.T) { runCase(t, c) })
	}
	res := loadCases(t, dir+"/resume.json")
	for i := range res {
		c := &res[i]
		t.Run("resume/"+c.Name, func(t *testing.T) { runResume(t, dir, c) })
	}
	sres := loadCases(t, dir+"/sched_resume.json")
	for i := range sres {
		c := &sres[i]
		t.Run("sched_resume/"+c.Name, func(t *testing.T) { runSchedResume(t, dir, c) })
	}
}

// TestSkipsParamsWithoutGrad: a frozen parameter, or one without a
// gradient, is neither updated nor given state.
func TestSkipsParamsWithoutGrad(t *testing.T) {
	for _, alg := range []Algorithm{SGD, Adam, AdamW} {
		t.Run(string(alg), func(t *testing.T) {
			live := nn.New([]float32{1, 2}, 2).SetRequiresGrad(true)
			frozen := nn.New([]float32{3, 4}, 2).SetRequiresGrad(true)
			nograd := nn.New([]float32{5, 6}, 2).SetRequiresGrad(true)
			o, err := New(alg, []*nn.Tensor{live, frozen, nograd}, LR(0.1), WeightDecay(0.1), Momentum(0.9))
			if err != nil {
				t.Fatal(err)
			}
			live.SetGrad(nn.New([]float32{1, 1}, 2))
			frozen.SetGrad(nn.New([]float32{1, 1}, 2))
			frozen.SetRequiresGrad(false)
			o.Step()
			if d := live.Data(); d[0] == 1 || d[1] == 2 {
				t.Errorf("live: got %v, want an update", d)
			}
			if d := frozen.Data(); d[0] != 3 || d[1] != 4 {
				t.Errorf("frozen: got %v, want [3 4]", d)
			}
			if d := nograd.Data(); d[0] != 5 || d[1] != 6 {
				t.Errorf("no grad: got %v, want [5 6]", d)
			}
			if got := len(o.StateDict().State); got != 1 {
				t.Errorf("got state for %d parameters, want 1", got)
			}
			o.ZeroGrad()
			if live.Grad() != nil {
				t.Errorf("ZeroGrad: got grad %v, want nil", live.Grad())
			}
		})
	}
}

func TestInvalidHyper(t *testing.T) {
	p := []*nn.Tensor{nn.Zeros(2).SetRequiresGrad(true)}
	cases := []struct {
		name string
		alg  Algorithm
		opts []Option
	}{
		{"sgd without lr", SGD, nil},
		{"negative lr", Adam, []Option{LR(-1)}},
		{"negative momentum", SGD, []Option{LR(0.1), Momentum(-0.5)}},
		{"nesterov without momentum", SGD, []Option{LR(0.1), Nesterov()}},
		{"nesterov with dampening", SGD, []Option{LR(0.1), Momentum(0.9), Dampening(0.1), Nesterov()}},
		{"beta1 of one", Adam, []Option{Betas(1, 0.999)}},
		{"negative eps", AdamW, []Option{Eps(-1)}},
		{"negative weight decay", AdamW, []Option{WeightDecay(-1)}},
		{"unknown algorithm", "RMSprop", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.alg, p, c.opts...)
			if err == nil || !strings.HasPrefix(err.Error(), "optim: ") {
				t.Errorf("got %v, want an optim: error", err)
			}
		})
	}
	o, err := NewSGD(p, LR(0.1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.AddParamGroup(p); err == nil {
		t.Errorf("adding a parameter twice: got nil error, want one")
	}
}
