package models

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/nn"
)

// Reference outputs come from torch: testdata/gen/models_parity.py and
// models_fixtures_mobile.py build each model in torchvision with random
// weights and calibrated, perturbed BatchNorm statistics and run it in eval
// mode (harness_test.go runs them). This file holds the comparisons every
// parity test makes and fixtureSpecs, the Go side of models_parity.py's
// committed fixtures.

// tolerance: float32 convolutions summed in a different order than oneDNN's
// differ by a few ulps per accumulation; over tens of layers the error stays
// within 1e-4 of the output's scale (issue 5's bound).
const relTol = 1e-4

type parityResult struct {
	maxErr, maxY float64
}

// checkOutput compares got with torch's want: max|got-want| <= relTol *
// max(1, max|want|) and the same arg-max per row.
func checkOutput(t *testing.T, got, want *nn.Tensor) parityResult {
	t.Helper()
	if fmt.Sprint(got.Shape()) != fmt.Sprint(want.Shape()) {
		t.Fatalf("output shape: got %v, want %v", got.Shape(), want.Shape())
	}
	g, w := got.Data(), want.Data()
	var r parityResult
	for i := range w {
		r.maxErr = math.Max(r.maxErr, math.Abs(float64(g[i]-w[i])))
		r.maxY = math.Max(r.maxY, math.Abs(float64(w[i])))
		if math.IsNaN(float64(g[i])) {
			t.Fatalf("output[%d] is NaN", i)
		}
	}
	if lim := relTol * math.Max(1, r.maxY); r.maxErr > lim {
		t.Errorf("max|err| = %.3g, want <= %.3g (max|y| = %.3g)", r.maxErr, lim, r.maxY)
	}
	rows := want.Shape()[0]
	cols := len(w) / rows
	for i := range rows {
		if a, b := argmax(g[i*cols:(i+1)*cols]), argmax(w[i*cols:(i+1)*cols]); a != b {
			t.Errorf("row %d: top-1 got %d, want %d", i, a, b)
		}
	}
	return r
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// checkRepr compares nn.Repr(m) with torch's repr line by line.
func checkRepr(t *testing.T, m nn.Module, want string) {
	t.Helper()
	got := strings.Split(nn.Repr(m), "\n")
	wl := strings.Split(strings.TrimRight(want, "\n"), "\n")
	for i := range max(len(got), len(wl)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Errorf("repr line %d:\n got %q\nwant %q", i+1, g, w)
			return
		}
	}
}

type stateDicter interface{ StateDict() nn.StateDict }

// checkKeys compares the module's state_dict keys, order and shapes with the
// file torch saved.
func checkKeys(t *testing.T, m nn.Module, want nn.Source) {
	t.Helper()
	got := m.(stateDicter).StateDict()
	names := want.Names()
	if len(got) != len(names) {
		t.Errorf("state_dict: got %d keys, want %d", len(got), len(names))
	}
	for i := range min(len(got), len(names)) {
		if got[i].Name != names[i] {
			t.Errorf("state_dict key %d: got %q, want %q", i, got[i].Name, names[i])
			return
		}
		if gs, ws := fmt.Sprint(got[i].Tensor.Shape), fmt.Sprint(want.Tensor(names[i]).Shape); gs != ws {
			t.Errorf("state_dict %q: shape got %s, want %s", names[i], gs, ws)
		}
	}
}

