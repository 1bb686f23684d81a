package onnximport

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/internal/testenv"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
)

// conformanceFloor is the pass rate TestNodeConformance must reach: the
// figure reached when it was last raised, so it cannot regress.
const conformanceFloor = 0.952

// Tolerances of ONNX Runtime's backend test runner (onnx_backend_test_series).
const (
	caseRtol = 1e-3
	caseAtol = 1e-5
)

// nodeCasesDir returns ONNX's backend node test cases: $CKPT_ONNX_NODE_CASES
// when set, else a directory under the user cache generated once by
// testdata/gen/onnx_node_cases.sh (onnx 1.12's generator, a few seconds).
func nodeCasesDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("CKPT_ONNX_NODE_CASES"); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "node")); err != nil {
			t.Fatalf("CKPT_ONNX_NODE_CASES=%s: %v", dir, err)
		}
		return filepath.Join(dir, "node")
	}
	if testing.Short() {
		t.Skip("skipping in -short mode: generating ONNX's backend test cases takes seconds")
	}
	testenv.Python(t)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "ckpt", "onnx-1.12-node-cases")
	if ents, err := os.ReadDir(filepath.Join(dir, "node")); err == nil && len(ents) >= 900 {
		return filepath.Join(dir, "node")
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "gen-")
	if err != nil {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if tmp, err = os.MkdirTemp(filepath.Dir(dir), "gen-"); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("bash", "../../../testdata/gen/onnx_node_cases.sh", tmp).CombinedOutput()
	if err != nil {
		os.RemoveAll(tmp)
		t.Fatalf("onnx_node_cases.sh: %v\n%s", err, out)
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "node")
}

type caseResult struct {
	name, op, status, detail string
}

// runCase imports one backend test case and runs each of its data sets.
func runCase(dir string) (status, detail string) {
	m, err := onnx.Open(filepath.Join(dir, "model.onnx"))
	if err != nil {
		return "fail", err.Error()
	}
	defer m.Close()
	for _, v := range append(append([]*onnx.ValueInfo{}, m.Graph.Input...), m.Graph.Output...) {
		if v.Type == nil || v.Type.Tensor == nil {
			return "unsupported", fmt.Sprintf("value %q is not a tensor", v.Name)
		}
		if _, ok := dtypeOf(v.Type.Tensor.ElemType); !ok {
			return "unsupported", fmt.Sprintf("value %q is %s", v.Name, v.Type.Tensor.ElemType)
		}
	}
	g, err := Import(m, Options{})
	if err != nil {
		if IsUnsupported(err) {
			return "unsupported", err.Error()
		}
		return "fail", err.Error()
	}
	g.Eval()
	sets, _ := filepath.Glob(filepath.Join(dir, "test_data_set_*"))
	if len(sets) == 0 {
		return "fail", "no test data sets"
	}
	for _, set := range sets {
		var ins []*graph.Value
		for k := range g.Inputs() {
			v, err := readPB(filepath.Join(set, fmt.Sprintf("input_%d.pb", k)))
			if err != nil {
				return "fail", err.Error()
			}
			ins = append(ins, v)
		}
		var outs []*graph.Value
		err := nn.Guard(func() {
			nn.NoGrad(func() { outs, err = g.RunOrdered(ins...) })
		})
		if err != nil {
			return "fail", err.Error()
		}
		for k, got := range outs {
			want, err := readPB(filepath.Join(set, fmt.Sprintf("output_%d.pb", k)))
			if err != nil {
				return "fail", err.Error()
			}
			if msg := compareValues(got, want); msg != "" {
				return "fail", fmt.Sprintf("%s output %d: %s", filepath.Base(set), k, msg)
			}
		}
	}
	return "pass", ""
}

func readPB(path string) (*graph.Value, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tp, err := onnx.UnmarshalTensor(b)
	if err != nil {
		return nil, err
	}
	return ValueFromProto(tp)
}

