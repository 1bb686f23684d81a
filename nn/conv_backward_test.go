package nn

import (
	"math"
	"testing"

	"github.com/ckptkit/ckpt/nn/gemm"
)

// conv2dBackwardRef is the backward pass convolutions had before the
// packed one: im2col, a product and col2im per image and group, on one
// goroutine. TestConvBackwardPacked holds the packed pass to it.
func conv2dBackwardRef(g *convGeom, x, w, b *Tensor, gout []float32) [][]float32 {
	var gx, gw, gb []float32
	hw := g.h * g.wd
	if b != nil && b.requiresGrad {
		acc := make([]float64, g.o)
		for n := range g.n {
			for o := range g.o {
				s := 0.0
				for _, v := range gout[(n*g.o+o)*g.ohw : (n*g.o+o+1)*g.ohw] {
					s += float64(v)
				}
				acc[o] += s
			}
		}
		gb = make([]float32, g.o)
		for i, v := range acc {
			gb[i] = float32(v)
		}
	}
	if x.requiresGrad {
		gx = make([]float32, len(x.data))
	}
	if w.requiresGrad {
		gw = make([]float32, len(w.data))
	}
	if gx == nil && gw == nil {
		return [][]float32{nil, nil, gb}
	}
	if g.depthwise() {
		for n := range g.n {
			for c := range g.c {
				nc := n*g.c + c
				xc := x.data[nc*hw : (nc+1)*hw]
				go_ := gout[nc*g.ohw : (nc+1)*g.ohw]
				for ki := range g.kh {
					for kj := range g.kw {
						wi := c*g.kh*g.kw + ki*g.kw + kj
						wv := w.data[wi]
						off := kj*g.dw - g.pw
						lo, hi := validRange(off, g.sw, g.wd, g.ow)
						s := 0.0
						for oh := range g.oh {
							ih := oh*g.sh - g.ph + ki*g.dh
							if ih < 0 || ih >= g.h {
								continue
							}
							for ow := lo; ow < hi; ow++ {
								gv := go_[oh*g.ow+ow]
								xi := ih*g.wd + ow*g.sw + off
								s += float64(gv * xc[xi])
								if gx != nil {
									gx[nc*hw+xi] += gv * wv
								}
							}
						}
						if gw != nil {
							gw[wi] += float32(s)
						}
					}
				}
			}
		}
		return [][]float32{gx, gw, gb}
	}
	col := make([]float32, g.k*g.ohw)
	for n := range g.n {
		for gr := range g.groups {
			xin := x.data[(n*g.c+gr*g.cg)*hw:]
			gsrc := gout[(n*g.o+gr*g.og)*g.ohw:]
			wg := w.data[gr*g.og*g.k:]
			if gw != nil {
				src := xin
				if !g.pointwise() {
					im2col(g, xin, col)
					src = col
				}
				// dW_g += dY_g · colᵀ
				gemm.Sgemm(false, true, g.og, g.k, g.ohw, 1, gsrc, g.ohw, src, g.ohw, 1, gw[gr*g.og*g.k:], g.k)
			}
			if gx != nil {
				dx := gx[(n*g.c+gr*g.cg)*hw:]
				if g.pointwise() {
					gemm.Sgemm(true, false, g.k, g.ohw, g.og, 1, wg, g.k, gsrc, g.ohw, 1, dx, g.ohw)
				} else {
					// dcol = W_gᵀ · dY_g, then scatter back.
					gemm.Sgemm(true, false, g.k, g.ohw, g.og, 1, wg, g.k, gsrc, g.ohw, 0, col, g.ohw)
					col2im(g, col, dx)
				}
			}
		}
	}
	return [][]float32{gx, gw, gb}
}

