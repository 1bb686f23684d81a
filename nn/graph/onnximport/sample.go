package onnximport

import (
	"fmt"
	"math"
	"sort"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
)

// GridSample (torch.nn.functional.grid_sample's semantics, with a backward
// to the input and the grid for float32) and NonMaxSuppression.

func init() {
	register(buildGridSample, "GridSample")
	register(buildNMS, "NonMaxSuppression")
}

// reflectCoord is torch's reflect_coordinates over [low/2, high/2].
func reflectCoord(in, twiceLow, twiceHigh float64) float64 {
	if twiceLow == twiceHigh {
		return 0
	}
	lo := twiceLow / 2
	span := (twiceHigh - twiceLow) / 2
	in = math.Abs(in - lo)
	extra := math.Mod(in, span)
	if int(math.Floor(in/span))%2 == 0 {
		return extra + lo
	}
	return span - extra + lo
}

func buildGridSample(c *nodeCtx) (graph.Kernel, error) {
	mode := c.str("mode", "bilinear")
	pad := c.str("padding_mode", "zeros")
	align := c.int("align_corners", 0) != 0
	switch mode {
	case "bilinear", "nearest", "bicubic":
	default:
		return nil, c.unsupported("mode %q", mode)
	}
	switch pad {
	case "zeros", "border", "reflection":
	default:
		return nil, c.unsupported("padding_mode %q", pad)
	}
	limit := c.opts.MaxElements
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x, grid := in[0], in[1]
		if x.Rank() != 4 || grid.Rank() != 4 || grid.Shape()[0] != x.Shape()[0] || grid.Shape()[3] != 2 {
			return nil, fmt.Errorf("input %v and grid %v (only 2-D sampling is supported)", x.Shape(), grid.Shape())
		}
		n, ch, h, w := x.Shape()[0], x.Shape()[1], x.Shape()[2], x.Shape()[3]
		ho, wo := grid.Shape()[1], grid.Shape()[2]
		if err := checkElems(numelChecked([]int{n, ch, ho, wo}, limit), limit); err != nil {
			return nil, err
		}
		xf, gf := x.Float64s(), grid.Float64s()
		unnorm := func(v float64, size int) float64 {
			if align {
				return (v + 1) / 2 * float64(size-1)
			}
			return ((v+1)*float64(size) - 1) / 2
		}
		// padCoord maps a source coordinate into the image by the padding
		// mode and returns its derivative too (0 where clipped).
		padCoord := func(v float64, size int) (float64, float64) {
			clipD := func(v, d float64) (float64, float64) {
				if v <= 0 {
					return 0, 0
				}
				if v >= float64(size-1) {
					return float64(size - 1), 0
				}
				return v, d
			}
			switch pad {
			case "border":
				return clipD(v, 1)
			case "reflection":
				lo2, hi2 := -1.0, 2*float64(size)-1
				if align {
					lo2, hi2 = 0, 2*float64(size-1)
				}
				if lo2 == hi2 {
					return 0, 0
				}
				lo, span := lo2/2, (hi2-lo2)/2
				d := 1.0
				if v < lo {
					d = -1
				}
				in := math.Abs(v - lo)
				extra := math.Mod(in, span)
				if int(math.Floor(in/span))%2 == 0 {
					return clipD(extra+lo, d)
				}
				return clipD(span-extra+lo, -d)
			}
			return v, 1
		}
		cubic := func(t float64) ([4]float64, [4]float64) {
			a := -0.75
			c1 := func(x float64) float64 { return ((a+2)*x-(a+3))*x*x + 1 }
			c2 := func(x float64) float64 { return ((a*x-5*a)*x+8*a)*x - 4*a }
			d1 := func(x float64) float64 { return (3*(a+2)*x - 2*(a+3)) * x }
			d2 := func(x float64) float64 { return (3*a*x-10*a)*x + 8*a }
			return [4]float64{c2(t + 1), c1(t), c1(1 - t), c2(2 - t)}, [4]float64{d2(t + 1), d1(t), -d1(1 - t), -d2(2 - t)}
		}
		// point samples plane at (ix, iy) (unnormalized coordinates); tap,
		// when not nil, receives each source element's index and weight.
		// It returns the value and its derivatives by ix and iy.
		point := func(plane []float64, ix, iy float64, tap func(k int, wt float64)) (v, dx, dy float64) {
			get := func(yy, xx int, wt float64) float64 {
				if yy < 0 || yy >= h || xx < 0 || xx >= w {
					return 0
				}
				if tap != nil {
					tap(yy*w+xx, wt)
				}
				return plane[yy*w+xx]
			}
			switch mode {
			case "nearest":
				px, _ := padCoord(ix, w)
				py, _ := padCoord(iy, h)
				return get(int(math.RoundToEven(py)), int(math.RoundToEven(px)), 1), 0, 0
			case "bilinear":
				px, dpx := padCoord(ix, w)
				py, dpy := padCoord(iy, h)
				x0, y0 := math.Floor(px), math.Floor(py)
				tx, ty := px-x0, py-y0
				xi, yi := int(x0), int(y0)
				v00, v01 := get(yi, xi, (1-tx)*(1-ty)), get(yi, xi+1, tx*(1-ty))
				v10, v11 := get(yi+1, xi, (1-tx)*ty), get(yi+1, xi+1, tx*ty)
				v = v00*(1-tx)*(1-ty) + v01*tx*(1-ty) + v10*(1-tx)*ty + v11*tx*ty
				dx = ((v01-v00)*(1-ty) + (v11-v10)*ty) * dpx
				dy = ((v10-v00)*(1-tx) + (v11-v01)*tx) * dpy
				return v, dx, dy
			}
			x0, y0 := math.Floor(ix), math.Floor(iy)
			wx, dwx := cubic(ix - x0)
			wy, dwy := cubic(iy - y0)
			for p := 0; p < 4; p++ {
				for q := 0; q < 4; q++ {
					yy, _ := padCoord(y0-1+float64(p), h)
					xx, _ := padCoord(x0-1+float64(q), w)
					e := get(int(yy), int(xx), wy[p]*wx[q])
					v += wy[p] * wx[q] * e
					dx += wy[p] * dwx[q] * e
					dy += dwy[p] * wx[q] * e
				}
			}
			return v, dx, dy
		}
		// d(ix)/d(grid x) and d(iy)/d(grid y).
		sx, sy := float64(w)/2, float64(h)/2
		if align {
			sx, sy = float64(w-1)/2, float64(h-1)/2
		}
		y := make([]float64, n*ch*ho*wo)
		for b := 0; b < n; b++ {
			for i := 0; i < ho; i++ {
				for j := 0; j < wo; j++ {
					gx := gf[((b*ho+i)*wo+j)*2]
					gy := gf[((b*ho+i)*wo+j)*2+1]
					ix, iy := unnorm(gx, w), unnorm(gy, h)
					for cc := 0; cc < ch; cc++ {
						v, _, _ := point(xf[(b*ch+cc)*h*w:(b*ch+cc+1)*h*w], ix, iy, nil)
						y[((b*ch+cc)*ho+i)*wo+j] = v
					}
				}
			}
		}
		tx, tg := x.Tensor(), grid.Cast(graph.Float32).Tensor()
		if tx == nil || grid.DType() != graph.Float32 {
			return one(graph.Make(x.DType(), []int{n, ch, ho, wo}, y)), nil
		}
		out := nn.Record(nn.New(f64sToF32(y), n, ch, ho, wo), "GridSample", []*nn.Tensor{tx, tg}, func(g []float32) [][]float32 {
			gxs, ggrid := make([]float32, len(xf)), make([]float32, len(gf))
			for b := 0; b < n; b++ {
				for i := 0; i < ho; i++ {
					for j := 0; j < wo; j++ {
						gp := ((b*ho+i)*wo + j) * 2
						ix, iy := unnorm(gf[gp], w), unnorm(gf[gp+1], h)
						for cc := 0; cc < ch; cc++ {
							base := (b*ch + cc) * h * w
							gv := float64(g[((b*ch+cc)*ho+i)*wo+j])
							_, dx, dy := point(xf[base:base+h*w], ix, iy, func(k int, wt float64) { gxs[base+k] += float32(gv * wt) })
							ggrid[gp] += float32(gv * dx * sx)
							ggrid[gp+1] += float32(gv * dy * sy)
						}
					}
				}
			}
			return [][]float32{gxs, ggrid}
		})
		return one(graph.FromTensor(out)), nil
	}, nil
}

