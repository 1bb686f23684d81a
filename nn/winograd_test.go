package nn

import (
	"fmt"
	"math"
	"testing"

	"github.com/ckptkit/ckpt/nn/internal/vec"
	"github.com/ckptkit/ckpt/nn/internal/wino"
)

// TestWinogradMatchesDirect runs prepared 3×3 stride-1 convolutions through
// Winograd and through the direct product on the same weights and compares
// them. The tolerance is the parity suite's, 1e-4·max(1, max|y|), for one
// layer; the error measured here is 0.5-2.5e-5 of max|y| (F(4,3)'s
// transforms multiply by up to 8 and 1/6 in float32), so a network of
// such layers stays inside it (the models' parity tests check that).
func TestWinogradMatchesDirect(t *testing.T) {
	cases := []struct {
		n, c, o, h, w, pad int
		bias, res          bool
		act                vec.Act
	}{
		{1, 16, 16, 8, 8, 1, false, false, vec.Identity},
		{1, 64, 64, 56, 56, 1, true, false, vec.ReLU},
		{2, 32, 48, 14, 14, 1, true, true, vec.ReLU},
		{1, 16, 32, 13, 11, 1, true, false, vec.Identity}, // partial tiles
		{3, 24, 16, 10, 9, 0, false, true, vec.ReLU6},     // no padding
		{1, 16, 16, 7, 7, 2, true, false, vec.Identity},   // wider padding
		{5, 64, 64, 28, 27, 1, true, true, vec.ReLU},      // blocks of images on two goroutines, the last one short
		{4, 32, 32, 20, 20, 1, false, true, vec.ReLU},     // two blocks of two
		{2, 16, 24, 9, 30, 1, true, false, vec.SiLU},
	}
	saved := wino.Impl()
	defer wino.Force(saved)
	for i, tc := range cases {
		// Each case with another of the transform kernels (the AVX2 and
		// pure-Go ones too, on a CPU that would pick AVX-512).
		isa := []string{"avx512", "avx2", "go"}[i%3]
		wino.Force(isa)
		name := fmt.Sprintf("n%d_c%d_o%d_%dx%d_p%d/%s", tc.n, tc.c, tc.o, tc.h, tc.w, tc.pad, wino.Impl())
		t.Run(name, func(t *testing.T) {
			x := RandN(tc.n, tc.c, tc.h, tc.w)
			w := RandN(tc.o, tc.c, 3, 3)
			var b *Tensor
			if tc.bias {
				b = RandN(tc.o)
			}
			p := ConvParams{Stride: [2]int{1, 1}, Padding: [2]int{tc.pad, tc.pad}}
			e := newConvPrep(w, b, nil, p)
			oh, ow := tc.h+2*tc.pad-2, tc.w+2*tc.pad-2
			var res *Tensor
			if tc.res {
				res = RandN(tc.n, tc.o, oh, ow)
			}
			g := convGeometry(x, e.w, nil, e.p)
			if !useWinograd(&g) && g.n*((oh+3)/4)*((ow+3)/4) >= winoMinTiles && min(tc.c, tc.o) >= winoMinChannels {
				t.Fatalf("useWinograd is false for a shape it should take")
			}
			savedT, savedC := winoMinTiles, winoMinChannels
			winoMinTiles, winoMinChannels = 0, 0
			got := e.forward(x, res, tc.act)
			winoMinTiles, winoMinChannels = savedT, savedC
			winogradOff = true
			want := e.forward(x, res, tc.act)
			winogradOff = false
			if !sameShape(got.shape, want.shape) {
				t.Fatalf("got shape %v, want %v", got.shape, want.shape)
			}
			var maxY, maxErr float64
			for i := range want.data {
				maxY = math.Max(maxY, math.Abs(float64(want.data[i])))
				maxErr = math.Max(maxErr, math.Abs(float64(got.data[i]-want.data[i])))
			}
			if tol := 1e-4 * math.Max(1, maxY); maxErr > tol {
				t.Errorf("got max error %.3g against the direct convolution, want <= %.3g (max|y| %.3g)", maxErr, tol, maxY)
			}
			t.Logf("max error %.3g, max|y| %.3g", maxErr, maxY)
		})
	}
}

