package nn_test

import (
	"encoding/json"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/nn"
)

func decodeFixture(t *testing.T, shape []int, data string) *nn.Tensor {
	t.Helper()
	f := strings.Fields(data)
	v := make([]float32, len(f))
	for i, s := range f {
		x, err := strconv.ParseFloat(s, 32)
		if err != nil {
			t.Fatal(err)
		}
		v[i] = float32(x)
	}
	return nn.New(v, shape...)
}

type fixT struct {
	Shape []int
	Data  string
}

func (f fixT) tensor(t *testing.T) *nn.Tensor { return decodeFixture(t, f.Shape, f.Data) }

type smallCNNFixture struct {
	Repr          string
	Input, Output fixT
	Train         struct {
		Input, Output fixT
		InputGrad     fixT            `json:"input_grad"`
		GradOutput    fixT            `json:"grad_output"`
		ParamGrads    map[string]fixT `json:"param_grads"`
		StateAfter    map[string]fixT `json:"state_after"`
	}
}

func readSmallCNN(t *testing.T) *smallCNNFixture {
	t.Helper()
	b, err := os.ReadFile("../testdata/nn/small_cnn.json")
	if err != nil {
		t.Fatal(err)
	}
	var fix smallCNNFixture
	if err := json.Unmarshal(b, &fix); err != nil {
		t.Fatal(err)
	}
	return &fix
}

func loadSmallCNN(t *testing.T) *SmallCNN {
	t.Helper()
	ckpt, err := formats.Open("../testdata/nn/small_cnn.pt")
	if err != nil {
		t.Fatal(err)
	}
	defer ckpt.Close()
	bld := nn.NewBuilder(ckpt)
	net := NewSmallCNN(bld, 4)
	if err := bld.Err(); err != nil {
		t.Fatal(err)
	}
	return net
}

// near compares with an absolute tolerance of atol times the largest
// magnitude of want.
func near(t *testing.T, what string, got, want *nn.Tensor, atol float64) {
	t.Helper()
	scale := 1.0
	for _, v := range want.Data() {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	if !nn.AllClose(got, want, 0, atol*scale) {
		worst := 0.0
		for i, v := range want.Data() {
			worst = math.Max(worst, math.Abs(float64(got.Data()[i]-v)))
		}
		t.Errorf("%s: max |diff| %.3g, want at most %.3g", what, worst, atol*scale)
	}
}

// TestSmallCNNTrainMatchesTorch is one training step of the loaded network
// against torch: output with batch statistics, the input's and every
// parameter's gradient, and the running statistics afterwards, all within
// 1e-5 of each tensor's largest magnitude (the sums involved have at most 72
// float32 terms; this package accumulates BatchNorm's sums in float64, so it
// sits closer to the exact value than the bound needs).
func TestSmallCNNTrainMatchesTorch(t *testing.T) {
	fix := readSmallCNN(t)
	net := loadSmallCNN(t)
	net.Train()
	x := fix.Train.Input.tensor(t).SetRequiresGrad(true)
	y := net.Forward(x)
	near(t, "output", y, fix.Train.Output.tensor(t), 1e-5)
	y.BackwardWith(fix.Train.GradOutput.tensor(t))
	near(t, "input grad", x.Grad(), fix.Train.InputGrad.tensor(t), 1e-5)
	for _, p := range net.NamedParameters() {
		want, ok := fix.Train.ParamGrads[p.Name]
		if !ok || p.Tensor.Grad() == nil {
			t.Errorf("%s: gradient present %v, in fixture %v", p.Name, p.Tensor.Grad() != nil, ok)
			continue
		}
		near(t, p.Name+" grad", p.Tensor.Grad(), want.tensor(t), 1e-5)
	}
	for _, e := range net.StateDict() {
		want, ok := fix.Train.StateAfter[e.Name]
		if !ok {
			continue
		}
		got, err := nn.FromStored(e.Tensor)
		if err != nil {
			t.Fatal(err)
		}
		near(t, e.Name+" after step", got, want.tensor(t), 1e-5)
	}
}

// TestSmallCNNMatchesTorch runs the whole data path: a state_dict saved by
// torch.save (testdata/gen/nn_transfer.py) read by package formats, loaded
// through a Builder, evaluated, and compared with torch's output. Tolerance:
// the outputs pass through two convolutions of at most 72 products and a
// 16-input linear layer; float32 reordering keeps the error below 1e-5 of the
// largest logit.
func TestSmallCNNMatchesTorch(t *testing.T) {
	fix := readSmallCNN(t)
	net := loadSmallCNN(t)
	if got := net.String(); got != fix.Repr {
		t.Errorf("repr:\ngot  %s\nwant %s", got, fix.Repr)
	}
	net.Eval()
	var got *nn.Tensor
	nn.NoGrad(func() { got = net.Forward(fix.Input.tensor(t)) })
	near(t, "output", got, fix.Output.tensor(t), 1e-5)
}
