package nn

// depthwiseDirect is depthwiseForward as a direct loop over the input
// planes, with no scratch memory: the code before the phase-plane kernels,
// kept as the benchmark's baseline. out must be zero when b is nil.
func depthwiseDirect(gp *convGeom, x, w []float32, b *Tensor, out []float32) {
	g := *gp // the goroutines get a copy, so the caller's geometry does not escape
	hw := g.h * g.wd
	parallelFor(g.n*g.c, g.n*g.c*g.ohw*g.kh*g.kw, func(lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			c := nc % g.c
			xc := x[nc*hw : (nc+1)*hw]
			dst := out[nc*g.ohw : (nc+1)*g.ohw]
			if b != nil {
				v := b.data[c]
				for i := range dst {
					dst[i] = v
				}
			}
			wc := w[c*g.kh*g.kw : (c+1)*g.kh*g.kw]
			if g.kw == 3 && g.sw == 1 && g.dw == 1 && g.pw == 1 && g.ow == g.wd && g.wd >= 2 {
				depthwise3(&g, xc, wc, dst)
				continue
			}
			for ki := range g.kh {
				for kj := range g.kw {
					wv := wc[ki*g.kw+kj]
					off := kj*g.dw - g.pw
					lo, hi := validRange(off, g.sw, g.wd, g.ow)
					if lo >= hi {
						continue // this kernel column only ever sees padding
					}
					for oh := range g.oh {
						ih := oh*g.sh - g.ph + ki*g.dh
						if ih < 0 || ih >= g.h {
							continue
						}
						xr := xc[ih*g.wd : (ih+1)*g.wd]
						d := dst[oh*g.ow : (oh+1)*g.ow]
						if g.sw == 1 {
							xs := xr[lo+off : hi+off]
							ds := d[lo:hi]
							xs = xs[:len(ds)]
							for i := range ds {
								ds[i] += wv * xs[i]
							}
						} else {
							for ow := lo; ow < hi; ow++ {
								d[ow] += wv * xr[ow*g.sw+off]
							}
						}
					}
				}
			}
		}
	})
}

// depthwise3 is the depthwise inner loop for a 3-wide kernel with unit
// stride and dilation and padding 1 along the width (MobileNet, EfficientNet):
// the three taps of a kernel row are fused, so each output row is loaded and
// stored once per kernel row instead of three times.
func depthwise3(g *convGeom, xc, wc, dst []float32) {
	w := g.wd
	for oh := range g.oh {
		d := dst[oh*w : (oh+1)*w]
		for ki := range g.kh {
			ih := oh*g.sh - g.ph + ki*g.dh
			if ih < 0 || ih >= g.h {
				continue
			}
			xr := xc[ih*w : (ih+1)*w]
			w0, w1, w2 := wc[ki*3], wc[ki*3+1], wc[ki*3+2]
			d[0] += w1*xr[0] + w2*xr[1]
			x0, x1, x2 := xr[:w-2], xr[1:w-1], xr[2:]
			dm := d[1 : w-1]
			x0, x1, x2 = x0[:len(dm)], x1[:len(dm)], x2[:len(dm)]
			for i := range dm {
				dm[i] += w0*x0[i] + w1*x1[i] + w2*x2[i]
			}
			d[w-1] += w0*xr[w-2] + w1*xr[w-1]
		}
	}
}
