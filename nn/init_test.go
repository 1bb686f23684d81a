package nn_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/ckptkit/ckpt/nn"
)

// testdata/optim/init.json is made by testdata/gen/optim_init.py with
// PyTorch 1.13: fans and gains from torch's own functions, and for each
// initialiser call the distribution torch draws from (checked there against
// a sample torch drew).

type initDist struct {
	Kind string  `json:"kind"`
	Low  float64 `json:"low"`
	High float64 `json:"high"`
	Mean float64 `json:"mean"`
	Std  float64 `json:"std"`
	A    float64 `json:"a"`
	B    float64 `json:"b"`
}

type initFixture struct {
	Gains []struct {
		Nonlinearity string   `json:"nonlinearity"`
		Param        *float64 `json:"param"`
		Gain         float64  `json:"gain"`
	} `json:"gains"`
	Shapes []struct {
		Shape  []int `json:"shape"`
		FanIn  int   `json:"fan_in"`
		FanOut int   `json:"fan_out"`
		Inits  []struct {
			Fn     string         `json:"fn"`
			Kwargs map[string]any `json:"kwargs"`
			Dist   initDist       `json:"dist"`
		} `json:"inits"`
	} `json:"shapes"`
}

func loadInitFixture(t *testing.T) *initFixture {
	t.Helper()
	b, err := os.ReadFile("../testdata/optim/init.json")
	if err != nil {
		t.Fatal(err)
	}
	var f initFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Shapes) == 0 || len(f.Gains) == 0 {
		t.Fatal("empty fixture")
	}
	return &f
}

func TestCalculateGain(t *testing.T) {
	for _, c := range loadInitFixture(t).Gains {
		var got float64
		if c.Param != nil {
			got = nn.CalculateGain(c.Nonlinearity, *c.Param)
		} else {
			got = nn.CalculateGain(c.Nonlinearity)
		}
		if math.Abs(got-c.Gain) > 1e-15*c.Gain {
			t.Errorf("CalculateGain(%s, %v): got %v, want %v", c.Nonlinearity, c.Param, got, c.Gain)
		}
	}
}

func TestFanInAndFanOut(t *testing.T) {
	for _, c := range loadInitFixture(t).Shapes {
		fi, fo := nn.FanInAndFanOut(c.Shape)
		if fi != c.FanIn || fo != c.FanOut {
			t.Errorf("%v: got (%d, %d), want (%d, %d)", c.Shape, fi, fo, c.FanIn, c.FanOut)
		}
	}
	defer func() {
		if _, ok := recover().(*nn.ShapeError); !ok {
			t.Errorf("one-dimensional shape: want a *ShapeError panic")
		}
	}()
	nn.FanInAndFanOut([]int{5})
}

// runInit calls the Go initialiser named by torch's function name.
func runInit(t *testing.T, w *nn.Tensor, fn string, kw map[string]any, g nn.Generator) {
	t.Helper()
	f := func(k string) float64 { return kw[k].(float64) }
	mode := func() nn.FanMode {
		if kw["mode"] == "fan_out" {
			return nn.FanOut
		}
		return nn.FanIn
	}
	switch fn {
	case "kaiming_uniform_":
		nn.KaimingUniform(w, f("a"), mode(), kw["nonlinearity"].(string), g)
	case "kaiming_normal_":
		nn.KaimingNormal(w, f("a"), mode(), kw["nonlinearity"].(string), g)
	case "xavier_uniform_":
		nn.XavierUniform(w, f("gain"), g)
	case "xavier_normal_":
		nn.XavierNormal(w, f("gain"), g)
	case "uniform_":
		nn.InitUniform(w, f("a"), f("b"), g)
	case "normal_":
		nn.InitNormal(w, f("mean"), f("std"), g)
	case "trunc_normal_":
		nn.InitTruncNormal(w, f("mean"), f("std"), f("a"), f("b"), g)
	default:
		t.Fatalf("unknown initialiser %s", fn)
	}
}

