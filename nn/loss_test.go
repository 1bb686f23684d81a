package nn_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/internal/testenv"
	"github.com/ckptkit/ckpt/nn"
)

// The fixture testdata/loss/losses.json is made by testdata/gen/loss_cases.py
// with PyTorch 1.13 (seed 0); TestLossInterop regenerates it with a random
// seed when /usr/bin/python3 imports torch.

type lossTensor struct {
	Shape []int  `json:"shape"`
	Data  string `json:"data"`
}

func (f *lossTensor) tensor(t *testing.T) *nn.Tensor {
	t.Helper()
	if f == nil {
		return nil
	}
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

type lossCase struct {
	Name        string         `json:"name"`
	Loss        string         `json:"loss"`
	Kwargs      map[string]any `json:"kwargs"`
	Input       lossTensor     `json:"input"`
	Output      lossTensor     `json:"output"`
	GradOutput  lossTensor     `json:"grad_output"`
	InputGrad   lossTensor     `json:"input_grad"`
	Target      *lossTensor    `json:"target"`
	TargetGrad  *lossTensor    `json:"target_grad"`
	TargetIndex []int          `json:"target_index"`
	Weight      *lossTensor    `json:"weight"`
	PosWeight   *lossTensor    `json:"pos_weight"`
}

func loadLossCases(t *testing.T, path string) []lossCase {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Cases []lossCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(d.Cases) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	return d.Cases
}

// Tolerances: torch computes in float32 (log_softmax, then a float32 sum);
// this package computes each row in float64 and rounds once. The difference
// is a few float32 ulps of the largest term, so 1e-5 relative plus 1e-6
// absolute (for gradients near zero) bounds it with room, while a wrong
// weight, denominator or smoothing term moves values by percents.
const lossRtol, lossAtol = 1e-5, 1e-6

func runLossCase(t *testing.T, c *lossCase) {
	x := c.Input.tensor(t).SetRequiresGrad(true)
	var target *nn.Tensor
	if c.Target != nil {
		target = c.Target.tensor(t).SetRequiresGrad(true)
	}
	red, err := nn.ParseReduction(c.Kwargs["reduction"].(string))
	if err != nil {
		t.Fatal(err)
	}
	num := func(k string, def float64) float64 {
		if v, ok := c.Kwargs[k]; ok {
			return v.(float64)
		}
		return def
	}
	var y *nn.Tensor
	switch c.Loss {
	case "CrossEntropyLoss":
		l := nn.NewCrossEntropyLoss()
		l.Weight = c.Weight.tensor(t)
		l.Reduction = red
		l.LabelSmoothing = num("label_smoothing", 0)
		l.IgnoreIndex = int(num("ignore_index", nn.DefaultIgnoreIndex))
		if target != nil {
			y = l.ForwardProbs(x, target)
		} else {
			y = l.Forward(x, c.TargetIndex)
		}
	case "NLLLoss":
		l := nn.NewNLLLoss()
		l.Weight = c.Weight.tensor(t)
		l.Reduction = red
		l.IgnoreIndex = int(num("ignore_index", nn.DefaultIgnoreIndex))
		y = l.Forward(x, c.TargetIndex)
	case "MSELoss":
		y = (&nn.MSELoss{Reduction: red}).Forward(x, target)
	case "BCEWithLogitsLoss":
		y = (&nn.BCEWithLogitsLoss{Weight: c.Weight.tensor(t), PosWeight: c.PosWeight.tensor(t), Reduction: red}).Forward(x, target)
	default:
		t.Fatalf("unknown loss %s", c.Loss)
	}
	want := c.Output.tensor(t)
	if !allCloseNaN(y, want, lossRtol, lossAtol) {
		t.Errorf("loss: got %v, want %v", y, want)
	}
	y.BackwardWith(c.GradOutput.tensor(t))
	if g, w := x.Grad(), c.InputGrad.tensor(t); g == nil || !nn.AllClose(g, w, lossRtol, lossAtol) {
		t.Errorf("input grad: got %v, want %v", g, w)
	}
	if c.TargetGrad != nil {
		if g, w := target.Grad(), c.TargetGrad.tensor(t); g == nil || !nn.AllClose(g, w, lossRtol, lossAtol) {
			t.Errorf("target grad: got %v, want %v", g, w)
		}
	}
}

func TestLossParity(t *testing.T) {
	cases := loadLossCases(t, "../testdata/loss/losses.json")
	for i := range cases {
		c := &cases[i]
		t.Run(c.Name, func(t *testing.T) { runLossCase(t, c) })
	}
}

// TestLossInterop asks torch for fresh cases with a random seed (and so
// random batch and class counts).
func TestLossInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping torch interop in -short mode")
	}
	py := testenv.Python(t)
	seed := time.Now().UnixNano() % 1000000
	out := filepath.Join(t.TempDir(), "losses.json")
	if b, err := exec.Command(py, "../testdata/gen/loss_cases.py", "--seed", fmt.Sprint(seed), "--out", out).CombinedOutput(); err != nil {
		t.Fatalf("generator failed: %v\n%s", err, b)
	}
	t.Logf("seed %d", seed)
	cases := loadLossCases(t, out)
	for i := range cases {
		c := &cases[i]
		t.Run(c.Name, func(t *testing.T) { runLossCase(t, c) })
	}
}

