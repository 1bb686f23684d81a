package nn

import (
	"fmt"
	"math"
	"testing"
)

// maxPoolValuesOld is the inference max pooling this package had before
// maxPoolValues (one window at a time, Go's max builtin), kept to be
// benchmarked against.
func maxPoolValuesOld(gp *poolGeom, x, out []float32) {
	work := len(out) * gp.KernelSize[0] * gp.KernelSize[1]
	if work < parallelMin {
		maxPoolRangeOld(gp, x, out, 0, gp.n*gp.c)
		return
	}
	g := *gp
	parallelFor(g.n*g.c, work, func(lo, hi int) { maxPoolRangeOld(&g, x, out, lo, hi) })
}

func maxPoolRangeOld(g *poolGeom, x, out []float32, lo, hi int) {
	hw, ohw := g.h*g.w, g.oh*g.ow
	kh, kw := g.KernelSize[0], g.KernelSize[1]
	sh, sw, ph, pw, dh, dw := g.Stride[0], g.Stride[1], g.Padding[0], g.Padding[1], g.Dilation[0], g.Dilation[1]
	ninf := float32(math.Inf(-1))
	for nc := lo; nc < hi; nc++ {
		xc := x[nc*hw : (nc+1)*hw]
		oc := out[nc*ohw : (nc+1)*ohw]
		for oh := range g.oh {
			h0 := oh*sh - ph
			orow := oc[oh*g.ow : (oh+1)*g.ow]
			for ow := range orow {
				w0 := ow*sw - pw
				best := ninf
				if w0 >= 0 && w0+(kw-1)*dw < g.w {
					for ki := range kh {
						ih := h0 + ki*dh
						if ih < 0 || ih >= g.h {
							continue
						}
						row := xc[ih*g.w+w0 : ih*g.w+w0+(kw-1)*dw+1]
						for kj := 0; kj < len(row); kj += dw {
							best = max(best, row[kj])
						}
					}
				} else {
					for ki := range kh {
						ih := h0 + ki*dh
						if ih < 0 || ih >= g.h {
							continue
						}
						for kj := range kw {
							if iw := w0 + kj*dw; iw >= 0 && iw < g.w {
								best = max(best, xc[ih*g.w+iw])
							}
						}
					}
				}
				orow[ow] = best
			}
		}
	}
}

// BenchmarkMaxPool2d compares the inference max pooling with the one it
// replaced, on the shapes of torchvision's models: resnet's stem (batch 1
// and 8), vgg's 2×2 pools, squeezenet's ceil_mode pool, googlenet's 3×3
// stride-1 branch pool.
func BenchmarkMaxPool2d(b *testing.B) {
	for _, c := range []struct {
		name  string
		shape []int
		p     PoolParams
	}{
		{"1x64x112x112_k3s2p1", []int{1, 64, 112, 112}, PoolParams{KernelSize: [2]int{3, 3}, Stride: [2]int{2, 2}, Padding: [2]int{1, 1}}},
		{"8x64x112x112_k3s2p1", []int{8, 64, 112, 112}, PoolParams{KernelSize: [2]int{3, 3}, Stride: [2]int{2, 2}, Padding: [2]int{1, 1}}},
		{"1x512x14x14_k2s2", []int{1, 512, 14, 14}, PoolParams{KernelSize: [2]int{2, 2}, Stride: [2]int{2, 2}}},
		{"1x128x112x112_k2s2", []int{1, 128, 112, 112}, PoolParams{KernelSize: [2]int{2, 2}, Stride: [2]int{2, 2}}},
		{"1x96x111x111_k3s2ceil", []int{1, 96, 111, 111}, PoolParams{KernelSize: [2]int{3, 3}, Stride: [2]int{2, 2}, CeilMode: true}},
		{"1x192x28x28_k3s1p1ceil", []int{1, 192, 28, 28}, PoolParams{KernelSize: [2]int{3, 3}, Stride: [2]int{1, 1}, Padding: [2]int{1, 1}, CeilMode: true}},
	} {
		x := RandN(c.shape...)
		g := poolGeometry("MaxPool2d", x, c.p)
		out := make([]float32, g.n*g.c*g.oh*g.ow)
		for _, v := range []struct {
			name string
			f    func(*poolGeom, []float32, []float32)
		}{{"old", maxPoolValuesOld}, {"new", maxPoolValues}} {
			b.Run(fmt.Sprintf("%s/%s", c.name, v.name), func(b *testing.B) {
				b.SetBytes(int64(4 * (len(x.data) + len(out))))
				for b.Loop() {
					v.f(&g, x.data, out)
				}
			})
		}
	}
}