func buildNMS(c *nodeCtx) (graph.Kernel, error) {
	center := c.int("center_point_box", 0) != 0
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		boxes, scores := in[0], in[1]
		if boxes.Rank() != 3 || scores.Rank() != 3 || boxes.Shape()[2] != 4 || boxes.Shape()[0] != scores.Shape()[0] || boxes.Shape()[1] != scores.Shape()[2] {
			return nil, fmt.Errorf("boxes %v and scores %v", boxes.Shape(), scores.Shape())
		}
		maxOut := int64(0)
		if v := opt(in, 2); v != nil && v.Numel() > 0 {
			maxOut = v.Int64s()[0]
		}
		iouTh, scoreTh := 0.0, math.Inf(-1)
		if v := opt(in, 3); v != nil && v.Numel() > 0 {
			iouTh = v.Float64s()[0]
		}
		if v := opt(in, 4); v != nil && v.Numel() > 0 {
			scoreTh = v.Float64s()[0]
		}
		nb, nc, nbox := scores.Shape()[0], scores.Shape()[1], scores.Shape()[2]
		bf, sf := boxes.Float64s(), scores.Float64s()
		corners := func(b, i int) (y1, x1, y2, x2 float64) {
			p := bf[(b*nbox+i)*4:]
			if center {
				xc, yc, w, h := p[0], p[1], p[2], p[3]
				return yc - h/2, xc - w/2, yc + h/2, xc + w/2
			}
			return math.Min(p[0], p[2]), math.Min(p[1], p[3]), math.Max(p[0], p[2]), math.Max(p[1], p[3])
		}
		iou := func(b, i, j int) float64 {
			ay1, ax1, ay2, ax2 := corners(b, i)
			by1, bx1, by2, bx2 := corners(b, j)
			ih := math.Max(0, math.Min(ay2, by2)-math.Max(ay1, by1))
			iw := math.Max(0, math.Min(ax2, bx2)-math.Max(ax1, bx1))
			inter := ih * iw
			union := (ay2-ay1)*(ax2-ax1) + (by2-by1)*(bx2-bx1) - inter
			if union <= 0 {
				return 0
			}
			return inter / union
		}
		var sel []int64
		for b := 0; b < nb; b++ {
			for cl := 0; cl < nc; cl++ {
				var cand []int
				for i := 0; i < nbox; i++ {
					if sf[(b*nc+cl)*nbox+i] > scoreTh {
						cand = append(cand, i)
					}
				}
				sort.SliceStable(cand, func(p, q int) bool { return sf[(b*nc+cl)*nbox+cand[p]] > sf[(b*nc+cl)*nbox+cand[q]] })
				var kept []int
				for _, i := range cand {
					if int64(len(kept)) >= maxOut {
						break
					}
					ok := true
					for _, k := range kept {
						if iou(b, k, i) > iouTh {
							ok = false
							break
						}
					}
					if ok {
						kept = append(kept, i)
						sel = append(sel, int64(b), int64(cl), int64(i))
					}
				}
			}
		}
		return one(graph.FromInt64s(graph.Int64, []int{len(sel) / 3, 3}, sel)), nil
	}, nil
}

