package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ckptkit/ckpt/nn/internal/vec"
)

// TestDepthwisePaddingOnlyColumns covers depthwise kernels wider than the
// input, whose outer columns only ever see padding (mobilenet_v3 at 32 px,
// convnext below 96 px). On a 1×1 input with padding 2, a 5×5 kernel's
// output is, by definition, the center tap times the input plus the bias.
func TestDepthwisePaddingOnlyColumns(t *testing.T) {
	ManualSeed(5)
	conv := NewConv2d(nil, 8, 8, 5, Padding(2), Groups(8))
	x := RandN(2, 8, 1, 1)
	var y *Tensor
	NoGrad(func() { y = conv.Forward(x) })
	if got := y.Shape(); len(got) != 4 || got[0] != 2 || got[1] != 8 || got[2] != 1 || got[3] != 1 {
		t.Fatalf("output shape %v, want [2 8 1 1]", got)
	}
	w, b := conv.Weight.Data(), conv.Bias.Data()
	for n := range 2 {
		for c := range 8 {
			want := x.Data()[n*8+c]*w[c*25+12] + b[c]
			if got := y.Data()[n*8+c]; math.Abs(float64(got-want)) > 1e-6 {
				t.Errorf("sample %d channel %d: got %v, want %v", n, c, got, want)
			}
		}
	}
}

// TestDepthwiseEmptyBatch checks that a batch of no images gives an empty
// output rather than a panic.
func TestDepthwiseEmptyBatch(t *testing.T) {
	var y *Tensor
	NoGrad(func() {
		y = Conv2dFn(Zeros(0, 4, 5, 5), RandN(4, 1, 3, 3), nil, ConvParams{Padding: [2]int{1, 1}, Groups: 4})
	})
	if got := y.Shape(); len(got) != 4 || got[0] != 0 || got[1] != 4 || got[2] != 5 || got[3] != 5 {
		t.Errorf("output shape %v, want [0 4 5 5]", got)
	}
}

// depthwiseReference is the definition of a depthwise convolution, summed
// in float64: out[n,c,oh,ow] = b[c] + Σ w[c,ki,kj]·x[n,c,oh·sh-ph+ki·dh,
// ow·sw-pw+kj·dw] over the taps that fall inside the input.
func depthwiseReference(g *convGeom, x, w, b []float32) []float64 {
	out := make([]float64, g.n*g.c*g.ohw)
	for n := range g.n {
		for c := range g.c {
			for oh := range g.oh {
				for ow := range g.ow {
					s := 0.0
					if b != nil {
						s = float64(b[c])
					}
					for ki := range g.kh {
						for kj := range g.kw {
							ih, iw := oh*g.sh-g.ph+ki*g.dh, ow*g.sw-g.pw+kj*g.dw
							if ih < 0 || ih >= g.h || iw < 0 || iw >= g.wd {
								continue
							}
							s += float64(w[(c*g.kh+ki)*g.kw+kj]) * float64(x[((n*g.c+c)*g.h+ih)*g.wd+iw])
						}
					}
					out[((n*g.c+c)*g.oh+oh)*g.ow+ow] = s
				}
			}
		}
	}
	return out
}

// TestDepthwiseRandomShapes compares depthwiseForward and the direct loop
// with the reference over random geometries: kernels 1..7 (also non-square),
// strides 1..3, paddings 0..k, dilations 1..2, widths that leave vector
// tails, batches of 1..3, with and without bias. The output starts as NaN
// garbage (it comes from an arena), which depthwiseForward must overwrite.
// The tolerance allows float32 rounding of a sum of at most 49 products of
// N(0,1) values.
func TestDepthwiseRandomShapes(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 300 {
		kh, kw := 1+r.IntN(7), 1+r.IntN(7)
		if i%2 == 0 {
			kw = kh
		}
		p := ConvParams{Groups: 1 + r.IntN(5)}
		p.Stride = [2]int{1 + r.IntN(3), 1 + r.IntN(3)}
		p.Dilation = [2]int{1 + r.IntN(2), 1 + r.IntN(2)}
		p.Padding = [2]int{r.IntN(kh + 1), r.IntN(kw + 1)}
		if i%3 == 0 { // the models' case: same stride both ways, padding k/2
			p.Stride[1], p.Dilation = p.Stride[0], [2]int{1, 1}
			p.Padding = [2]int{kh / 2, kw / 2}
		}
		h := p.Dilation[0]*(kh-1) + 1 - 2*p.Padding[0] + r.IntN(40)
		wd := p.Dilation[1]*(kw-1) + 1 - 2*p.Padding[1] + r.IntN(70)
		h, wd = max(h, 1), max(wd, 1)
		batch := 1 + r.IntN(3)
		name := fmt.Sprintf("%d_n%dc%d_%dx%d_k%dx%d_s%v_p%v_d%v", i, batch, p.Groups, h, wd, kh, kw, p.Stride, p.Padding, p.Dilation)
		x := randT(uint64(3*i), nil, batch, p.Groups, h, wd)
		w := randT(uint64(3*i+1), nil, p.Groups, 1, kh, kw)
		var b *Tensor
		if i%2 == 1 {
			b = randT(uint64(3*i+2), nil, p.Groups)
		}
		g := convGeometry(x, w, b, p)
		if g.oh <= 0 || g.ow <= 0 {
			continue
		}
		var bd []float32
		if b != nil {
			bd = b.data
		}
		want := depthwiseReference(&g, x.data, w.data, bd)
		nan := float32(math.NaN())
		for _, impl := range []struct {
			name string
			fn   func(*convGeom, []float32, []float32, *Tensor, []float32)
			out  float32 // what out holds before the call
		}{{"forward", depthwiseForward, nan}, {"direct", depthwiseDirect, 0}} {
			out := make([]float32, len(want))
			for j := range out {
				out[j] = impl.out
			}
			impl.fn(&g, x.data, w.data, b, out)
			for j, v := range out {
				if d := math.Abs(float64(v) - want[j]); !(d <= 1e-5*(1+math.Abs(want[j]))*float64(kh*kw)) {
					t.Fatalf("%s %s: out[%d] = %v, want %v", impl.name, name, j, v, want[j])
				}
			}
		}
		// The prepared path's fused activation: a clamp (ReLU, ReLU6) is
		// applied by the filter kernel, any other after it, plane by
		// plane; each must match the activation applied to the reference.
		// The tolerance adds the activation's own float32 error (at most a
		// few ulp: vec's kernels are checked to 1e-6 relative).
		act := []vec.Act{vec.ReLU, vec.ReLU6, vec.Hardswish, vec.SiLU}[i%4]
		out := make([]float32, len(want))
		for j := range out {
			out[j] = nan
		}
		depthwiseForwardAct(&g, x.data, w.data, bd, act, out)
		for j, v := range out {
			ref := []float32{float32(want[j])}
			vec.Apply(ref, act)
			wa := float64(ref[0])
			if d := math.Abs(float64(v) - wa); !(d <= 1e-5*(1+math.Abs(wa))*float64(kh*kw)+1e-6*math.Abs(wa)) {
				t.Fatalf("forward+%v %s: out[%d] = %v, want %v", act, name, j, v, wa)
			}
		}
	}
}