// BenchmarkWinograd times ResNet's 3×3 stride-1 layer shapes (a prepared
// conv+ReLU under Infer, so that the arena serves the buffers) through the
// direct product and through Winograd, side by side, reporting CPU time per
// pass (cpu-ms/op) and the direct convolution's GFLOP per CPU-second.
func BenchmarkWinograd(b *testing.B) {
	for _, s := range []struct{ n, c, hw int }{
		{1, 64, 56}, {1, 128, 28}, {1, 256, 14}, {1, 512, 7},
		{8, 64, 56}, {8, 128, 28}, {8, 256, 14}, {8, 512, 7},
	} {
		x := RandN(s.n, s.c, s.hw, s.hw)
		m := NewSequential(NewConv2d(NewBuilder(nil), s.c, s.c, 3, Padding(1)), NewReLU(true))
		m.Eval()
		if err := Prepare(m); err != nil {
			b.Fatal(err)
		}
		flop := 2 * float64(s.n*s.c*s.c*9*s.hw*s.hw)
		for _, off := range []bool{true, false} {
			label := "winograd"
			if off {
				label = "direct"
			}
			b.Run(fmt.Sprintf("n%d_c%d_%d/%s", s.n, s.c, s.hw, label), func(b *testing.B) {
				saved, savedMin, savedC := winogradOff, winoMinTiles, winoMinChannels
				winogradOff, winoMinTiles, winoMinChannels = off, 0, 0
				defer func() { winogradOff, winoMinTiles, winoMinChannels = saved, savedMin, savedC }()
				Infer(m, x)
				c0 := cpuTime()
				b.ResetTimer()
				for b.Loop() {
					Infer(m, x)
				}
				cpu := (cpuTime() - c0).Seconds()
				b.ReportMetric(cpu*1e3/float64(b.N), "cpu-ms/op")
				if cpu > 0 {
					b.ReportMetric(flop*float64(b.N)/cpu/1e9, "GFLOP/cpu-s")
				}
			})
		}
	}
}

// TestWinogradPrepared runs a prepared conv-ReLU that takes the Winograd
// path under Infer, against the unprepared forward pass, before and after
// its weights change in place (MarkModified): the transformed weights live
// with the prepared layer, so they must be remade, not reused.
func TestWinogradPrepared(t *testing.T) {
	conv := NewConv2d(NewBuilder(nil), 128, 128, 3, Padding(1))
	m := NewSequential(conv, NewReLU(true))
	m.Eval()
	x := RandN(2, 128, 16, 16)
	g := convGeometry(x, conv.Weight, nil, ConvParams{Stride: [2]int{1, 1}, Padding: [2]int{1, 1}})
	if !useWinograd(&g) {
		t.Fatal("the test's layer does not take the Winograd path")
	}
	if err := Prepare(m); err != nil {
		t.Fatal(err)
	}
	defer Unprepare(m)
	check := func(step string) {
		t.Helper()
		var want *Tensor
		NoGrad(func() { want = m.Forward(x) })
		got := Infer(m, x)
		var maxY, maxErr float64
		for i := range want.data {
			maxY = math.Max(maxY, math.Abs(float64(want.data[i])))
			maxErr = math.Max(maxErr, math.Abs(float64(got.data[i]-want.data[i])))
		}
		if tol := 1e-4 * math.Max(1, maxY); maxErr > tol {
			t.Errorf("%s: got max error %.3g against the unprepared pass, want <= %.3g", step, maxErr, tol)
		}
	}
	check("first pass")
	w := conv.Weight.Data()
	for i := range w {
		w[i] = -2 * w[i]
	}
	MarkModified()
	check("after the weights changed")
}
