package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// poolSpecials are the values that tell max implementations apart: signed
// zeros (torch keeps the first of equal values), infinities (padding is
// -inf) and NaNs with distinct payloads (torch keeps the last NaN).
var poolSpecials = []float32{
	0, float32(math.Copysign(0, -1)), 1, -1, 2,
	float32(math.Inf(1)), float32(math.Inf(-1)),
	math.Float32frombits(0x7fc00001), math.Float32frombits(0x7fc00002), math.Float32frombits(0xffc00003),
}

// poolData returns n floats: normals, with a share of special values, or
// (ties) mostly zeros of either sign, as after a ReLU.
func poolData(r *rand.Rand, n int, special float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		switch f := r.Float64(); {
		case f < special:
			x[i] = poolSpecials[r.IntN(len(poolSpecials))]
		case f < 2*special:
			x[i] = poolSpecials[r.IntN(2)]
		default:
			x[i] = float32(r.NormFloat64())
		}
	}
	return x
}

// sameBits reports whether a and b are the same float32 bit patterns and, if
// not, the first index where they differ.
func sameBits(a, b []float32) (int, bool) {
	if len(a) != len(b) {
		return -1, false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i, false
		}
	}
	return 0, true
}

func TestMaxKeepFirst(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 80 {
		for _, special := range []float64{0, 0.3} {
			a, b := poolData(r, n, special), poolData(r, n, special)
			want := make([]float32, n)
			for i := range want {
				// torch's step: take v = b[i] if v > best or v is NaN.
				if v := b[i]; v > a[i] || math.IsNaN(float64(v)) {
					want[i] = v
				} else {
					want[i] = a[i]
				}
			}
			got := make([]float32, n)
			maxKeepFirst(got, a, b)
			if i, ok := sameBits(got, want); !ok {
				t.Fatalf("n=%d: [%d] got %#x, want %#x (a %#x, b %#x)", n, i,
					math.Float32bits(got[i]), math.Float32bits(want[i]), math.Float32bits(a[i]), math.Float32bits(b[i]))
			}
			maxKeepFirst(a, a, b) // in place
			if i, ok := sameBits(a, want); !ok {
				t.Fatalf("n=%d in place: [%d] got %#x, want %#x", n, i, math.Float32bits(a[i]), math.Float32bits(want[i]))
			}
		}
	}
}

// poolCases returns every pooling geometry with kernels up to 4, strides up
// to 3, the paddings torch allows, dilations up to 2 (when dilation is set)
// and both ceil modes, skipping those torch rejects as too small for h×w.
func poolCases(h, w int, dilation bool) []PoolParams {
	var ps []PoolParams
	maxDil := 1
	if dilation {
		maxDil = 2
	}
	for kh := 1; kh <= 4; kh++ {
		for kw := 1; kw <= 4; kw++ {
			for sh := 1; sh <= 3; sh++ {
				for sw := 1; sw <= 3; sw++ {
					for ph := 0; ph <= kh/2; ph++ {
						for pw := 0; pw <= kw/2; pw++ {
							for d := range maxDil * maxDil {
								dh, dw := 1+d/maxDil, 1+d%maxDil
								for _, ceil := range []bool{false, true} {
									oh := poolOutSize(h, kh, sh, ph, dh, ceil)
									ow := poolOutSize(w, kw, sw, pw, dw, ceil)
									if oh <= 0 || ow <= 0 {
										continue
									}
									ps = append(ps, PoolParams{KernelSize: [2]int{kh, kw}, Stride: [2]int{sh, sw},
										Padding: [2]int{ph, pw}, Dilation: [2]int{dh, dw}, CeilMode: ceil})
								}
							}
						}
					}
				}
			}
		}
	}
	return ps
}

func poolName(p PoolParams) string {
	return fmt.Sprintf("k%v s%v p%v d%v ceil=%v", p.KernelSize, p.Stride, p.Padding, p.Dilation, p.CeilMode)
}

// TestMaxPoolValuesMatchesIndexed checks the inference path against the
// indexed reference (torch's loop) bit for bit, NaN payloads and signed
// zeros included.
func TestMaxPoolValuesMatchesIndexed(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	sizes := [][2]int{{1, 1}, {1, 5}, {2, 3}, {4, 4}, {5, 7}, {7, 5}, {9, 8}, {6, 17}, {3, 33}}
	checked := 0
	for _, hw := range sizes {
		for _, p := range poolCases(hw[0], hw[1], true) {
			x := &Tensor{shape: []int{2, 3, hw[0], hw[1]}}
			x.data = poolData(r, numel(x.shape), 0.2)
			g := poolGeometry("MaxPool2d", x, p)
			want := make([]float32, g.n*g.c*g.oh*g.ow)
			maxPoolIndexed(&g, x.data, want, nil)
			got := make([]float32, len(want))
			maxPoolValues(&g, x.data, got)
			if i, ok := sameBits(got, want); !ok {
				t.Fatalf("%dx%d %s: [%d] got %#x, want %#x", hw[0], hw[1], poolName(p), i, math.Float32bits(got[i]), math.Float32bits(want[i]))
			}
			checked++
		}
	}
	if checked < 10000 {
		t.Fatalf("got %d geometries checked, want at least 10000", checked)
	}
}

