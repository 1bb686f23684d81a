package graph_test

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
	"github.com/ckptkit/ckpt/nn/optim"
)

func readBin(t *testing.T, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, len(b)/4)
	for k := range v {
		v[k] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*k:]))
	}
	return v
}

// maxDiff returns max|a-b| and the tolerance 1e-4 * max(1, max|want|), the
// parity tolerance of the project's torch comparisons (float32 sums of a
// deep network's convolutions reordered by the folding and the GEMM).
func maxDiff(got, want []float32) (diff, tol float64) {
	peak := 1.0
	for k := range want {
		diff = math.Max(diff, math.Abs(float64(got[k]-want[k])))
		peak = math.Max(peak, math.Abs(float64(want[k])))
	}
	return diff, 1e-4 * peak
}

func argmax(v []float32) int {
	best := 0
	for k := range v {
		if v[k] > v[best] {
			best = k
		}
	}
	return best
}

// TestPreparedGraphMatchesTorch runs the torchvision exports of
// testdata/gen/onnx_speed_models.py prepared (BatchNorm folded, bias,
// residual and activation in the GEMM epilogue) and unprepared (fused, no
// packing) and compares each with PyTorch's output.
func TestPreparedGraphMatchesTorch(t *testing.T) {
	dir := speedModels(t)
	for _, arch := range speedArchs() {
		x := nn.New(readBin(t, filepath.Join(dir, arch+".input.bin")), 2, 3, 224, 224)
		want := readBin(t, filepath.Join(dir, arch+".torch.bin"))
		for _, file := range []string{arch + ".onnx", arch + "_bn.onnx"} {
			t.Run(file, func(t *testing.T) {
				g := importSpeedModel(t, filepath.Join(dir, file))
				g.Eval()
				if n := graph.FusedChains(g); n == 0 {
					t.Fatalf("got %d fused chains, want some", n)
				}
				check := func(what string, y *nn.Tensor) {
					t.Helper()
					got := y.Data()
					if len(got) != len(want) {
						t.Fatalf("%s: got %d outputs, want %d", what, len(got), len(want))
					}
					if d, tol := maxDiff(got, want); d > tol {
						t.Errorf("%s: max|got-want| = %.3g, want <= %.3g", what, d, tol)
					}
					for r := range 2 {
						if g, w := argmax(got[r*1000:(r+1)*1000]), argmax(want[r*1000:(r+1)*1000]); g != w {
							t.Errorf("%s: image %d: got top-1 %d, want %d", what, r, g, w)
						}
					}
				}
				var y *nn.Tensor
				nn.NoGrad(func() { y = g.Forward(x) })
				check("unprepared", y)
				if err := nn.Prepare(g); err != nil {
					t.Fatal(err)
				}
				check("prepared, first call", nn.Infer(g, x))
				check("prepared, packed weights", nn.Infer(g, x))
			})
		}
	}
}

// TestPreparedGraphSeesNewWeights checks Prepare's invalidation rule on an
// imported graph with BatchNormalization nodes: after a training step (the
// optimizer marks the parameters modified), a write through Data followed
// by nn.MarkModified, and a replaced parameter, the prepared graph computes
// what the unprepared one does, not what the stale packed weights would.
func TestPreparedGraphSeesNewWeights(t *testing.T) {
	if !slices.Contains(speedArchs(), "resnet18") {
		t.Skip("needs the resnet18 speed models")
	}
	dir := speedModels(t)
	g := importSpeedModel(t, filepath.Join(dir, "resnet18_bn.onnx"))
	x := nn.New(readBin(t, filepath.Join(dir, "resnet18.input.bin"))[:3*224*224], 1, 3, 224, 224)
	g.Eval()
	if err := nn.Prepare(g); err != nil {
		t.Fatal(err)
	}
	before := nn.Infer(g, x).Data()
	reference := func() []float32 {
		nn.Unprepare(g)
		defer func() {
			if err := nn.Prepare(g); err != nil {
				t.Fatal(err)
			}
		}()
		var y *nn.Tensor
		nn.NoGrad(func() { y = g.Forward(x) })
		return y.Data()
	}
	step := func() {
		opt, err := optim.NewSGD(g.TrainableParameters(), optim.LR(0.05))
		if err != nil {
			t.Fatal(err)
		}
		g.Train()
		loss := g.Forward(x).Mean(false)
		loss.Backward()
		opt.Step()
		g.Eval()
	}
	scaleConv := func() {
		w := g.Live("conv1.weight")
		if w == nil {
			t.Fatal("no parameter conv1.weight")
		}
		for i, v := range w.Data() {
			w.Data()[i] = 2 * v
		}
		nn.MarkModified()
	}
	replaceBN := func() {
		old := g.Live("bn1.weight")
		if old == nil {
			t.Fatal("no parameter bn1.weight")
		}
		d := append([]float32(nil), old.Data()...)
		for i := range d {
			d[i] = -d[i]
		}
		g.SetLive("bn1.weight", nn.New(d, old.Shape()...))
	}
	for _, tc := range []struct {
		name   string
		change func()
	}{{"training step", step}, {"write and MarkModified", scaleConv}, {"replaced parameter", replaceBN}} {
		t.Run(tc.name, func(t *testing.T) {
			nn.Infer(g, x) // the packed weights are current
			tc.change()
			got := nn.Infer(g, x).Data()
			want := reference()
			if d, _ := maxDiff(before, want); d < 1e-3 {
				t.Fatalf("the change moved the output by %.3g only; the test cannot tell stale weights", d)
			}
			if d, tol := maxDiff(got, want); d > tol {
				t.Errorf("prepared output differs from the unprepared one by %.3g (tol %.3g): stale packed weights", d, tol)
			}
			before = want
		})
	}
}