// truncMoments returns the mean and standard deviation of N(mu, s²)
// restricted to [a, b].
func truncMoments(mu, s, a, b float64) (float64, float64) {
	phi := func(x float64) float64 { return math.Exp(-x*x/2) / math.Sqrt(2*math.Pi) }
	cdf := func(x float64) float64 { return (1 + math.Erf(x/math.Sqrt2)) / 2 }
	al, be := (a-mu)/s, (b-mu)/s
	z := cdf(be) - cdf(al)
	m := (phi(al) - phi(be)) / z
	v := 1 + (al*phi(al)-be*phi(be))/z - m*m
	return mu + s*m, s * math.Sqrt(v)
}

// TestInitDistributions draws at least 50 000 values from each initialiser
// (a seeded generator, so the test is deterministic) and checks them against
// torch's distribution. Tolerances are 5 standard errors of each statistic
// for the sample size n: the mean within 5σ/√n; the standard deviation
// within 5·√((κ-1)/4n) relative, κ the kurtosis (1.8 uniform, 3 normal, at
// most 3 truncated normal); bounds exact (float32-rounded); the extremes of
// a uniform within 20/n of the range of its ends (missed with probability
// e⁻²⁰); the share of normal values within one σ at 0.6827 ± 5 standard
// errors. A wrong fan, gain or √3 moves a statistic by more than 10%.
func TestInitDistributions(t *testing.T) {
	g := rand.New(rand.NewPCG(1, 2))
	for _, sc := range loadInitFixture(t).Shapes {
		for _, c := range sc.Inits {
			t.Run(fmt.Sprintf("%v/%s/%v", sc.Shape, c.Fn, c.Kwargs), func(t *testing.T) {
				w := nn.Zeros(sc.Shape...)
				var xs []float64
				for len(xs) < 50000 {
					runInit(t, w, c.Fn, c.Kwargs, g)
					for _, v := range w.Data() {
						xs = append(xs, float64(v))
					}
				}
				checkSample(t, xs, c.Dist)
			})
		}
	}
}