// openSource opens a checkpoint file as an nn.Source; it is closed with t.
func openSource(t *testing.T, path string) *formats.Checkpoint {
	t.Helper()
	c, err := formats.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readIO(t *testing.T, path string) (x, y *nn.Tensor) {
	t.Helper()
	src := openSource(t, path)
	get := func(name string) *nn.Tensor {
		st := src.Tensor(name)
		if st == nil {
			t.Fatalf("%s: no tensor %q", path, name)
		}
		v, err := nn.FromStored(st)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return get("input"), get("output")
}

// forward runs m on x three ways that must agree bit for bit: a plain
// Forward under NoGrad, and two nn.Infer calls (the second reusing the
// first's arena memory, which must neither change the result nor reach the
// first call's output). It then prepares m (nn.Prepare: batch norms
// folded, weights packed) and runs two Infer calls that must agree with
// each other bit for bit; their result, prepared, differs from y by the
// rounding of the folded weights, so the callers check both against torch.
func forward(t *testing.T, m nn.Module, x *nn.Tensor) (y, prepared *nn.Tensor) {
	t.Helper()
	nn.NoGrad(func() { y = m.Forward(x) })
	first := nn.Infer(m, x)
	kept := append([]float32(nil), first.Data()...)
	second := nn.Infer(m, x)
	for name, got := range map[string][]float32{"first Infer": first.Data(), "second Infer": second.Data()} {
		if !slices.Equal(got, kept) || !slices.Equal(got, y.Data()) {
			t.Fatalf("%s differs from the plain forward pass or was overwritten", name)
		}
	}
	if err := nn.Prepare(m); err != nil {
		t.Fatal(err)
	}
	defer nn.Unprepare(m)
	prepared = nn.Infer(m, x)
	kept = append(kept[:0], prepared.Data()...)
	if again := nn.Infer(m, x); !slices.Equal(again.Data(), kept) || !slices.Equal(prepared.Data(), kept) {
		t.Fatalf("prepared Infer calls differ or the first was overwritten")
	}
	return y, prepared
}

// checkBoth checks the plain and the prepared outputs of forward against
// torch's and returns the worse result.
func checkBoth(t *testing.T, plain, prepared, want *nn.Tensor) parityResult {
	t.Helper()
	r := checkOutput(t, plain, want)
	if p := checkOutput(t, prepared, want); p.maxErr > r.maxErr {
		r = p
	}
	return r
}

// runParity loads dir/name.pt into spec, runs dir/name.io.pt's input and
// checks output, repr and keys against torch's.
func runParity(t *testing.T, spec Spec, dir, name string, cfg Config) (parityResult, time.Duration) {
	t.Helper()
	src := openSource(t, filepath.Join(dir, name+".pt"))
	m, rep, err := load(spec, src, cfg)
	if err != nil {
		t.Fatalf("load: %v\n%v", err, rep)
	}
	repr, err := os.ReadFile(filepath.Join(dir, name+".repr.txt"))
	if err != nil {
		t.Fatal(err)
	}
	checkRepr(t, m, string(repr))
	checkKeys(t, m, src)
	x, want := readIO(t, filepath.Join(dir, name+".io.pt"))
	start := time.Now()
	got, prepared := forward(t, m, x)
	d := time.Since(start)
	return checkBoth(t, got, prepared, want), d
}

// fixtureSpecs mirror FIXTURES in testdata/gen/models_parity.py (its
// --fixtures output is testdata/models/<name>.*, listed in manifest.json).
var fixtureSpecs = map[string]Spec{
	"resnet_basic": {Classifier: "fc.weight", Build: func(cfg Config) (nn.Module, error) {
		return newResNet(cfg, resnetArch{false, [4]int{1, 1, 2, 1}, 1, 64, [5]int{4, 4, 8, 16, 32}})
	}},
	"resnext_bottleneck": {Classifier: "fc.weight", Build: func(cfg Config) (nn.Module, error) {
		return newResNet(cfg, resnetArch{true, [4]int{1, 2, 1, 1}, 2, 16, [5]int{4, 4, 8, 16, 32}})
	}},
	"densenet_small": {Classifier: "classifier.weight", Convert: densenetKeys, Build: func(cfg Config) (nn.Module, error) {
		return newDenseNet(cfg, densenetArch{4, [4]int{2, 3, 2, 2}, 8, 2}), nil
	}},
	"vgg_bn_small": {Classifier: "classifier.6.weight", Build: func(cfg Config) (nn.Module, error) {
		return newVGG(cfg, vggArch{[]int{8, 0, 16, 0, 16, 16, 0}, true, 32}), nil
	}},
	"vgg_small": {Classifier: "classifier.6.weight", Build: func(cfg Config) (nn.Module, error) {
		return newVGG(cfg, vggArch{[]int{8, 0, 16, 16, 0}, false, 16}), nil
	}},
	"squeezenet_small": {Classifier: "classifier.1.weight", Build: func(cfg Config) (nn.Module, error) {
		return newSqueezeNet(cfg, squeezeArch{8, 3, []fireSpec{pool3, {8, 4, 8, 8}, {16, 4, 8, 8}, pool3, {16, 4, 12, 12}}}), nil
	}},
	"googlenet_small": {Classifier: "fc.weight", Aux: []string{"aux1.", "aux2."}, Build: func(cfg Config) (nn.Module, error) {
		return newGoogLeNet(cfg, googlenetArch{[3]int{3, 6, 8}, [9][7]int{
			{8, 2, 2, 4, 2, 2, 2}, {10, 2, 2, 4, 2, 2, 2}, {10, 4, 2, 4, 2, 2, 2}, {12, 4, 2, 4, 2, 2, 2},
			{12, 4, 2, 4, 2, 2, 2}, {12, 4, 2, 4, 2, 2, 2}, {12, 4, 2, 4, 2, 2, 2}, {12, 4, 2, 4, 2, 2, 2},
			{12, 4, 2, 4, 2, 2, 4}}}), nil
	}},
	"alexnet_small": {Classifier: "classifier.6.weight", Build: func(cfg Config) (nn.Module, error) {
		return newAlexNet(cfg, alexArch{[5]int{8, 16, 16, 16, 16}, 32}), nil
	}},
}