// TestConvBackwardPacked compares conv2dBackward with the im2col reference
// over geometries that take each of its paths (pointwise, stride 1 through
// the transposed convolution, strided and dilated through col2im, groups,
// depthwise at strides 1, 2 and 3, odd widths, dilation) at batch 1 and 3. Both sum the same products in different
// orders, in float32: with |values| <= 2 and at most 3·4·9·25 = 2700 terms
// of magnitude <= 4 per sum, the difference is a few ulps of the sum's
// magnitude, so 1e-5·(1 + max|g|) relative to the largest gradient leaves
// room while a wrong index is off by O(1).
func TestConvBackwardPacked(t *testing.T) {
	cases := []struct {
		name       string
		c, o, k, h int
		p          ConvParams
	}{
		{"pointwise", 6, 5, 1, 7, ConvParams{}},
		{"pointwise_s2", 6, 5, 1, 7, ConvParams{Stride: [2]int{2, 2}}},
		{"3x3_p1", 4, 7, 3, 9, ConvParams{Padding: [2]int{1, 1}}},
		{"3x3_p0", 4, 7, 3, 9, ConvParams{}},
		{"5x5_p2", 3, 4, 5, 11, ConvParams{Padding: [2]int{2, 2}}},
		{"3x3_s2", 4, 6, 3, 10, ConvParams{Stride: [2]int{2, 2}, Padding: [2]int{1, 1}}},
		{"7x7_s2", 3, 4, 7, 15, ConvParams{Stride: [2]int{2, 2}, Padding: [2]int{3, 3}}},
		{"3x3_d2", 4, 5, 3, 11, ConvParams{Dilation: [2]int{2, 2}, Padding: [2]int{2, 2}}},
		{"groups2", 4, 6, 3, 8, ConvParams{Padding: [2]int{1, 1}, Groups: 2}},
		{"depthwise", 5, 5, 3, 8, ConvParams{Padding: [2]int{1, 1}, Groups: 5}},
		{"depthwise_s2", 5, 5, 3, 9, ConvParams{Stride: [2]int{2, 2}, Padding: [2]int{1, 1}, Groups: 5}},
		{"depthwise_k5_s2_odd", 6, 6, 5, 10, ConvParams{Stride: [2]int{2, 2}, Padding: [2]int{2, 2}, Groups: 6}},
		{"depthwise_s2_p0", 5, 5, 3, 9, ConvParams{Stride: [2]int{2, 2}, Groups: 5}},
		{"depthwise_k7", 4, 4, 7, 12, ConvParams{Padding: [2]int{3, 3}, Groups: 4}},
		{"depthwise_k3_p0", 4, 4, 3, 8, ConvParams{Groups: 4}},
		{"depthwise_d2", 4, 4, 3, 10, ConvParams{Dilation: [2]int{2, 2}, Padding: [2]int{2, 2}, Groups: 4}},
		{"depthwise_s3", 4, 4, 3, 10, ConvParams{Stride: [2]int{3, 3}, Padding: [2]int{1, 1}, Groups: 4}},
	}
	for _, c := range cases {
		for _, n := range []int{1, 3} {
			groups := max(c.p.Groups, 1)
			x := randT(1, nil, n, c.c, c.h, c.h+1).SetRequiresGrad(true)
			w := randT(2, nil, c.o, c.c/groups, c.k, c.k).SetRequiresGrad(true)
			b := randT(3, nil, c.o).SetRequiresGrad(true)
			g := convGeometry(x, w, b, c.p)
			gout := randT(4, nil, n, c.o, g.oh, g.ow).data
			got := conv2dBackward(&g, x, w, b, gout)
			want := conv2dBackwardRef(&g, x, w, b, gout)
			for i, name := range []string{"input", "weight", "bias"} {
				scale := 1.0
				for _, v := range want[i] {
					scale = math.Max(scale, math.Abs(float64(v)))
				}
				if len(got[i]) != len(want[i]) {
					t.Fatalf("%s n=%d %s: got %d values, want %d", c.name, n, name, len(got[i]), len(want[i]))
				}
				for j := range want[i] {
					if d := math.Abs(float64(got[i][j] - want[i][j])); d > 1e-5*scale {
						t.Errorf("%s n=%d %s gradient [%d]: got %v, want %v", c.name, n, name, j, got[i][j], want[i][j])
						break
					}
				}
			}
		}
	}
}
