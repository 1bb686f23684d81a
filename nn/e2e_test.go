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

// TestSmallCNNMatchesTorch runs the whole data path: a state_dict saved by
// torch.save (testdata/gen/nn_transfer.py) read by package formats, loaded
// through a Builder, evaluated, and compared with torch's output. Tolerance:
// the outputs pass through two convolutions of at most 72 products and a
// 16-input linear layer; float32 reordering keeps the error below 1e-5 of the
// largest logit.
func TestSmallCNNMatchesTorch(t *testing.T) {
	var fix struct {
		Repr          string
		Input, Output struct {
			Shape []int
			Data  string
		}
	}
	b, err := os.ReadFile("../testdata/nn/small_cnn.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &fix); err != nil {
		t.Fatal(err)
	}
	ckpt, err := formats.Open("../testdata/nn/small_cnn.pt")
	if err != nil {
		t.Fatal(err)
	}
	defer ckpt.Close()
	bld := nn.NewBuilder(checkpointSource{ckpt})
	net := NewSmallCNN(bld, 4)
	if err := bld.Err(); err != nil {
		t.Fatal(err)
	}
	if got := net.String(); got != fix.Repr {
		t.Errorf("repr:\ngot  %s\nwant %s", got, fix.Repr)
	}
	net.Eval()
	x := decodeFixture(t, fix.Input.Shape, fix.Input.Data)
	want := decodeFixture(t, fix.Output.Shape, fix.Output.Data)
	var got *nn.Tensor
	nn.NoGrad(func() { got = net.Forward(x) })
	scale := 1.0
	for _, v := range want.Data() {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	if !nn.AllClose(got, want, 0, 1e-5*scale) {
		t.Errorf("output: got %v, want %v", got.Data(), want.Data())
	}
}