// BenchmarkDepthwise times the depthwise layers of mobilenet_v2,
// efficientnet_b0 and convnext at 224×224, the direct loop ("old") beside
// the phase-plane kernels ("new"), and reports GFLOP/s (2·multiply-adds)
// and the process CPU time per call (both threads), which a shared
// machine disturbs less than the wall time.
func BenchmarkDepthwise(b *testing.B) {
	for _, c := range []struct {
		name           string
		n, c, hw, k, s int
	}{
		{"96x112_k3s2", 1, 96, 112, 3, 2},
		{"32x112_k3s1", 1, 32, 112, 3, 1},
		{"144x56_k3s1", 1, 144, 56, 3, 1},
		{"144x56_k5s2", 1, 144, 56, 5, 2},
		{"240x28_k5s1", 1, 240, 28, 5, 1},
		{"480x14_k3s1", 1, 480, 14, 3, 1},
		{"672x14_k5s2", 1, 672, 14, 5, 2},
		{"1152x7_k5s1", 1, 1152, 7, 5, 1},
		{"96x56_k7s1", 1, 96, 56, 7, 1},
		{"768x7_k7s1", 1, 768, 7, 7, 1},
		{"b8_144x56_k3s1", 8, 144, 56, 3, 1},
		{"b8_672x14_k5s2", 8, 672, 14, 5, 2},
	} {
		var x, w, bias *Tensor
		var g convGeom
		var out []float32
		for _, impl := range []struct {
			name string
			fn   func(*convGeom, []float32, []float32, *Tensor, []float32)
		}{{"old", depthwiseDirect}, {"new", depthwiseForward}} {
			b.Run(c.name+"/"+impl.name, func(b *testing.B) {
				if x == nil { // made on first use, so -bench picks shapes cheaply
					x, w, bias = RandN(c.n, c.c, c.hw, c.hw), RandN(c.c, 1, c.k, c.k), RandN(c.c)
					p := ConvParams{Stride: [2]int{c.s, c.s}, Padding: [2]int{c.k / 2, c.k / 2}, Groups: c.c}
					g = convGeometry(x, w, bias, p)
					out = make([]float32, g.n*g.c*g.ohw)
				}
				flops := 2.0 * float64(len(out)*c.k*c.k)
				b.ReportAllocs()
				c0 := cpuTime()
				for b.Loop() {
					impl.fn(&g, x.data, w.data, bias, out)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				b.ReportMetric((cpuTime()-c0).Seconds()*1e6/float64(b.N), "cpu-us/op")
			})
		}
	}
}

// TestDepthwiseAllocs checks that a small depthwise convolution (below the
// parallel threshold) allocates no more than the direct loop does: the
// scratch planes come from a pool.
func TestDepthwiseAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops items at random")
	}
	x, w, b := RandN(1, 8, 6, 6), RandN(8, 1, 3, 3), RandN(8)
	g := convGeometry(x, w, b, ConvParams{Stride: [2]int{2, 2}, Padding: [2]int{1, 1}, Groups: 8})
	out := make([]float32, g.n*g.c*g.ohw)
	depthwiseForward(&g, x.data, w.data, b, out) // fill the pool
	want := testing.AllocsPerRun(20, func() { depthwiseDirect(&g, x.data, w.data, b, out) })
	if got := testing.AllocsPerRun(20, func() { depthwiseForward(&g, x.data, w.data, b, out) }); got > want {
		t.Errorf("got %v allocations per run, want at most %v", got, want)
	}
}