// TestLossAllIgnored checks torch's 0/0: a mean over no counted target is NaN.
func TestLossAllIgnored(t *testing.T) {
	l := nn.NewCrossEntropyLoss()
	got := l.Forward(nn.New([]float32{1, 2, 3, 4}, 2, 2), []int{-100, -100}).Item()
	if !math.IsNaN(float64(got)) {
		t.Errorf("got %v, want NaN", got)
	}
	l.Reduction = nn.ReduceSum
	if got := l.Forward(nn.New([]float32{1, 2, 3, 4}, 2, 2), []int{-100, -100}).Item(); got != 0 {
		t.Errorf("sum: got %v, want 0", got)
	}
}

func TestParseReduction(t *testing.T) {
	for _, r := range []nn.Reduction{nn.ReduceMean, nn.ReduceSum, nn.ReduceNone} {
		got, err := nn.ParseReduction(r.String())
		if err != nil || got != r {
			t.Errorf("ParseReduction(%q): got %v, %v, want %v", r.String(), got, err, r)
		}
	}
	if _, err := nn.ParseReduction("avg"); err == nil || !strings.HasPrefix(err.Error(), "nn: ") {
		t.Errorf("ParseReduction(avg): got %v, want an nn: error", err)
	}
}

// TestLossNoGraphForPlainInputs: a loss on inputs that need no gradient
// records nothing.
func TestLossNoGraphForPlainInputs(t *testing.T) {
	y := nn.NewCrossEntropyLoss().Forward(nn.New([]float32{1, 2, 3}, 1, 3), []int{2})
	if y.RequiresGrad() || !y.IsLeaf() {
		t.Errorf("got requires_grad=%v leaf=%v, want false, true", y.RequiresGrad(), y.IsLeaf())
	}
}

// printGrad prints a gradient rounded to 4 decimals.
func printGrad(g *nn.Tensor) {
	s := make([]string, len(g.Data()))
	for i, v := range g.Data() {
		s[i] = fmt.Sprintf("%.4f", v)
	}
	fmt.Println("grad:", strings.Join(s, " "))
}

// The printed values in these examples are torch 1.13's, rounded.