// BenchmarkAvgPool2d compares the inference average pooling with the
// window-at-a-time loop it replaced (now avgPoolWindows): densenet's
// transitions (2×2), inception's 3×3 stride-1 branch pools.
func BenchmarkAvgPool2d(b *testing.B) {
	for _, c := range []struct {
		name  string
		shape []int
		p     PoolParams
	}{
		{"1x128x56x56_k2s2", []int{1, 128, 56, 56}, PoolParams{KernelSize: [2]int{2, 2}, Stride: [2]int{2, 2}}},
		{"1x192x35x35_k3s1p1", []int{1, 192, 35, 35}, PoolParams{KernelSize: [2]int{3, 3}, Stride: [2]int{1, 1}, Padding: [2]int{1, 1}}},
		{"1x768x17x17_k3s1p1", []int{1, 768, 17, 17}, PoolParams{KernelSize: [2]int{3, 3}, Stride: [2]int{1, 1}, Padding: [2]int{1, 1}}},
	} {
		x := RandN(c.shape...)
		c.p.Dilation = [2]int{1, 1}
		g := poolGeometry("AvgPool2d", x, c.p)
		out := make([]float32, g.n*g.c*g.oh*g.ow)
		for _, v := range []struct {
			name string
			f    func(*poolGeom, []float32, []float32, bool)
		}{{"old", avgPoolWindows}, {"new", avgPoolValues}} {
			b.Run(fmt.Sprintf("%s/%s", c.name, v.name), func(b *testing.B) {
				b.SetBytes(int64(4 * (len(x.data) + len(out))))
				for b.Loop() {
					v.f(&g, x.data, out, true)
				}
			})
		}
	}
}

// BenchmarkAdaptiveAvgPool2d compares pooling to 1×1 (the end of every
// resnet and efficientnet) with the general window loop.
func BenchmarkAdaptiveAvgPool2d(b *testing.B) {
	for _, shape := range [][]int{{1, 512, 7, 7}, {8, 2048, 7, 7}} {
		x := RandN(shape...)
		n, c, h, w := shape[0], shape[1], shape[2], shape[3]
		out := make([]float32, n*c)
		name := fmt.Sprintf("%dx%dx%dx%d", n, c, h, w)
		b.Run(name+"/old", func(b *testing.B) {
			for b.Loop() {
				adaptivePoolWindows(x.data, out, n*c, h, w, 1, 1, false, nil)
			}
		})
		b.Run(name+"/new", func(b *testing.B) {
			for b.Loop() {
				planeMeans(x.data, out, h*w)
			}
		})
	}
}

// BenchmarkMaxPoolIndexed compares the training max pooling (values and
// argmax indices) of ResNet's stem at batch 8: the running comparison
// (maxPoolIndexed, "old") and the two passes (maxPoolWithIndices, "new").
func BenchmarkMaxPoolIndexed(b *testing.B) {
	x := RandN(8, 64, 112, 112)
	g := poolGeometry("MaxPool2d", x, PoolParams{KernelSize: [2]int{3, 3}, Stride: [2]int{2, 2}, Padding: [2]int{1, 1}})
	out, idx := make([]float32, g.n*g.c*g.oh*g.ow), make([]int32, g.n*g.c*g.oh*g.ow)
	for _, v := range []struct {
		name string
		f    func(*poolGeom, []float32, []float32, []int32)
	}{{"old", maxPoolIndexed}, {"new", maxPoolWithIndices}} {
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				v.f(&g, x.data, out, idx)
			}
		})
	}
}