func init() { register(buildRoiAlign, "RoiAlign") }

// buildRoiAlign is RoiAlign in avg mode (torchvision's roi_align).
func buildRoiAlign(c *nodeCtx) (graph.Kernel, error) {
	mode := c.str("mode", "avg")
	if mode != "avg" {
		return nil, c.unsupported("mode %q", mode)
	}
	oh, ow := int(c.int("output_height", 1)), int(c.int("output_width", 1))
	ratio := int(c.int("sampling_ratio", 0))
	scale := float64(c.float("spatial_scale", 1))
	halfPixel := c.opset >= 16 && c.str("coordinate_transformation_mode", "half_pixel") == "half_pixel"
	limit := c.opts.MaxElements
	if oh <= 0 || ow <= 0 || oh > limit || ow > limit || ratio < 0 || ratio > 1<<10 {
		return nil, c.errorf("output %dx%d, sampling_ratio %d", oh, ow, ratio)
	}
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x, rois, idx := in[0], in[1], in[2]
		if x.Rank() != 4 || rois.Rank() != 2 || rois.Shape()[1] != 4 || idx.Numel() != rois.Shape()[0] {
			return nil, fmt.Errorf("input %v, rois %v and batch indices %v", x.Shape(), rois.Shape(), idx.Shape())
		}
		n, ch, h, w := x.Shape()[0], x.Shape()[1], x.Shape()[2], x.Shape()[3]
		nr := rois.Shape()[0]
		if err := checkElems(numelChecked([]int{nr, ch, oh, ow}, limit), limit); err != nil {
			return nil, err
		}
		xf, rf, bi := x.Float64s(), rois.Float64s(), idx.Int64s()
		// bilinear samples plane at (y, xx); tap, when not nil, receives
		// each source element's index and weight (the backward's scatter).
		bilinear := func(plane []float64, y, xx float64, tap func(k int, wt float64)) float64 {
			if y < -1 || y > float64(h) || xx < -1 || xx > float64(w) {
				return 0
			}
			y, xx = math.Max(y, 0), math.Max(xx, 0)
			yl, xl := int(y), int(xx)
			yh, xh := yl+1, xl+1
			if yl >= h-1 {
				yl, yh, y = h-1, h-1, float64(h-1)
			}
			if xl >= w-1 {
				xl, xh, xx = w-1, w-1, float64(w-1)
			}
			ly, lx := y-float64(yl), xx-float64(xl)
			hy, hx := 1-ly, 1-lx
			if tap != nil {
				tap(yl*w+xl, hy*hx)
				tap(yl*w+xh, hy*lx)
				tap(yh*w+xl, ly*hx)
				tap(yh*w+xh, ly*lx)
			}
			return hy*hx*plane[yl*w+xl] + hy*lx*plane[yl*w+xh] + ly*hx*plane[yh*w+xl] + ly*lx*plane[yh*w+xh]
		}
		off := 0.0
		if halfPixel {
			off = 0.5
		}
		for r := 0; r < nr; r++ {
			if b := int(bi[r]); b < 0 || b >= n {
				return nil, fmt.Errorf("batch index %d out of range", b)
			}
		}
		// pool computes every output element; with g it instead adds each
		// one's gradient g[...] times its taps' weights into gx.
		pool := func(y []float64, g []float32, gx []float32) {
			for r := 0; r < nr; r++ {
				b := int(bi[r])
				x1, y1 := rf[r*4]*scale-off, rf[r*4+1]*scale-off
				x2, y2 := rf[r*4+2]*scale-off, rf[r*4+3]*scale-off
				rw, rh := x2-x1, y2-y1
				if !halfPixel {
					rw, rh = math.Max(rw, 1), math.Max(rh, 1)
				}
				bh, bw := rh/float64(oh), rw/float64(ow)
				sh, sw := ratio, ratio
				if ratio == 0 {
					sh, sw = int(math.Ceil(rh/float64(oh))), int(math.Ceil(rw/float64(ow)))
				}
				if sh <= 0 || sw <= 0 || sh > 1<<10 || sw > 1<<10 {
					continue
				}
				cnt := float64(sh * sw)
				for cc := 0; cc < ch; cc++ {
					base := (b*ch + cc) * h * w
					plane := xf[base : base+h*w]
					for ph := 0; ph < oh; ph++ {
						for pw := 0; pw < ow; pw++ {
							o := ((r*ch+cc)*oh+ph)*ow + pw
							var tap func(k int, wt float64)
							if g != nil {
								gv := float64(g[o]) / cnt
								tap = func(k int, wt float64) { gx[base+k] += float32(gv * wt) }
							}
							s := 0.0
							for iy := 0; iy < sh; iy++ {
								yy := y1 + float64(ph)*bh + (float64(iy)+0.5)*bh/float64(sh)
								for ix := 0; ix < sw; ix++ {
									xx := x1 + float64(pw)*bw + (float64(ix)+0.5)*bw/float64(sw)
									s += bilinear(plane, yy, xx, tap)
								}
							}
							if y != nil {
								y[o] = s / cnt
							}
						}
					}
				}
			}
		}
		y := make([]float64, nr*ch*oh*ow)
		pool(y, nil, nil)
		if t := x.Tensor(); t != nil {
			// The gradient reaches the input (as torchvision's roi_align's
			// backward), not the boxes.
			out := nn.Record(nn.New(f64sToF32(y), nr, ch, oh, ow), "RoiAlign", []*nn.Tensor{t}, func(g []float32) [][]float32 {
				gx := make([]float32, len(xf))
				pool(nil, g, gx)
				return [][]float32{gx}
			})
			return one(graph.FromTensor(out)), nil
		}
		return one(graph.Make(x.DType(), []int{nr, ch, oh, ow}, y)), nil
	}, nil
}

