package nn

// maxPoolWithIndices is maxPoolIndexed's result by two faster passes: the
// values from maxPoolValues (the vector kernels inference uses), then each
// output's index, found by scanning its window in torch's order for the
// first element equal to the maximum (the last NaN for a NaN maximum),
// which is the element maxPoolIndexed's running comparison keeps. The
// compares of the second pass rarely change outcome, so they cost less
// than the running maximum's unpredictable branches.
func maxPoolWithIndices(gp *poolGeom, x, out []float32, idx []int32) {
	maxPoolValues(gp, x, out)
	g := *gp
	hw, ohw := g.h*g.w, g.oh*g.ow
	kh, kw := g.KernelSize[0], g.KernelSize[1]
	sh, sw, ph, pw, dh, dw := g.Stride[0], g.Stride[1], g.Padding[0], g.Padding[1], g.Dilation[0], g.Dilation[1]
	parallelFor(g.n*g.c, len(out)*kh*kw, func(lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			xc := x[nc*hw : (nc+1)*hw]
			oc := out[nc*ohw : (nc+1)*ohw]
			ic := idx[nc*ohw : (nc+1)*ohw]
			for oh := range g.oh {
				ih0 := oh*sh - ph
				for ow := range g.ow {
					iw0 := ow*sw - pw
					best := oc[oh*g.ow+ow]
					bi := -1
					if best != best { // NaN: the window's last NaN
						for ki := kh - 1; ki >= 0 && bi < 0; ki-- {
							ih := ih0 + ki*dh
							if ih < 0 || ih >= g.h {
								continue
							}
							for kj := kw - 1; kj >= 0; kj-- {
								iw := iw0 + kj*dw
								if iw >= 0 && iw < g.w && xc[ih*g.w+iw] != xc[ih*g.w+iw] {
									bi = ih*g.w + iw
									break
								}
							}
						}
					} else {
					scan:
						for ki := range kh {
							ih := ih0 + ki*dh
							if ih < 0 || ih >= g.h {
								continue
							}
							row := xc[ih*g.w : (ih+1)*g.w]
							for kj := range kw {
								iw := iw0 + kj*dw
								if iw >= 0 && iw < g.w && row[iw] == best {
									bi = ih*g.w + iw
									break scan
								}
							}
						}
					}
					ic[oh*g.ow+ow] = int32(bi)
				}
			}
		}
	})
}
