package nn

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestColSourceMatchesIm2col checks every panel colSource packs against
// the same block cut from im2col's column matrices (of up to three images
// side by side), over geometries that mix
// kernel sizes, strides, paddings wider than the kernel, dilations, and
// output rows shorter and longer than a panel.
func TestColSourceMatchesIm2col(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 600 {
		kh, kw := 1+rng.IntN(5), 1+rng.IntN(5)
		p := ConvParams{
			Stride:   [2]int{1 + rng.IntN(3), 1 + rng.IntN(3)},
			Padding:  [2]int{rng.IntN(4), rng.IntN(4)},
			Dilation: [2]int{1 + rng.IntN(2), 1 + rng.IntN(2)},
			Groups:   1,
		}
		c, h, w := 1+rng.IntN(4), 1+rng.IntN(12), 1+rng.IntN(12)
		images := 1 + rng.IntN(3)
		x, wt := RandN(images, c, h+kh*2, w+kw*2), RandN(2, c, kh, kw)
		g := convGeometry(x, wt, nil, p)
		// The reference: each image's im2col matrix, side by side.
		cols := images * g.ohw
		col := make([]float32, g.k*cols)
		one := make([]float32, g.k*g.ohw)
		for n := range images {
			im2colRange(&g, x.data[n*g.c*g.h*g.wd:], one, 0, g.cg)
			for r := range g.k {
				copy(col[r*cols+n*g.ohw:], one[r*g.ohw:(r+1)*g.ohw])
			}
		}
		src := &colSource{g: g, x: x.data, imageStride: g.c * g.h * g.wd}
		if g.sw == 2 && rng.IntN(2) == 0 {
			// The same columns from the input laid out by column parity.
			src.g.colsDeint = true
			src.x = deinterleaveCols(x, g.wd).data
		}
		nr := []int{1, 4, 16, 48, 64}[rng.IntN(5)]
		pc, jc := rng.IntN(g.k), rng.IntN(cols)
		kc, nc := 1+rng.IntN(g.k-pc), 1+rng.IntN(cols-jc)
		panels := (nc + nr - 1) / nr
		got := make([]float32, panels*kc*nr)
		for i := range got {
			got[i] = float32(i) // stale data PackB must overwrite
		}
		src.PackB(nr, pc, kc, jc, nc, got)
		want := make([]float32, len(got))
		for q := range panels {
			for r := range kc {
				for j := range nr {
					if cl := jc + q*nr + j; cl < jc+nc {
						want[q*kc*nr+r*nr+j] = col[(pc+r)*cols+cl]
					}
				}
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s, %d images, deinterleaved %v: PackB(nr=%d, pc=%d, kc=%d, jc=%d, nc=%d) differs from im2col", geomString(&g), images, src.g.colsDeint, nr, pc, kc, jc, nc)
		}
	}
}

func geomString(g *convGeom) string {
	return fmt.Sprintf("input %dx%dx%d kernel %dx%d stride %d,%d padding %d,%d dilation %d,%d",
		g.c, g.h, g.wd, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw)
}

// BenchmarkColSource packs every panel of a convolution's column matrix,
// as a product with an 8×48 kernel and 256-row blocks would ask for them,
// for ResNet's stem (7×7 stride 2; as conv2d runs it, from columns laid out
// by parity, and gathering strided columns instead) and 3×3 layers.
func BenchmarkColSource(b *testing.B) {
	for _, c := range []struct {
		name    string
		c, h, k int
		p       ConvParams
	}{
		{"stem7x7s2", 3, 224, 7, ConvParams{Stride: [2]int{2, 2}, Padding: [2]int{3, 3}}},
		{"stem7x7s2_gather", 3, 224, 7, ConvParams{Stride: [2]int{2, 2}, Padding: [2]int{3, 3}}},
		{"layer1_3x3", 64, 56, 3, ConvParams{Padding: [2]int{1, 1}}},
		{"layer4_3x3", 512, 7, 3, ConvParams{Padding: [2]int{1, 1}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			x, w := RandN(1, c.c, c.h, c.h), RandN(1, c.c, c.k, c.k)
			g := convGeometry(x, w, nil, c.p)
			src := &colSource{g: g, x: x.data}
			const nr, kc = 48, 256
			dst := make([]float32, kc*(g.ohw+nr))
			b.SetBytes(int64(4 * g.k * g.ohw))
			deint := g.sw == 2 && !strings.HasSuffix(c.name, "_gather")
			for b.Loop() {
				if deint { // as conv2d does, once per call
					src.x, src.g.colsDeint = deinterleaveCols(x, g.wd).data, true
				}
				for pc := 0; pc < g.k; pc += kc {
					src.PackB(nr, pc, min(kc, g.k-pc), 0, g.ohw, dst)
				}
			}
		})
	}
}

// TestColTSourceMatchesIm2col checks every panel colTSource packs (the
// transpose of the column matrix, for weight gradients) against the
// transposed im2col matrices of up to three images, with the AVX-512
// gather and with the Go loop, over the geometries of
// TestColSourceMatchesIm2col.
func TestColTSourceMatchesIm2col(t *testing.T) {
	defer func(v bool) { coltAVX512 = v }(coltAVX512)
	rng := rand.New(rand.NewPCG(9, 10))
	for it := range 600 {
		kh, kw := 1+rng.IntN(5), 1+rng.IntN(5)
		p := ConvParams{
			Stride:   [2]int{1 + rng.IntN(3), 1 + rng.IntN(3)},
			Padding:  [2]int{rng.IntN(4), rng.IntN(4)},
			Dilation: [2]int{1 + rng.IntN(2), 1 + rng.IntN(2)},
			Groups:   1,
		}
		c, h, w := 1+rng.IntN(4), 1+rng.IntN(12), 1+rng.IntN(12)
		images := 1 + rng.IntN(3)
		x, wt := RandN(images, c, h+kh*2, w+kw*2), RandN(2, c, kh, kw)
		g := convGeometry(x, wt, nil, p)
		rows := images * g.ohw // colᵀ is [rows, g.k]
		colT := make([]float32, rows*g.k)
		one := make([]float32, g.k*g.ohw)
		for n := range images {
			im2colRange(&g, x.data[n*g.c*g.h*g.wd:], one, 0, g.cg)
			for r := range g.k {
				for q := range g.ohw {
					colT[(n*g.ohw+q)*g.k+r] = one[r*g.ohw+q]
				}
			}
		}
		src := &colTSource{g: g, x: x.data, imageStride: g.c * g.h * g.wd}
		nr := []int{1, 4, 16, 32, 48, 64}[rng.IntN(6)]
		pc, jc := rng.IntN(rows), rng.IntN(g.k)
		kc, nc := 1+rng.IntN(rows-pc), 1+rng.IntN(g.k-jc)
		panels := (nc + nr - 1) / nr
		want := make([]float32, panels*kc*nr)
		for q := range panels {
			for r := range kc {
				for j := range nr {
					if cl := jc + q*nr + j; cl < jc+nc {
						want[q*kc*nr+r*nr+j] = colT[(pc+r)*g.k+cl]
					}
				}
			}
		}
		coltAVX512 = it%2 == 0 && colTGatherAvailable
		got := make([]float32, len(want))
		for i := range got {
			got[i] = float32(i) // stale data PackB must overwrite
		}
		src.PackB(nr, pc, kc, jc, nc, got)
		if !slices.Equal(got, want) {
			t.Fatalf("%s, %d images, gather %v: PackB(nr=%d, pc=%d, kc=%d, jc=%d, nc=%d) differs from im2col's transpose", geomString(&g), images, coltAVX512, nr, pc, kc, jc, nc)
		}
	}
}

// BenchmarkColTSource packs the whole transposed column matrix of a weight
// gradient (batch 8), as the product dY·colᵀ asks for it (256-row blocks,
// 48-column panels), with the AVX-512 gather ("gather") and the Go loop.
func BenchmarkColTSource(b *testing.B) {
	defer func(v bool) { coltAVX512 = v }(coltAVX512)
	for _, c := range []struct {
		name    string
		c, h, k int
		p       ConvParams
	}{
		{"stem7x7s2", 3, 224, 7, ConvParams{Stride: [2]int{2, 2}, Padding: [2]int{3, 3}}},
		{"layer1_3x3", 64, 56, 3, ConvParams{Padding: [2]int{1, 1}}},
		{"layer3_3x3", 256, 14, 3, ConvParams{Padding: [2]int{1, 1}}},
	} {
		for _, gather := range []bool{false, true} {
			if gather && !colTGatherAvailable {
				continue
			}
			name := c.name
			if gather {
				name += "_gather"
			}
			b.Run(name, func(b *testing.B) {
				coltAVX512 = gather
				x, w := RandN(8, c.c, c.h, c.h), RandN(1, c.c, c.k, c.k)
				g := convGeometry(x, w, nil, c.p)
				src := &colTSource{g: g, x: x.data, imageStride: g.c * g.h * g.wd}
				const nr, kc = 48, 256
				rows := 8 * g.ohw
				dst := make([]float32, kc*(g.k+nr))
				b.SetBytes(int64(4 * g.k * rows))
				for b.Loop() {
					for pc := 0; pc < rows; pc += kc {
						src.PackB(nr, pc, min(kc, rows-pc), 0, g.k, dst)
					}
				}
			})
		}
	}
}