func init() { register(buildDFT, "DFT") }

// buildDFT is the discrete Fourier transform along one axis (direct
// O(n²) sums in float64); the last dimension holds real, or real and
// imaginary, components.
func buildDFT(c *nodeCtx) (graph.Kernel, error) {
	axis := c.int("axis", 1)
	inverse, onesided := c.int("inverse", 0) != 0, c.int("onesided", 0) != 0
	limit := c.opts.MaxElements
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		r := x.Rank()
		if r < 2 || (x.Shape()[r-1] != 1 && x.Shape()[r-1] != 2) {
			return nil, fmt.Errorf("input %v: the last dimension must be 1 (real) or 2 (complex)", x.Shape())
		}
		a, err := normAxis(axis, r-1)
		if err != nil {
			return nil, err
		}
		s := x.Shape()
		n := s[a]
		length := n
		if v := opt(in, 1); v != nil && v.Numel() > 0 {
			length = int(v.Int64s()[0])
		}
		if length <= 0 || length > limit {
			return nil, fmt.Errorf("dft_length %d", length)
		}
		nout := length
		if onesided {
			nout = length/2 + 1
		}
		outer, inner, comp := numel(s[:a]), numel(s[a+1:r-1]), s[r-1]
		shape := append(append(append([]int{}, s[:a]...), nout), s[a+1:r-1]...)
		shape = append(shape, 2)
		if err := checkElems(numelChecked(shape, limit), limit); err != nil {
			return nil, err
		}
		if numelChecked([]int{outer, inner, nout, length}, 16*limit) > 16*limit {
			return nil, checkElems(limit+1, limit)
		}
		xf := x.Float64s()
		y := make([]float64, numel(shape))
		sign := -1.0
		if inverse {
			sign = 1
		}
		for o := 0; o < outer; o++ {
			for i := 0; i < inner; i++ {
				for k := 0; k < nout; k++ {
					re, im := 0.0, 0.0
					for t := 0; t < min(n, length); t++ {
						p := ((o*n+t)*inner + i) * comp
						xr, xi := xf[p], 0.0
						if comp == 2 {
							xi = xf[p+1]
						}
						ang := sign * 2 * math.Pi * float64(k) * float64(t) / float64(length)
						cs, sn := math.Cos(ang), math.Sin(ang)
						re += xr*cs - xi*sn
						im += xr*sn + xi*cs
					}
					if inverse {
						re, im = re/float64(length), im/float64(length)
					}
					q := ((o*nout+k)*inner + i) * 2
					y[q], y[q+1] = re, im
				}
			}
		}
		out := graph.Make(x.DType(), shape, y)
		if t := x.Tensor(); t != nil {
			scale := 1.0
			if inverse {
				scale = 1 / float64(length)
			}
			// The transform is linear: the gradient is its adjoint,
			// gx_r += cos*g_re + sin*g_im and gx_i += -sin*g_re + cos*g_im.
			out = graph.FromTensor(nn.Record(out.Tensor(), "DFT", []*nn.Tensor{t}, func(g []float32) [][]float32 {
				gx := make([]float32, len(xf))
				for o := 0; o < outer; o++ {
					for i := 0; i < inner; i++ {
						for k := 0; k < nout; k++ {
							q := ((o*nout+k)*inner + i) * 2
							gr, gi := scale*float64(g[q]), scale*float64(g[q+1])
							for t := 0; t < min(n, length); t++ {
								p := ((o*n+t)*inner + i) * comp
								ang := sign * 2 * math.Pi * float64(k) * float64(t) / float64(length)
								cs, sn := math.Cos(ang), math.Sin(ang)
								gx[p] += float32(gr*cs + gi*sn)
								if comp == 2 {
									gx[p+1] += float32(-gr*sn + gi*cs)
								}
							}
						}
					}
				}
				return [][]float32{gx}
			}))
		}
		return one(out), nil
	}, nil
}