// TestMaxPoolValuesParallel checks a size large enough for parallelFor.
func TestMaxPoolValuesParallel(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, p := range []PoolParams{
		{KernelSize: [2]int{3, 3}, Stride: [2]int{2, 2}, Padding: [2]int{1, 1}},
		{KernelSize: [2]int{3, 3}, Stride: [2]int{2, 2}, CeilMode: true},
		{KernelSize: [2]int{2, 2}, Stride: [2]int{2, 2}},
	} {
		x := &Tensor{shape: []int{3, 16, 27, 29}}
		x.data = poolData(r, numel(x.shape), 0.05)
		g := poolGeometry("MaxPool2d", x, p)
		want := make([]float32, g.n*g.c*g.oh*g.ow)
		maxPoolIndexed(&g, x.data, want, nil)
		var got *Tensor
		NoGrad(func() { got = MaxPool2dFn(x, p) })
		if i, ok := sameBits(got.data, want); !ok {
			t.Fatalf("%s: [%d] got %#x, want %#x", poolName(p), i, math.Float32bits(got.data[i]), math.Float32bits(want[i]))
		}
	}
}

func TestEveryNth(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for n := 1; n <= 4; n++ {
		for m := range 70 {
			src := poolData(r, m*n+n, 0.2)
			got := make([]float32, m)
			everyNth(got, src, n)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(src[i*n]) {
					t.Fatalf("n=%d m=%d: [%d] got %v, want %v", n, m, i, got[i], src[i*n])
				}
			}
		}
	}
}

// TestAvgPoolValuesMatchesWindows checks the inference path against the
// window-at-a-time reference (torch's loop) bit for bit; a NaN matches any
// NaN, as which of two NaNs a sum keeps is the compiler's choice of operand
// order.
func TestAvgPoolValuesMatchesWindows(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	sizes := [][2]int{{1, 1}, {1, 5}, {2, 3}, {4, 4}, {5, 7}, {7, 5}, {9, 8}, {6, 17}, {3, 33}}
	checked := 0
	for _, hw := range sizes {
		for _, p := range poolCases(hw[0], hw[1], false) {
			for _, incl := range []bool{false, true} {
				x := &Tensor{shape: []int{2, 3, hw[0], hw[1]}}
				x.data = poolData(r, numel(x.shape), 0.02)
				g := poolGeometry("AvgPool2d", x, p)
				want := make([]float32, g.n*g.c*g.oh*g.ow)
				avgPoolWindows(&g, x.data, want, incl)
				got := make([]float32, len(want))
				avgPoolValues(&g, x.data, got, incl)
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
						t.Fatalf("%dx%d %s include_pad=%v: [%d] got %v (%#x), want %v (%#x)", hw[0], hw[1], poolName(p), incl, i,
							got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
					}
				}
				checked++
			}
		}
	}
	if checked < 10000 {
		t.Fatalf("got %d geometries checked, want at least 10000", checked)
	}
}

// TestPlaneMeansMatchesWindows checks adaptive average pooling to 1×1
// against the window-at-a-time reference bit for bit, below and above the
// parallel threshold and for plane counts that are not multiples of four.
func TestPlaneMeansMatchesWindows(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, shape := range [][]int{{1, 1, 1, 1}, {1, 3, 2, 5}, {2, 5, 7, 7}, {1, 7, 1, 9}, {3, 701, 7, 7}, {1, 2049, 8, 8}} {
		x := &Tensor{shape: shape, data: poolData(r, numel(shape), 0.001)}
		n, c, h, w := shape[0], shape[1], shape[2], shape[3]
		want := make([]float32, n*c)
		adaptivePoolWindows(x.data, want, n*c, h, w, 1, 1, false, nil)
		var got *Tensor
		NoGrad(func() { got = AdaptiveAvgPool2dFn(x, 1, 1) })
		for i := range want {
			if math.Float32bits(got.data[i]) != math.Float32bits(want[i]) && !(got.data[i] != got.data[i] && want[i] != want[i]) {
				t.Fatalf("%v: [%d] got %v, want %v", shape, i, got.data[i], want[i])
			}
		}
	}
}

