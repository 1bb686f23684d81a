package onnximport

import (
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/internal/testenv"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/optim"
)

// TestBatchNormTrainingUpdatesRunningStats runs a BatchNormalization node
// in training mode and checks the running statistics torch's rule gives:
// new = (1-m)·old + m·batch with m = 1 - the ONNX momentum, the unbiased
// batch variance.
func TestBatchNormTrainingUpdatesRunningStats(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m := model(15, []*onnx.Node{node("BatchNormalization", []string{"x", "s", "b", "mean", "var"}, []string{"y"}, af("momentum", 0.9))},
		[]*onnx.TensorProto{floatInit("s", rng, 2), floatInit("b", rng, 2), floatInit("mean", rng, 2), positiveInit("var", rng, 2)},
		[]*onnx.ValueInfo{vi("x", onnx.Float, -1, 2, 3)}, []*onnx.ValueInfo{vi("y", onnx.Float, -1, 2, 3)})
	g, err := Import(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var bufs []string
	for _, b := range g.NamedBuffers() {
		bufs = append(bufs, b.Name)
	}
	if strings.Join(bufs, ",") != "mean,var" {
		t.Fatalf("got buffers %v, want mean,var", bufs)
	}
	oldMean := append([]float32{}, g.Live("mean").Data()...)
	oldVar := append([]float32{}, g.Live("var").Data()...)
	if err := TrainBatchNorm(g); err != nil {
		t.Fatal(err)
	}
	xd := make([]float32, 12)
	for k := range xd {
		xd[k] = float32(rng.Float64()*4 - 2)
	}
	y := g.Forward(nn.New(xd, 2, 2, 3))
	for c := 0; c < 2; c++ {
		var vals []float64
		for b := 0; b < 2; b++ {
			for i := 0; i < 3; i++ {
				vals = append(vals, float64(xd[(b*2+c)*3+i]))
			}
		}
		mu, ss := 0.0, 0.0
		for _, v := range vals {
			mu += v
		}
		mu /= float64(len(vals))
		for _, v := range vals {
			ss += (v - mu) * (v - mu)
		}
		wantMean := 0.9*float64(oldMean[c]) + 0.1*mu
		wantVar := 0.9*float64(oldVar[c]) + 0.1*ss/float64(len(vals)-1)
		if got := float64(g.Live("mean").Data()[c]); math.Abs(got-wantMean) > 1e-6 {
			t.Errorf("channel %d: got running mean %g, want %g", c, got, wantMean)
		}
		if got := float64(g.Live("var").Data()[c]); math.Abs(got-wantVar) > 1e-6 {
			t.Errorf("channel %d: got running var %g, want %g", c, got, wantVar)
		}
		// Training mode normalizes by the batch statistics: the output
		// before the affine has zero mean per channel.
		s, b := float64(g.Live("s").Data()[c]), float64(g.Live("b").Data()[c])
		sum := 0.0
		for bi := 0; bi < 2; bi++ {
			for i := 0; i < 3; i++ {
				sum += (float64(y.Data()[(bi*2+c)*3+i]) - b) / s
			}
		}
		if math.Abs(sum) > 1e-4 {
			t.Errorf("channel %d: normalized outputs sum to %g, want 0", c, sum)
		}
	}
	folded := model(13, []*onnx.Node{node("Conv", []string{"x", "w"}, []string{"y"})}, []*onnx.TensorProto{floatInit("w", rng, 1, 1, 1, 1)},
		[]*onnx.ValueInfo{vi("x", onnx.Float, 1, 1, 2, 2)}, []*onnx.ValueInfo{vi("y", onnx.Float, 1, 1, 2, 2)})
	gf, err := Import(folded, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := TrainBatchNorm(gf); err == nil || !strings.Contains(err.Error(), "no BatchNormalization") {
		t.Errorf("got %v, want an error saying the graph has no BatchNormalization nodes", err)
	}
}

func TestReHeadMatMulAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	m := model(13, []*onnx.Node{
		node("MatMul", []string{"x", "head.weight_t"}, []string{"mm"}),
		node("Add", []string{"mm", "head.bias"}, []string{"logits"}),
		node("Softmax", []string{"logits"}, []string{"y"}, ai("axis", -1)),
	}, []*onnx.TensorProto{floatInit("head.weight_t", rng, 8, 10), floatInit("head.bias", rng, 10)},
		[]*onnx.ValueInfo{vi("x", onnx.Float, -1, 8)}, []*onnx.ValueInfo{vi("y", onnx.Float, -1, 10)})
	g, err := Import(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ReHead(g, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Op != "MatMul+Add" || rep.Weight != "head.weight_t" || rep.Bias != "head.bias" || rep.In != 8 || rep.OldOut != 10 || rep.NewOut != 3 {
		t.Errorf("got report %+v, want MatMul+Add head.weight_t/head.bias 8 -> 10 replaced by 3", rep)
	}
	y := g.Forward(nn.Ones(2, 8))
	if want := []int{2, 3}; !sameShape(y.Shape(), want) {
		t.Errorf("got output shape %v, want %v", y.Shape(), want)
	}
	if _, err := ReHead(g, 0, 1); err == nil {
		t.Error("ReHead to 0 outputs succeeded")
	}
}

// TestReHeadTrainWriteBack re-heads a folded resnet18 export to 7 classes,
// takes SGD steps on a cross-entropy loss with the backbone frozen, writes the weights back into
// the ONNX model, and checks that onnx.checker accepts the file and that
// ONNX Runtime computes what the trained graph computes.
func TestReHeadTrainWriteBack(t *testing.T) {
	dir := graphModels(t)
	path := filepath.Join(dir, "resnet18_op13.onnx")
	m, err := onnx.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	g, err := Import(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ReHead(g, 7, 42)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Op != "Gemm" || rep.Weight != "fc.weight" || rep.In != 512 || rep.OldOut != 1000 {
		t.Errorf("got %v, want the Gemm of fc.weight 512 -> 1000", rep)
	}
	x := nn.New(readF32(t, filepath.Join(dir, "resnet18_op13.input.bin")), 2, 3, 64, 64)
	// Fine-tune the new head only: freeze every other parameter by name.
	for _, p := range g.NamedParameters() {
		p.Tensor.SetRequiresGrad(strings.HasPrefix(p.Name, "fc."))
	}
	if n := len(g.TrainableParameters()); n != 2 {
		t.Fatalf("got %d trainable parameters, want fc.weight and fc.bias", n)
	}
	opt, err := optim.NewSGD(g.TrainableParameters(), optim.LR(1e-3))
	if err != nil {
		t.Fatal(err)
	}
	loss := nn.NewCrossEntropyLoss()
	var first, last float32
	for step := 0; step < 3; step++ {
		g.ZeroGrad()
		l := loss.Forward(g.Forward(x), []int{1, 5})
		l.Backward()
		opt.Step()
		if step == 0 {
			first = l.Item()
		}
		last = l.Item()
	}
	if !(last < first) {
		t.Errorf("loss went from %g to %g in 3 SGD steps, want it to fall", first, last)
	}
	g.Eval()
	var want *nn.Tensor
	nn.NoGrad(func() { want = g.Forward(x) })
	if err := WriteBack(m, g, rep); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "r18_7.onnx")
	if err := onnx.Write(out, m); err != nil {
		t.Fatal(err)
	}
	py := testenv.Python(t)
	if b, err := exec.Command(py, "-c", "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)", out).CombinedOutput(); err != nil {
		t.Fatalf("onnx.checker rejects the written model: %v\n%s", err, b)
	}
	got := ortRun(t, out, "input", filepath.Join(dir, "resnet18_op13.input.bin"), []int{2, 3, 64, 64})
	if len(got) != 14 {
		t.Fatalf("ONNX Runtime gave %d outputs, want 2x7", len(got))
	}
	for k, w := range want.Data() {
		if math.Abs(float64(got[k]-w)) > 1e-4*math.Max(1, math.Abs(float64(w))) {
			t.Fatalf("output %d: ONNX Runtime %g, graph %g", k, got[k], w)
		}
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}

// TestStateDictToSafetensors saves an imported graph's state dict (the
// trained weights under their initializer names) as safetensors and reads
// it back into a fresh import of the same model.
func TestStateDictToSafetensors(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	mk := func() *onnx.Model {
		r := rand.New(rand.NewPCG(9, 10))
		return model(13, []*onnx.Node{node("Gemm", []string{"x", "fc.weight", "fc.bias"}, []string{"y"}, ai("transB", 1))},
			[]*onnx.TensorProto{floatInit("fc.weight", r, 3, 4), floatInit("fc.bias", r, 3)},
			[]*onnx.ValueInfo{vi("x", onnx.Float, -1, 4)}, []*onnx.ValueInfo{vi("y", onnx.Float, -1, 3)})
	}
	g, err := Import(mk(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range g.NamedParameters() {
		for k := range p.Tensor.Data() {
			p.Tensor.Data()[k] = float32(rng.Float64())
		}
	}
	sd := g.StateDict()
	c := &formats.Checkpoint{}
	for _, n := range sd {
		c.Tensors = append(c.Tensors, formats.Named{Name: n.Name, Tensor: n.Tensor})
	}
	path := filepath.Join(t.TempDir(), "w.safetensors")
	if _, err := formats.Save(path, c, formats.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	back, err := formats.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	g2, err := Import(mk(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var src nn.StateDict
	for _, n := range back.Tensors {
		src = append(src, nn.Named{Name: n.Name, Tensor: n.Tensor})
	}
	if _, err := g2.LoadStateDict(src, true); err != nil {
		t.Fatal(err)
	}
	x := nn.Ones(2, 4)
	a, b := g.Forward(x).Data(), g2.Forward(x).Data()
	for k := range a {
		if a[k] != b[k] {
			t.Fatalf("output %d: got %g after the safetensors round trip, want %g", k, b[k], a[k])
		}
	}
}

// constGen is an nn.Generator that always draws u: a uniform
// initialisation in ±bound then fills every element with bound·(2u-1), so
// the bound, hence the fan-in ReInit used, can be read off each tensor.
type constGen float64

func (g constGen) Float64() float64     { return float64(g) }
func (g constGen) NormFloat64() float64 { return float64(g) }

// TestReInit re-initialises a hand-built graph with a generator that always
// draws 0.75 and checks each parameter against torch's default for a new
// layer of its shape: Conv and Gemm weights and biases uniform in
// ±1/sqrt(fan_in) (so 0.5/sqrt(fan_in) here), BatchNormalization 1, 0 with
// running statistics 0, 1, PRelu 0.25, LayerNormalization 1, 0. The Gemm
// weight is read again by a MatMul, which would give it another fan-in (6,
// not 4): it must keep the first reader's. An initializer that no
// parameter slot reads (an Add's constant) is reported and left as it was.
func TestReInit(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	m := model(17, []*onnx.Node{
		node("Conv", []string{"x", "cw", "cb"}, []string{"c1"}, ais("kernel_shape", 3, 3)),
		node("BatchNormalization", []string{"c1", "bs", "bb", "mean", "var"}, []string{"b1"}),
		node("PRelu", []string{"b1", "slope"}, []string{"p1"}),
		node("Conv", []string{"p1", "cw2"}, []string{"c2"}, ais("kernel_shape", 1, 1)),
		node("Add", []string{"c2", "shift"}, []string{"a1"}),
		node("GlobalAveragePool", []string{"a1"}, []string{"g1"}),
		node("Flatten", []string{"g1"}, []string{"f"}),
		node("Gemm", []string{"f", "gw", "gb"}, []string{"h"}, ai("transB", 1)),
		node("MatMul", []string{"h", "gw"}, []string{"mm"}),
		node("LayerNormalization", []string{"mm", "ls", "lb"}, []string{"y"}, ai("axis", -1)),
	}, []*onnx.TensorProto{
		floatInit("cw", rng, 4, 2, 3, 3), floatInit("cb", rng, 4),
		floatInit("bs", rng, 4), floatInit("bb", rng, 4), floatInit("mean", rng, 4), positiveInit("var", rng, 4),
		floatInit("slope", rng, 4, 1, 1), floatInit("cw2", rng, 4, 4, 1, 1), floatInit("shift", rng, 4, 1, 1),
		floatInit("gw", rng, 6, 4), floatInit("gb", rng, 6), floatInit("ls", rng, 4), floatInit("lb", rng, 4),
	}, []*onnx.ValueInfo{vi("x", onnx.Float, -1, 2, 5, 5)}, []*onnx.ValueInfo{vi("y", onnx.Float, -1, 4)})
	g, err := Import(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	shift := append([]float32{}, g.Live("shift").Data()...)
	kept := ReInit(g, constGen(0.75))
	if strings.Join(kept, ",") != "shift" {
		t.Errorf("got kept parameters %v, want [shift]", kept)
	}
	uniform := func(fanIn int) float32 {
		b := 1 / math.Sqrt(float64(fanIn))
		return float32(-b + 2*b*0.75)
	}
	want := map[string]float32{
		"cw": uniform(2 * 3 * 3), "cb": uniform(2 * 3 * 3), "cw2": uniform(4),
		"gw": uniform(4), "gb": uniform(4),
		"bs": 1, "bb": 0, "mean": 0, "var": 1, "slope": 0.25, "ls": 1, "lb": 0,
	}
	for name, w := range want {
		for i, v := range g.Live(name).Data() {
			if v != w {
				t.Errorf("%s[%d]: got %v, want %v", name, i, v, w)
				break
			}
		}
	}
	for i, v := range g.Live("shift").Data() {
		if v != shift[i] {
			t.Errorf("shift[%d]: got %v, want its exported %v", i, v, shift[i])
		}
	}
	if y := g.Forward(nn.Ones(2, 2, 5, 5)); !sameShape(y.Shape(), []int{2, 4}) {
		t.Errorf("after ReInit: got output shape %v, want [2 4]", y.Shape())
	}
}