func checkSample(t *testing.T, xs []float64, d initDist) {
	t.Helper()
	n := float64(len(xs))
	mean, lo, hi := 0.0, math.Inf(1), math.Inf(-1)
	for _, x := range xs {
		mean += x
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	mean /= n
	ss := 0.0
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	std := math.Sqrt(ss / (n - 1))
	var wantMean, wantStd, kurt float64
	switch d.Kind {
	case "uniform":
		wantMean, wantStd, kurt = (d.Low+d.High)/2, (d.High-d.Low)/math.Sqrt(12), 1.8
		if lo < float64(float32(d.Low)) || hi > float64(float32(d.High)) {
			t.Errorf("range: got [%v, %v], want within [%v, %v]", lo, hi, d.Low, d.High)
		}
		if slack := 20 / n * (d.High - d.Low); lo > d.Low+slack || hi < d.High-slack {
			t.Errorf("range: got [%v, %v], want it to reach [%v, %v]", lo, hi, d.Low, d.High)
		}
	case "normal":
		wantMean, wantStd, kurt = d.Mean, d.Std, 3
		in := 0.0
		for _, x := range xs {
			if math.Abs(x-d.Mean) < d.Std {
				in++
			}
		}
		p := 0.6826894921370859
		if got := in / n; math.Abs(got-p) > 5*math.Sqrt(p*(1-p)/n) {
			t.Errorf("share within one std: got %v, want %v", got, p)
		}
	case "trunc_normal":
		wantMean, wantStd = truncMoments(d.Mean, d.Std, d.A, d.B)
		kurt = 3
		if lo < d.A || hi > d.B {
			t.Errorf("range: got [%v, %v], want within [%v, %v]", lo, hi, d.A, d.B)
		}
	default:
		t.Fatalf("unknown distribution %s", d.Kind)
	}
	if tol := 5 * wantStd / math.Sqrt(n); math.Abs(mean-wantMean) > tol {
		t.Errorf("mean: got %v, want %v ± %v", mean, wantMean, tol)
	}
	if tol := 5 * math.Sqrt((kurt-1)/(4*n)); math.Abs(std/wantStd-1) > tol {
		t.Errorf("std: got %v, want %v (relative tolerance %v)", std, wantStd, tol)
	}
}

// TestInitSeeded: the package generator reseeded gives the same weights; a
// different seed gives different ones; constants are exact.
func TestInitSeeded(t *testing.T) {
	fill := func(seed uint64) []float32 {
		nn.ManualSeed(seed)
		return nn.KaimingNormal(nn.Zeros(8, 4, 3, 3), 0, nn.FanOut, "relu", nil).Data()
	}
	a, b, c := fill(7), fill(7), fill(8)
	same, diff := true, false
	for i := range a {
		same = same && a[i] == b[i]
		diff = diff || a[i] != c[i]
	}
	if !same || !diff {
		t.Errorf("got same seed equal %v, other seed different %v; want true, true", same, diff)
	}
	for _, v := range nn.InitConstant(nn.Zeros(3, 2), 0.25).Data() {
		if v != 0.25 {
			t.Fatalf("InitConstant: got %v, want 0.25", v)
		}
	}
	if got := nn.InitOnes(nn.Zeros(2)).Data(); got[0] != 1 || got[1] != 1 {
		t.Errorf("InitOnes: got %v", got)
	}
	if got := nn.InitZeros(nn.Ones(2)).Data(); got[0] != 0 || got[1] != 0 {
		t.Errorf("InitZeros: got %v", got)
	}
}

func ExampleFanInAndFanOut() {
	fanIn, fanOut := nn.FanInAndFanOut([]int{64, 3, 7, 7}) // ResNet's first convolution
	fmt.Println(fanIn, fanOut)
	fmt.Printf("%.4f\n", nn.CalculateGain("leaky_relu", math.Sqrt(5)))
	// Output:
	// 147 3136
	// 0.5774
}

// ExampleKaimingNormal initialises a network as torchvision's ResNet does:
// convolutions kaiming_normal_(mode="fan_out", nonlinearity="relu"),
// BatchNorm weight 1 and bias 0, from a seeded generator.
func ExampleKaimingNormal() {
	net := nn.NewSequential(
		nn.NewConv2d(nil, 3, 64, 7, nn.Stride(2), nn.Padding(3), nn.NoBias()),
		nn.NewBatchNorm2d(nil, 64),
		nn.NewReLU(true),
	)
	g := rand.New(rand.NewPCG(42, 0))
	nn.Apply(net, func(m nn.Module) {
		switch l := m.(type) {
		case *nn.Conv2d:
			nn.KaimingNormal(l.Weight, 0, nn.FanOut, "relu", g)
		case *nn.BatchNorm2d:
			nn.InitOnes(l.Weight)
			nn.InitZeros(l.Bias)
		}
	})
	w := net.At(0).(*nn.Conv2d).Weight.Data()
	ss := 0.0
	for _, v := range w {
		ss += float64(v) * float64(v)
	}
	std, want := math.Sqrt(ss/float64(len(w))), math.Sqrt(2.0/3136)
	fmt.Println("conv std within 3% of sqrt(2/fan_out):", math.Abs(std/want-1) < 0.03)
	fmt.Println("bn weight:", net.At(1).(*nn.BatchNorm2d).Weight.Data()[:3])
	// Output:
	// conv std within 3% of sqrt(2/fan_out): true
	// bn weight: [1 1 1]
}

// ExampleInitTruncNormal initialises as torchvision's ViT and ConvNeXt do:
// trunc_normal_(std=0.02), cut at ±2 (far out: 100 std).
func ExampleInitTruncNormal() {
	w := nn.InitTruncNormal(nn.Zeros(768, 3072), 0, 0.02, -2, 2, rand.New(rand.NewPCG(1, 1)))
	lo, hi := float32(0), float32(0)
	for _, v := range w.Data() {
		lo, hi = min(lo, v), max(hi, v)
	}
	fmt.Println("within ±0.15:", lo > -0.15 && hi < 0.15)
	// Output: within ±0.15: true
}