func ExampleCrossEntropyLoss() {
	logits := nn.New([]float32{2, 0.5, -1, 0.1, 0.2, 3}, 2, 3).SetRequiresGrad(true)
	l := nn.NewCrossEntropyLoss()
	l.LabelSmoothing = 0.1
	loss := l.Forward(logits, []int{0, 2})
	loss.Backward()
	fmt.Printf("loss: %.4f\n", loss.Item())
	printGrad(logits.Grad())

	// Class weights and an ignored target (torch's weight=, ignore_index=).
	l = nn.NewCrossEntropyLoss()
	l.Weight = nn.New([]float32{1, 2, 0.5}, 3)
	l.IgnoreIndex = 1
	x := nn.New([]float32{2, 0.5, -1, 0.1, 0.2, 3, 1, 1, 1}, 3, 3)
	fmt.Printf("weighted: %.4f\n", l.Forward(x, []int{0, 2, 1}).Item())

	// One loss per sample.
	l = nn.NewCrossEntropyLoss()
	l.Reduction = nn.ReduceNone
	fmt.Printf("per sample: %.4f\n", l.Forward(x, []int{0, 2, 1}).Data())
	// Output:
	// loss: 0.3455
	// grad: -0.0739 0.0710 0.0029 0.0080 0.0106 -0.0186
	// weighted: 0.1974
	// per sample: [0.2413 0.1096 1.0986]
}

func ExampleNLLLoss() {
	logp := nn.New([]float32{2, 0.5, -1, 0.1, 0.2, 3}, 2, 3).LogSoftmax(1)
	fmt.Printf("%.4f\n", nn.NewNLLLoss().Forward(logp, []int{0, 2}).Item())
	// Output: 0.1755
}

func ExampleMSELoss() {
	x := nn.New([]float32{1, 2, 3}, 3).SetRequiresGrad(true)
	loss := nn.NewMSELoss().Forward(x, nn.New([]float32{1.5, 2, 2}, 3))
	loss.Backward()
	fmt.Printf("loss: %.4f\n", loss.Item())
	printGrad(x.Grad())
	// Output:
	// loss: 0.4167
	// grad: -0.3333 0.0000 0.6667
}

func ExampleBCEWithLogitsLoss() {
	x := nn.New([]float32{1.5, -0.5, -2, 0.3}, 2, 2).SetRequiresGrad(true)
	y := nn.New([]float32{1, 0, 0, 1}, 2, 2)
	l := nn.NewBCEWithLogitsLoss()
	l.PosWeight = nn.New([]float32{3, 1}, 2) // positives of class 0 count 3 times
	loss := l.Forward(x, y)
	loss.Backward()
	fmt.Printf("loss: %.4f\n", loss.Item())
	printGrad(x.Grad())
	// Output:
	// loss: 0.4399
	// grad: -0.1368 0.0944 0.0298 -0.1064
}

// TestLossProgrammerErrors: misuse panics, as torch raises.
func TestLossProgrammerErrors(t *testing.T) {
	x := nn.New([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	cases := map[string]func(){
		"target out of range": func() { nn.NewCrossEntropyLoss().Forward(x, []int{0, 3}) },
		"negative target":     func() { nn.NewNLLLoss().Forward(x, []int{-1, 0}) },
		"target count":        func() { nn.NewCrossEntropyLoss().Forward(x, []int{0}) },
		"bad reduction":       func() { (&nn.CrossEntropyLoss{Reduction: 7}).Forward(x, []int{0, 1}) },
		"bad weight":          func() { (&nn.CrossEntropyLoss{Weight: nn.Ones(2)}).Forward(x, []int{0, 1}) },
		"bce target shape":    func() { nn.NewBCEWithLogitsLoss().Forward(x, nn.Ones(3)) },
		"probs shape":         func() { nn.NewCrossEntropyLoss().ForwardProbs(x, nn.Ones(3)) },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("got no panic, want one")
				}
			}()
			f()
		})
	}
}

