package onnximport

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/internal/testenv"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
)

var (
	modelsOnce sync.Once
	modelsDir  string
	modelsErr  error
)

// graphModels returns the directory testdata/gen/onnx_graph_models.py
// wrote ($CKPT_ONNX_GRAPH_MODELS, or generated once per test binary).
func graphModels(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("CKPT_ONNX_GRAPH_MODELS"); d != "" {
		return d
	}
	if testing.Short() {
		t.Skip("skipping in -short mode: exporting the models takes tens of seconds")
	}
	py := testenv.Python(t)
	modelsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ckpt-onnx-graph-models-")
		if err != nil {
			modelsErr = err
			return
		}
		out, err := exec.Command(py, "../../../testdata/gen/onnx_graph_models.py", dir).CombinedOutput()
		if err != nil {
			modelsErr = fmt.Errorf("onnx_graph_models.py: %v\n%s", err, out)
			return
		}
		modelsDir = dir
	})
	if modelsErr != nil {
		t.Fatal(modelsErr)
	}
	return modelsDir
}

func readF32(t *testing.T, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(b)/4)
	for k := range out {
		out[k] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*k:]))
	}
	return out
}

// ortRun runs model on one float32 input with ONNX Runtime (testdata/gen/ort_run.js).
func ortRun(t *testing.T, model, inputName, inputFile string, dims []int) []float32 {
	t.Helper()
	node, nodePath := testenv.ORT(t)
	ds := ""
	for k, d := range dims {
		if k > 0 {
			ds += ","
		}
		ds += fmt.Sprint(d)
	}
	cmd := exec.Command(node, "../../../testdata/gen/ort_run.js", model, inputName, inputFile, ds)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ort_run.js %s: %v", model, err)
	}
	var res struct {
		Data []float32 `json:"data"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	return res.Data
}

func importFile(t *testing.T, path string) *graph.Graph {
	t.Helper()
	m, err := onnx.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	g, err := Import(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	g.Eval()
	return g
}

func argmaxRows(v []float32, cols int) []int {
	var out []int
	for r := 0; r*cols < len(v); r++ {
		best := 0
		for j := 1; j < cols; j++ {
			if v[r*cols+j] > v[r*cols+best] {
				best = j
			}
		}
		out = append(out, best)
	}
	return out
}

// TestExportsMatchORT imports torch exports (torchvision CNNs with folded
// BatchNorm and a dynamic batch, an MLP with LayerNorm and GELU, an
// attention block, a small UNet with ConvTranspose and Resize; opsets 13
// and 17), runs them and compares with ONNX
// Runtime on the same input: max|err| <= 1e-4 * max(1, max|y|) (float32
// kernels summing in different orders differ by a few ulps of the largest
// activations) and the same arg-max per row.
func TestExportsMatchORT(t *testing.T) {
	dir := graphModels(t)
	cases := []struct {
		name  string
		shape []int
	}{
		{"resnet18_op13", []int{2, 3, 64, 64}}, {"resnet18_op17", []int{2, 3, 64, 64}},
		{"mobilenet_v2_op13", []int{2, 3, 64, 64}}, {"mobilenet_v2_op17", []int{2, 3, 64, 64}},
		{"mlp_op13", []int{4, 16}}, {"mlp_op17", []int{4, 16}},
		{"attention_op13", []int{2, 5, 16}}, {"attention_op17", []int{2, 5, 16}},
		{"unet_op13", []int{2, 3, 16, 16}}, {"unet_op17", []int{2, 3, 16, 16}},
		{"squeezenet1_1_op17", []int{2, 3, 64, 64}}, {"mobilenet_v3_small_op17", []int{2, 3, 64, 64}},
		{"efficientnet_b0_op17", []int{2, 3, 64, 64}}, {"shufflenet_v2_x0_5_op17", []int{2, 3, 64, 64}},
		{"densenet121_op17", []int{2, 3, 64, 64}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			model := filepath.Join(dir, tc.name+".onnx")
			in := filepath.Join(dir, tc.name+".input.bin")
			g := importFile(t, model)
			x := nn.New(readF32(t, in), tc.shape...)
			var y *nn.Tensor
			nn.NoGrad(func() { y = g.Forward(x) })
			// nn.Infer (results from a reused arena) computes the same.
			for k, v := range nn.Infer(g, x).Data() {
				if v != y.Data()[k] {
					t.Fatalf("Infer: element %d is %g, Forward gave %g", k, v, y.Data()[k])
				}
			}
			want := ortRun(t, model, "input", in, tc.shape)
			got := y.Data()
			if len(got) != len(want) {
				t.Fatalf("got %d outputs, want %d", len(got), len(want))
			}
			maxAbs, maxErr := 0.0, 0.0
			for k := range want {
				maxAbs = math.Max(maxAbs, math.Abs(float64(want[k])))
				maxErr = math.Max(maxErr, math.Abs(float64(got[k]-want[k])))
			}
			tol := 1e-4 * math.Max(1, maxAbs)
			if maxErr > tol {
				t.Errorf("max|err| = %g, want <= %g", maxErr, tol)
			}
			cols := y.Shape()[y.Dim()-1]
			if tc.shape[0] > 1 && y.Dim() == 2 {
				ga, wa := argmaxRows(got, cols), argmaxRows(want, cols)
				for r := range wa {
					if ga[r] != wa[r] {
						t.Errorf("row %d: got top-1 %d, want %d", r, ga[r], wa[r])
					}
				}
			}
			t.Logf("max|err| %.3g (max|y| %.3g)", maxErr, maxAbs)
		})
	}
}

// TestExportGradientsMatchTorch imports exports made with
// training=PRESERVE (initializers named by state_dict keys), computes the
// gradient of sum(output * R) for torch's fixed R by autograd through the
// graph, and compares every parameter's gradient with loss.backward()'s:
// |g - want| <= 1e-4 * max(1, max|want|) per tensor (float32 sums in
// different orders).
func TestExportGradientsMatchTorch(t *testing.T) {
	dir := graphModels(t)
	cases := []struct {
		name  string
		shape []int
	}{
		{"mlp_train", []int{4, 16}}, {"attention_train", []int{2, 5, 16}}, {"resnet18_train", []int{1, 3, 64, 64}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := importFile(t, filepath.Join(dir, tc.name+".onnx"))
			x := nn.New(readF32(t, filepath.Join(dir, tc.name+".input.bin")), tc.shape...)
			y := g.Forward(x)
			want := readF32(t, filepath.Join(dir, tc.name+".torch.bin"))
			for k, w := range want {
				if d := math.Abs(float64(y.Data()[k] - w)); d > 1e-4*math.Max(1, math.Abs(float64(w))) {
					t.Fatalf("output %d: got %g, want %g", k, y.Data()[k], w)
				}
			}
			r := nn.New(readF32(t, filepath.Join(dir, tc.name+".seed.bin")), y.Shape()...)
			y.Mul(r).Sum(false).Backward()
			var entries []struct {
				Name   string `json:"name"`
				Shape  []int  `json:"shape"`
				Offset int    `json:"offset"`
			}
			b, err := os.ReadFile(filepath.Join(dir, tc.name+".grads.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &entries); err != nil {
				t.Fatal(err)
			}
			grads := readF32(t, filepath.Join(dir, tc.name+".grads.bin"))
			params := map[string]*nn.Tensor{}
			for _, p := range g.NamedParameters() {
				params[p.Name] = p.Tensor
			}
			for _, e := range entries {
				p := params[e.Name]
				if p == nil {
					t.Errorf("%s: not a parameter of the imported graph", e.Name)
					continue
				}
				if p.Grad() == nil {
					t.Errorf("%s: no gradient", e.Name)
					continue
				}
				w := grads[e.Offset : e.Offset+p.Numel()]
				maxW, maxErr := 0.0, 0.0
				for k, gv := range p.Grad().Data() {
					maxW = math.Max(maxW, math.Abs(float64(w[k])))
					maxErr = math.Max(maxErr, math.Abs(float64(gv-w[k])))
				}
				if maxErr > 1e-4*math.Max(1, maxW) {
					t.Errorf("%s: max|grad err| = %g (max|grad| %g)", e.Name, maxErr, maxW)
				}
			}
			t.Logf("%d parameter gradients compared", len(entries))
		})
	}
}
