package optim

import (
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/pickle"
)

// runResume loads an optimizer state that torch.save wrote after a few
// steps (testdata/gen/optim_cases.py), continues in Go with the gradients
// torch used, and compares parameters and state with torch's continuation.
func runResume(t *testing.T, dir string, c *fixCase) {
	f, err := pickle.Open(filepath.Join(dir, c.File))
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
	// The loaded hyper-parameters are torch's, scheduler changes included.
	for gi, want := range c.Groups {
		g := o.Groups[gi]
		if lr := want["lr"].(float64); g.LR != lr {
			t.Errorf("group %d lr: got %v, want %v", gi, g.LR, lr)
		}
		if il, ok := want["initial_lr"]; ok && g.InitialLR != il.(float64) {
			t.Errorf("group %d initial_lr: got %v, want %v", gi, g.InitialLR, il)
		}
	}
	// What was loaded is what StateDict gives back.
	back := o.StateDict()
	if !reflect.DeepEqual(stateNames(back), stateNames(sd)) {
		t.Errorf("state keys after load: got %v, want %v", stateNames(back), stateNames(sd))
	}
	for _, row := range c.Grads {
		o.ZeroGrad()
		for i, g := range row {
			params[i].SetGrad(g.tensor(t))
		}
		o.Step()
	}
	for i := range params {
		checkTensor(t, fmt.Sprintf("param %d", i), params[i], &c.Final[i])
	}
	checkState(t, o.StateDict(), c.State)
}

func stateNames(sd *StateDict) []string {
	ts, meta := sd.Flatten("")
	names := ts.Names()
	for _, m := range meta {
		names = append(names, m.Key)
	}
	return names
}

func TestResumeFromTorch(t *testing.T) {
	cases := loadCases(t, "../../testdata/optim/resume.json")
	for i := range cases {
		c := &cases[i]
		t.Run(c.Name, func(t *testing.T) { runResume(t, "../../testdata/optim", c) })
	}
}

// TestReadStateDictLayout checks the decoded torch layout itself: groups,
// indices, betas as a pair, ints for torch's integer zeros, step as a 0-d
// tensor.
func TestReadStateDictLayout(t *testing.T) {
	f, err := pickle.Open("../../testdata/optim/adam_state.pt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sd, err := ReadStateDict(f, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(sd.ParamGroups); got != 2 {
		t.Fatalf("got %d groups, want 2", got)
	}
	if got, want := sd.ParamGroups[0]["params"], []int{0, 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("group 0 params: got %v, want %v", got, want)
	}
	if got, want := sd.ParamGroups[1]["betas"], []float64{0.8, 0.95}; !reflect.DeepEqual(got, want) {
		t.Errorf("group 1 betas: got %v, want %v", got, want)
	}
	if got := sd.ParamGroups[0]["weight_decay"]; got != int64(0) {
		t.Errorf("weight_decay: got %#v, want int64(0) (torch's default is the int 0)", got)
	}
	if got := sd.ParamGroups[0]["foreach"]; got != nil {
		t.Errorf("foreach: got %#v, want nil", got)
	}
	st := sd.State[2]
	if st == nil || st["step"] == nil || st["step"].Dim() != 0 || st["exp_avg"] == nil || st["max_exp_avg_sq"] == nil {
		t.Fatalf("state 2: got %v, want step (0-d), exp_avg, exp_avg_sq, max_exp_avg_sq", st)
	}
	if got := st["step"].Item(); got != 3 {
		t.Errorf("step: got %v, want 3", got)
	}
	if _, err := ReadStateDict(f, "optimizer"); err == nil {
		t.Errorf("wrong prefix: got nil error, want one")
	}
}