// TestLossGradcheck compares every loss's backward with central finite
// differences of its forward, for the input and (where it is a tensor) the
// target. The forward is float32, so with a step h = 1e-3 the difference
// quotient carries about ulp(loss)/h ≈ 1e-4 of rounding error plus h² of
// truncation: 3e-3 absolute plus 1e-2 relative separates that from a wrong
// backward, which is off by the size of the gradient.
func TestLossGradcheck(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 9))
	randT := func(lo, hi float64, shape ...int) *nn.Tensor {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(lo + (hi-lo)*r.Float64())
		}
		return nn.New(v, shape...)
	}
	probs := nn.New([]float32{0.2, 0.5, 0.3, 0.1, 0.1, 0.8, 0.6, 0.2, 0.2}, 3, 3)
	ce := nn.NewCrossEntropyLoss()
	ce.Weight = nn.New([]float32{0.5, 1, 2}, 3)
	ce.LabelSmoothing = 0.2
	ce.IgnoreIndex = 1
	nll := nn.NewNLLLoss()
	nll.Weight = nn.New([]float32{0.5, 1, 2}, 3)
	bce := &nn.BCEWithLogitsLoss{Weight: randT(0.5, 1.5, 3), PosWeight: randT(0.5, 3, 3), Reduction: nn.ReduceSum}
	cases := []struct {
		name   string
		inputs []*nn.Tensor
		f      func(in []*nn.Tensor) *nn.Tensor
	}{
		{"cross entropy", []*nn.Tensor{randT(-2, 2, 4, 3)}, func(in []*nn.Tensor) *nn.Tensor { return ce.Forward(in[0], []int{0, 1, 2, 2}) }},
		{"cross entropy spatial", []*nn.Tensor{randT(-2, 2, 2, 3, 2, 2)}, func(in []*nn.Tensor) *nn.Tensor {
			return ce.Forward(in[0], []int{0, 2, 2, 1, 0, 0, 1, 2})
		}},
		{"cross entropy probs", []*nn.Tensor{randT(-2, 2, 3, 3), probs}, func(in []*nn.Tensor) *nn.Tensor { return ce.ForwardProbs(in[0], in[1]) }},
		{"nll", []*nn.Tensor{randT(-3, 0, 4, 3)}, func(in []*nn.Tensor) *nn.Tensor { return nll.Forward(in[0], []int{2, 0, 1, 2}) }},
		{"mse", []*nn.Tensor{randT(-1, 1, 2, 3), randT(-1, 1, 2, 3)}, func(in []*nn.Tensor) *nn.Tensor { return nn.NewMSELoss().Forward(in[0], in[1]) }},
		{"bce", []*nn.Tensor{randT(-3, 3, 2, 3), randT(0, 1, 2, 3)}, func(in []*nn.Tensor) *nn.Tensor { return bce.Forward(in[0], in[1]) }},
	}
	const h = 1e-3
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, x := range c.inputs {
				x.SetRequiresGrad(true)
				x.ZeroGrad()
			}
			c.f(c.inputs).Backward()
			for k, x := range c.inputs {
				g := x.Grad()
				if g == nil {
					t.Fatalf("input %d: no gradient", k)
				}
				d := x.Data()
				for i := range d {
					v := d[i]
					d[i] = v + h
					fp := float64(c.f(c.inputs).Item())
					d[i] = v - h
					fm := float64(c.f(c.inputs).Item())
					d[i] = v
					num := (fp - fm) / (2 * h)
					if got := float64(g.Data()[i]); math.Abs(got-num) > 3e-3+1e-2*math.Abs(num) {
						t.Errorf("input %d element %d: got gradient %v, finite difference %v", k, i, got, num)
					}
				}
			}
		})
	}
}

// allCloseNaN is nn.AllClose with torch.allclose's equal_nan: a NaN where
// torch's reference is NaN agrees (a mean over rows that are all ignored is
// NaN in torch, and must be NaN here too).
func allCloseNaN(a, b *nn.Tensor, rtol, atol float64) bool {
	ad, bd := a.Data(), b.Data()
	if !slices.Equal(a.Shape(), b.Shape()) {
		return false
	}
	for i := range ad {
		x, y := float64(ad[i]), float64(bd[i])
		if math.IsNaN(x) && math.IsNaN(y) {
			continue
		}
		if math.IsNaN(x) || math.IsNaN(y) || math.Abs(x-y) > atol+rtol*math.Abs(y) {
			return false
		}
	}
	return true
}
