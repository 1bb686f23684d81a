package verify

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/nn"
)

func logits(rows, cols int) []float32 {
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = float32(math.Sin(float64(i)*1.7)) * 3
	}
	return v
}

func TestCompare(t *testing.T) {
	base := logits(2, 10)
	perturb := func(i int, d float32) []float32 {
		v := slices.Clone(base)
		v[i] += d
		return v
	}
	top := nn.TopK(base[:10], 2)
	swapTop := slices.Clone(base)
	swapTop[top[0]], swapTop[top[1]] = swapTop[top[1]], swapTop[top[0]]
	nan := perturb(3, float32(math.NaN()))

	cases := []struct {
		name      string
		got       []float32
		tol       Tolerance
		ok        bool
		maxAbs    float64
		top1Agree float64
		failures  int
	}{
		{"identical", base, DefaultTolerance, true, 0, 1, 0},
		{"within scaled atol", perturb(5, 2e-4), DefaultTolerance, true, float64(base[5]+2e-4) - float64(base[5]), 1, 0},
		{"outside atol", perturb(5, 1e-2), DefaultTolerance, false, float64(base[5]+1e-2) - float64(base[5]), 1, 1},
		{"rtol admits it", perturb(5, 1e-2), Tolerance{Rtol: 0.1}, true, float64(base[5]+1e-2) - float64(base[5]), 1, 0},
		{"top-1 swapped", swapTop, Tolerance{Atol: 100}, false, math.Abs(float64(base[top[0]] - base[top[1]])), 0.5, 0},
		{"NaN fails and ranks first", nan, Tolerance{Atol: 100}, false, math.NaN(), 0.5, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Compare(c.got, base, []int{2, 10}, c.tol)
			if err != nil {
				t.Fatal(err)
			}
			if r.OK != c.ok {
				t.Errorf("OK = %v, want %v", r.OK, c.ok)
			}
			if math.IsNaN(c.maxAbs) != math.IsNaN(r.MaxAbsErr) || (!math.IsNaN(c.maxAbs) && math.Abs(r.MaxAbsErr-math.Abs(c.maxAbs)) > 1e-12) {
				t.Errorf("MaxAbsErr = %g, want %g", r.MaxAbsErr, c.maxAbs)
			}
			if r.Top1Agree == nil || *r.Top1Agree != c.top1Agree {
				t.Errorf("Top1Agree = %v, want %v", r.Top1Agree, c.top1Agree)
			}
			if r.Failures != c.failures {
				t.Errorf("Failures = %d, want %d", r.Failures, c.failures)
			}
		})
	}
}

func TestCompareScalesAtol(t *testing.T) {
	want := []float32{100, -50}
	got := []float32{100.005, -50}
	// 1e-4 * max(1, 100) = 0.01 admits an error of 0.005.
	r, _ := Compare(got, want, []int{2}, DefaultTolerance)
	if !r.OK {
		t.Fatalf("OK = false with error %g under scaled tolerance %g", r.MaxAbsErr, r.AllowedAbsErr)
	}
	r, _ = Compare(got, want, []int{2}, Tolerance{Atol: 1e-4})
	if r.OK {
		t.Fatalf("OK = true with error %g over unscaled tolerance 1e-4", r.MaxAbsErr)
	}
}

func TestCosine(t *testing.T) {
	a := []float32{1, 2, 3}
	r, _ := Compare([]float32{2, 4, 6}, a, []int{3}, Tolerance{Atol: 10})
	if math.Abs(r.Cosine-1) > 1e-12 {
		t.Errorf("cosine of parallel vectors = %v, want 1", r.Cosine)
	}
	r, _ = Compare([]float32{-1, -2, -3}, a, []int{3}, Tolerance{Atol: 10})
	if math.Abs(r.Cosine+1) > 1e-12 {
		t.Errorf("cosine of opposite vectors = %v, want -1", r.Cosine)
	}
	if r.Top1Agree != nil {
		t.Errorf("1-D output has top-1 agreement %v, want none", *r.Top1Agree)
	}
}

func TestCompareShapeMismatch(t *testing.T) {
	if _, err := Compare(make([]float32, 4), make([]float32, 4), []int{2, 3}, DefaultTolerance); err == nil {
		t.Fatal("Compare accepted 4 values for shape [2 3]")
	}
}

func TestReportJSONNonFinite(t *testing.T) {
	base := logits(1, 4)
	got := slices.Clone(base)
	got[2] = float32(math.Inf(1))
	r, _ := Compare(got, base, []int{1, 4}, DefaultTolerance)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("json.Marshal of a report with Inf: %v", err)
	}
	if !strings.Contains(string(b), `"max_abs_err":null`) || !strings.Contains(string(b), `"non_finite":1`) {
		t.Errorf("got %s, want max_abs_err null and non_finite 1", b)
	}
}

func TestReportOutput(t *testing.T) {
	base := logits(2, 10)
	bad := slices.Clone(base)
	bad[0] += 1
	r, _ := Compare(bad, base, []int{2, 10}, DefaultTolerance)
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "result         DIFFERENT") {
		t.Errorf("text report does not say DIFFERENT:\n%s", text.String())
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ok", "max_abs_err", "max_rel_err", "cosine", "top1_agree", "output_shape"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON report lacks %q: %s", k, b)
		}
	}
}

// TestReportCounts checks that counts of one read in the singular.
func TestReportCounts(t *testing.T) {
	base := logits(1, 10)
	bad := slices.Clone(base)
	bad[3] += 1
	r, _ := Compare(bad, base, []int{1, 10}, DefaultTolerance)
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"out of tol.    1 element\n", "top-1 agree    1/1 row\n"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, text.String())
		}
	}
}