// TestFlattenRoundTrip writes a state dict with Flatten through formats.Save
// (safetensors keeps the metadata) and reads it back with FromCheckpoint.
func TestFlattenRoundTrip(t *testing.T) {
	for _, file := range []string{"sgd_state.pt", "adam_state.pt"} {
		t.Run(file, func(t *testing.T) {
			f, err := pickle.Open("../../testdata/optim/" + file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sd, err := ReadStateDict(f, "")
			if err != nil {
				t.Fatal(err)
			}
			// The same file through package formats gives the same state.
			c, err := formats.Open("../../testdata/optim/" + file)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			viaFormats, err := FromCheckpoint(c, "")
			if err != nil {
				t.Fatal(err)
			}
			compareStateDicts(t, "formats.Open", viaFormats, sd)

			ts, meta := sd.Flatten("optimizer")
			ck := &formats.Checkpoint{Meta: meta, Tensors: ts}
			path := filepath.Join(t.TempDir(), "opt.safetensors")
			if _, err := formats.Save(path, ck, formats.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			c2, err := formats.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			back, err := FromCheckpoint(c2, "optimizer")
			if err != nil {
				t.Fatal(err)
			}
			compareStateDicts(t, "safetensors round trip", back, sd)
		})
	}
}

// compareStateDicts checks that got holds sd's tensors exactly and its
// group values as numbers (JSON does not keep int versus float).
func compareStateDicts(t *testing.T, what string, got, want *StateDict) {
	t.Helper()
	if len(got.State) != len(want.State) || len(got.ParamGroups) != len(want.ParamGroups) {
		t.Fatalf("%s: got %d states %d groups, want %d and %d", what, len(got.State), len(got.ParamGroups), len(want.State), len(want.ParamGroups))
	}
	for id, m := range want.State {
		for k, w := range m {
			g, ok := got.State[id][k]
			switch {
			case !ok:
				t.Errorf("%s: state.%d.%s missing", what, id, k)
			case (g == nil) != (w == nil):
				t.Errorf("%s: state.%d.%s: got %v, want %v", what, id, k, g, w)
			case w != nil && !nn.AllClose(g, w, 0, 0):
				t.Errorf("%s: state.%d.%s: got %v, want %v", what, id, k, g, w)
			}
		}
	}
	for gi, pg := range want.ParamGroups {
		for k, w := range pg {
			g := got.ParamGroups[gi][k]
			if !sameValue(g, w) {
				t.Errorf("%s: param_groups.%d.%s: got %#v, want %#v", what, gi, k, g, w)
			}
		}
	}
}

func sameValue(a, b any) bool {
	fa, ea := toFloat(a)
	fb, eb := toFloat(b)
	if ea == nil && eb == nil {
		return fa == fb || math.IsNaN(fa) && math.IsNaN(fb)
	}
	// Lists (betas) compare element by element, so that a NaN matches a
	// NaN as it does above; reflect.DeepEqual says NaN != NaN.
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Kind() == reflect.Slice && vb.Kind() == reflect.Slice && va.Type() == vb.Type() {
		if va.Len() != vb.Len() {
			return false
		}
		for i := range va.Len() {
			if !sameValue(va.Index(i).Interface(), vb.Index(i).Interface()) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// TestLoadStateDictErrors: a state dict that does not fit is refused and
// changes nothing.
func TestLoadStateDictErrors(t *testing.T) {
	mk := func() (*Optimizer, []*nn.Tensor) {
		ps := []*nn.Tensor{nn.Zeros(2, 2).SetRequiresGrad(true), nn.Zeros(3).SetRequiresGrad(true)}
		o, err := NewAdam(ps, LR(0.01))
		if err != nil {
			t.Fatal(err)
		}
		return o, ps
	}
	src, ps := mk()
	for _, p := range ps {
		p.SetGrad(nn.Ones(p.Shape()...))
	}
	src.Step()
	good := src.StateDict()
	cases := map[string]func(sd *StateDict){
		"extra group":  func(sd *StateDict) { sd.ParamGroups = append(sd.ParamGroups, map[string]any{"params": []int{2}}) },
		"short group":  func(sd *StateDict) { sd.ParamGroups[0]["params"] = []int{0} },
		"bad lr":       func(sd *StateDict) { sd.ParamGroups[0]["lr"] = "fast" },
		"bad betas":    func(sd *StateDict) { sd.ParamGroups[0]["betas"] = []float64{0.9} },
		"wrong size":   func(sd *StateDict) { sd.State[1]["exp_avg"] = nn.Zeros(4) },
		"no step":      func(sd *StateDict) { delete(sd.State[0], "step") },
		"unknown id":   func(sd *StateDict) { sd.State[7] = sd.State[0] },
		"params typed": func(sd *StateDict) { sd.ParamGroups[0]["params"] = "0,1" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			sd := src.StateDict()
			mutate(sd)
			o, _ := mk()
			if err := o.LoadStateDict(sd); err == nil {
				t.Fatalf("got nil error, want one")
			}
			if got := len(o.StateDict().State); got != 0 || o.Groups[0].LR != 0.01 {
				t.Errorf("after a failed load: got %d states, lr %v; want 0, 0.01", got, o.Groups[0].LR)
			}
		})
	}
	o, _ := mk()
	if err := o.LoadStateDict(good); err != nil {
		t.Fatalf("good state dict: %v", err)
	}
}