// TestPoolValuesRandomGeometry checks both inference paths against their
// references on random larger geometries: rows long enough for the vector
// loops' main blocks, kernels up to 5, strides up to 4, dilations up to 3.
func TestPoolValuesRandomGeometry(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for range 300 {
		var p PoolParams
		for i := range 2 {
			p.KernelSize[i] = 1 + r.IntN(5)
			p.Stride[i] = 1 + r.IntN(4)
			p.Padding[i] = r.IntN(p.KernelSize[i]/2 + 1)
			p.Dilation[i] = 1 + r.IntN(3)
		}
		p.CeilMode = r.IntN(2) == 1
		h, w := 1+r.IntN(80), 1+r.IntN(80)
		if poolOutSize(h, p.KernelSize[0], p.Stride[0], p.Padding[0], p.Dilation[0], p.CeilMode) <= 0 ||
			poolOutSize(w, p.KernelSize[1], p.Stride[1], p.Padding[1], p.Dilation[1], p.CeilMode) <= 0 {
			continue
		}
		x := &Tensor{shape: []int{1, 1 + r.IntN(3), h, w}}
		x.data = poolData(r, numel(x.shape), 0.1)
		g := poolGeometry("MaxPool2d", x, p)
		want := make([]float32, g.n*g.c*g.oh*g.ow)
		maxPoolIndexed(&g, x.data, want, nil)
		got := make([]float32, len(want))
		maxPoolValues(&g, x.data, got)
		if i, ok := sameBits(got, want); !ok {
			t.Fatalf("max %dx%d %s: [%d] got %#x, want %#x", h, w, poolName(p), i, math.Float32bits(got[i]), math.Float32bits(want[i]))
		}
		p.Dilation = [2]int{1, 1}
		if poolOutSize(h, p.KernelSize[0], p.Stride[0], p.Padding[0], 1, p.CeilMode) <= 0 ||
			poolOutSize(w, p.KernelSize[1], p.Stride[1], p.Padding[1], 1, p.CeilMode) <= 0 {
			continue
		}
		g = poolGeometry("AvgPool2d", x, p)
		incl := r.IntN(2) == 1
		want = make([]float32, g.n*g.c*g.oh*g.ow)
		avgPoolWindows(&g, x.data, want, incl)
		got = make([]float32, len(want))
		avgPoolValues(&g, x.data, got, incl)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
				t.Fatalf("avg %dx%d %s include_pad=%v: [%d] got %v, want %v", h, w, poolName(p), incl, i, got[i], want[i])
			}
		}
	}
}

// TestAddStridedDivTo checks the average pooling kernels against Go's
// float32 arithmetic over every tail length.
func TestAddStridedDivTo(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for m := range 70 {
		for n := 1; n <= 3; n++ {
			dst, src := poolData(r, m, 0), poolData(r, m*n+n, 0.05)
			want := make([]float32, m)
			for i := range want {
				want[i] = dst[i] + src[i*n]
			}
			addStrided(dst, src, n)
			for i := range want {
				if math.Float32bits(dst[i]) != math.Float32bits(want[i]) && !(dst[i] != dst[i] && want[i] != want[i]) {
					t.Fatalf("addStrided m=%d n=%d: [%d] got %v, want %v", m, n, i, dst[i], want[i])
				}
			}
		}
		a, b := poolData(r, m, 0.05), poolData(r, m, 0.05)
		want := make([]float32, m)
		for i := range want {
			want[i] = a[i] / b[i]
		}
		divTo(a, a, b)
		for i := range want {
			if math.Float32bits(a[i]) != math.Float32bits(want[i]) && !(a[i] != a[i] && want[i] != want[i]) {
				t.Fatalf("divTo m=%d: [%d] got %v, want %v", m, i, a[i], want[i])
			}
		}
	}
}

// TestMaxPoolWithIndices checks the two-pass indexed max pooling against
// maxPoolIndexed's running comparison, values and indices, over random
// geometries and inputs with ties (few distinct values), signed zeros, NaN
// and infinities.
func TestMaxPoolWithIndices(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	vals := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 2, float32(math.Inf(-1)), float32(math.Inf(1)), float32(math.NaN())}
	for it := range 400 {
		k := [2]int{1 + r.IntN(4), 1 + r.IntN(4)}
		p := PoolParams{KernelSize: k, Stride: [2]int{1 + r.IntN(3), 1 + r.IntN(3)},
			Padding: [2]int{r.IntN(k[0]/2 + 1), r.IntN(k[1]/2 + 1)}, Dilation: [2]int{1 + r.IntN(2), 1 + r.IntN(2)}, CeilMode: r.IntN(2) == 0}
		x := RandN(1+r.IntN(2), 1+r.IntN(3), 8+r.IntN(10), 8+r.IntN(10))
		for i := range x.data {
			if it%2 == 0 {
				x.data[i] = vals[r.IntN(len(vals))]
			}
		}
		g := poolGeometry("MaxPool2d", x, p)
		n := g.n * g.c * g.oh * g.ow
		want, wantIdx := make([]float32, n), make([]int32, n)
		got, gotIdx := make([]float32, n), make([]int32, n)
		maxPoolIndexed(&g, x.data, want, wantIdx)
		maxPoolWithIndices(&g, x.data, got, gotIdx)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) || gotIdx[i] != wantIdx[i] {
				t.Fatalf("%+v on %v: output %d: got %v at %d, want %v at %d", p, x.shape, i, got[i], gotIdx[i], want[i], wantIdx[i])
			}
		}
	}
}