func init() { register(buildSTFT, "STFT") }

// buildSTFT is the short-time Fourier transform of [batch, length, 1|2]
// signals (direct sums in float64).
func buildSTFT(c *nodeCtx) (graph.Kernel, error) {
	onesided := c.int("onesided", 1) != 0
	limit := c.opts.MaxElements
	return func(_ *graph.Context, in []*graph.Value) ([]*graph.Value, error) {
		x := in[0]
		if x.Rank() != 3 || (x.Shape()[2] != 1 && x.Shape()[2] != 2) {
			return nil, fmt.Errorf("signal %v: want [batch, length, 1 or 2]", x.Shape())
		}
		b, n, comp := x.Shape()[0], x.Shape()[1], x.Shape()[2]
		step := int(in[1].Int64s()[0])
		var win []float64
		if v := opt(in, 2); v != nil && v.Numel() > 0 {
			win = v.Float64s()
		}
		flen := len(win)
		if v := opt(in, 3); v != nil && v.Numel() > 0 {
			flen = int(v.Int64s()[0])
		}
		if flen <= 0 || flen > n || step <= 0 || win != nil && len(win) != flen {
			return nil, fmt.Errorf("frame length %d, step %d and window of %d for a signal of %d", flen, step, len(win), n)
		}
		frames := (n-flen)/step + 1
		nout := flen
		if onesided {
			nout = flen/2 + 1
		}
		shape := []int{b, frames, nout, 2}
		if err := checkElems(numelChecked(shape, limit), limit); err != nil {
			return nil, err
		}
		if numelChecked([]int{b, frames, nout, flen}, 16*limit) > 16*limit {
			return nil, checkElems(limit+1, limit)
		}
		xf := x.Float64s()
		y := make([]float64, numel(shape))
		for bi := 0; bi < b; bi++ {
			for f := 0; f < frames; f++ {
				for k := 0; k < nout; k++ {
					re, im := 0.0, 0.0
					for t := 0; t < flen; t++ {
						p := (bi*n + f*step + t) * comp
						w := 1.0
						if win != nil {
							w = win[t]
						}
						xr, xi := xf[p]*w, 0.0
						if comp == 2 {
							xi = xf[p+1] * w
						}
						ang := -2 * math.Pi * float64(k) * float64(t) / float64(flen)
						cs, sn := math.Cos(ang), math.Sin(ang)
						re += xr*cs - xi*sn
						im += xr*sn + xi*cs
					}
					q := ((bi*frames+f)*nout + k) * 2
					y[q], y[q+1] = re, im
				}
			}
		}
		out := graph.Make(x.DType(), shape, y)
		if tx := x.Tensor(); tx != nil {
			// Linear in the signal and in the window: the signal's gradient
			// is the adjoint of each windowed frame's DFT, summed over
			// overlapping frames; the window's is the frames' DFT adjoint.
			var tw *nn.Tensor
			if v := opt(in, 2); v != nil && win != nil {
				tw = v.Tensor()
			}
			out = graph.FromTensor(nn.Record(out.Tensor(), "STFT", []*nn.Tensor{tx, tw}, func(g []float32) [][]float32 {
				gx := make([]float32, len(xf))
				var gw []float32
				if tw != nil {
					gw = make([]float32, flen)
				}
				for bi := 0; bi < b; bi++ {
					for f := 0; f < frames; f++ {
						for k := 0; k < nout; k++ {
							q := ((bi*frames+f)*nout + k) * 2
							gr, gi := float64(g[q]), float64(g[q+1])
							for t := 0; t < flen; t++ {
								p := (bi*n + f*step + t) * comp
								w := 1.0
								if win != nil {
									w = win[t]
								}
								ang := -2 * math.Pi * float64(k) * float64(t) / float64(flen)
								cs, sn := math.Cos(ang), math.Sin(ang)
								gx[p] += float32(w * (gr*cs + gi*sn))
								xr, xi := xf[p], 0.0
								if comp == 2 {
									gx[p+1] += float32(w * (-gr*sn + gi*cs))
									xi = xf[p+1]
								}
								if gw != nil {
									gw[t] += float32(gr*(xr*cs-xi*sn) + gi*(xr*sn+xi*cs))
								}
							}
						}
					}
				}
				return [][]float32{gx, gw}
			}))
		}
		return one(out), nil
	}, nil
}