// compareValues returns "" when got matches want: same dtype and shape,
// every element within caseAtol + caseRtol*|want| (NaN where NaN, equal
// infinities), or what differs.
func compareValues(got, want *graph.Value) string {
	if got.DType() != want.DType() {
		return fmt.Sprintf("got dtype %s, want %s", got.DType(), want.DType())
	}
	if !sameShape(got.Shape(), want.Shape()) {
		return fmt.Sprintf("got shape %v, want %v", got.Shape(), want.Shape())
	}
	if !got.DType().IsFloat() {
		g, w := got.Int64s(), want.Int64s()
		for k := range w {
			if g[k] != w[k] {
				return fmt.Sprintf("element %d: got %d, want %d", k, g[k], w[k])
			}
		}
		return ""
	}
	g, w := got.Float64s(), want.Float64s()
	for k := range w {
		a, b := g[k], w[k]
		switch {
		case math.IsNaN(b):
			if !math.IsNaN(a) {
				return fmt.Sprintf("element %d: got %g, want NaN", k, a)
			}
		case math.IsInf(b, 0):
			if a != b {
				return fmt.Sprintf("element %d: got %g, want %g", k, a, b)
			}
		case math.IsNaN(a) || math.Abs(a-b) > caseAtol+caseRtol*math.Abs(b):
			return fmt.Sprintf("element %d: got %g, want %g", k, a, b)
		}
	}
	return ""
}

// caseOps maps each case to the operator it tests: the op of a one-node
// case, and for a multi-node case (an "_expanded" function body) the op of
// the one-node case whose name is the longest prefix of its name.
func caseOps(root string, names []string) map[string]string {
	single := map[string]string{}
	multi := []string{}
	for _, name := range names {
		m, err := onnx.Open(filepath.Join(root, name, "model.onnx"))
		if err != nil {
			continue
		}
		if m.Graph != nil && len(m.Graph.Node) == 1 {
			single[name] = m.Graph.Node[0].OpType
		} else {
			multi = append(multi, name)
		}
		m.Close()
	}
	ops := map[string]string{}
	for k, v := range single {
		ops[k] = v
	}
	for _, name := range multi {
		op := strings.TrimPrefix(name, "test_")
		for p := name; p != ""; {
			if o, ok := single[p]; ok {
				op = o
				break
			}
			i := strings.LastIndex(p, "_")
			if i < 0 {
				break
			}
			p = p[:i]
		}
		ops[name] = op
	}
	return ops
}

// TestNodeConformance runs ONNX's backend node test suite (922 cases in
// onnx 1.12) and reports, by operator, how many cases pass, fail or use
// something the importer does not support. It fails when the pass rate
// drops below conformanceFloor. CKPT_CONFORMANCE_VERBOSE=1 lists every
// case that does not pass with the reason.
func TestNodeConformance(t *testing.T) {
	root := nodeCasesDir(t)
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	ops := caseOps(root, names)
	var results []caseResult
	for _, name := range names {
		st, detail := runCase(filepath.Join(root, name))
		results = append(results, caseResult{name, ops[name], st, detail})
	}
	type tally struct{ pass, fail, unsup int }
	byOp := map[string]*tally{}
	total := tally{}
	for _, r := range results {
		tl := byOp[r.op]
		if tl == nil {
			tl = &tally{}
			byOp[r.op] = tl
		}
		switch r.status {
		case "pass":
			tl.pass++
			total.pass++
		case "fail":
			tl.fail++
			total.fail++
		default:
			tl.unsup++
			total.unsup++
		}
	}
	var opNames []string
	for op := range byOp {
		opNames = append(opNames, op)
	}
	sort.Strings(opNames)
	var b strings.Builder
	fmt.Fprintf(&b, "%-32s %5s %5s %5s\n", "op", "pass", "fail", "unsup")
	for _, op := range opNames {
		tl := byOp[op]
		if tl.fail+tl.unsup == 0 {
			continue
		}
		fmt.Fprintf(&b, "%-32s %5d %5d %5d\n", op, tl.pass, tl.fail, tl.unsup)
	}
	if os.Getenv("CKPT_CONFORMANCE_VERBOSE") == "1" {
		for _, r := range results {
			if r.status != "pass" {
				d := r.detail
				if len(d) > 300 {
					d = d[:300]
				}
				fmt.Fprintf(&b, "%s %s: %s\n", r.status, r.name, d)
			}
		}
	}
	rate := float64(total.pass) / float64(len(results))
	t.Logf("operators with cases that do not pass:\n%s", b.String())
	t.Logf("ONNX node conformance: %d of %d cases pass (%.1f%%), %d fail, %d unsupported", total.pass, len(results), 100*rate, total.fail, total.unsup)
	if len(results) < 900 {
		t.Errorf("got %d cases, want the 922 of onnx 1.12", len(results))
	}
	if rate < conformanceFloor {
		t.Errorf("pass rate %.4f is below the floor %.4f", rate, conformanceFloor)
	}
}
