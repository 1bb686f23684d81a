package transforms

import "image"

// libjpeg's YCbCr -> RGB conversion uses 16-bit fixed point; these tables
// hold its per-value terms, computed once from the same constants.
var (
	crR, cbB [256]int32
	crG, cbG [256]int32
)

func init() {
	const scale = 1 << 16
	fix := func(x float64) int64 { return int64(x*scale + 0.5) }
	for i := range 256 {
		x := int64(i - 128)
		crR[i] = int32((fix(1.40200)*x + scale/2) >> 16)
		cbB[i] = int32((fix(1.77200)*x + scale/2) >> 16)
		crG[i] = int32(-fix(0.71414) * x)
		cbG[i] = int32(-fix(0.34414)*x + scale/2)
	}
}

func clamp255(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// ycbcrToRGB converts a decoded JPEG the way libjpeg(-turbo) does by default,
// and so as Pillow sees it: chroma subsampled 2×2 or 2×1 is upsampled with
// libjpeg's "fancy" triangle filter (3/4 nearer sample, 1/4 further, edges
// replicated) instead of being repeated, then converted with libjpeg's fixed
// point constants. It returns nil for layouts it does not handle.
func ycbcrToRGB(m *image.YCbCr) *RGB {
	b := m.Bounds()
	if b.Min != (image.Point{}) {
		return nil
	}
	w, h := b.Dx(), b.Dy()
	cw := (w + 1) / 2
	var hv, vv bool // horizontal, vertical subsampling by 2
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio444:
	case image.YCbCrSubsampleRatio422:
		hv = true
	case image.YCbCrSubsampleRatio420:
		hv, vv = true, true
	default:
		return nil
	}
	if hv && cw < 2 {
		return nil
	}
	ch := h
	if vv {
		ch = (h + 1) / 2
	}
	ccols := w
	if hv {
		ccols = cw
	}
	up := func(plane []uint8) []uint8 {
		if !hv {
			return plane // 4:4:4: one chroma sample per pixel, stride CStride
		}
		out := make([]uint8, w*h)
		row := make([]int32, ccols)
		for y := range h {
			// Vertical step: column sums of the nearer row ×3 plus the
			// further one (×4 when not subsampled vertically).
			if vv {
				cy := y / 2
				far := cy - 1
				if y%2 == 1 {
					far = cy + 1
				}
				far = max(0, min(ch-1, far))
				near := plane[cy*m.CStride:]
				other := plane[far*m.CStride:]
				for x := range ccols {
					row[x] = 3*int32(near[x]) + int32(other[x])
				}
				o := out[y*w:]
				// Horizontal step on sums scaled by 4: rounding as libjpeg.
				put := func(i int, v int32) {
					if i < w {
						o[i] = uint8(v)
					}
				}
				put(0, (row[0]*4+8)>>4)
				put(1, (row[0]*3+row[1]+7)>>4)
				for x := 1; x < ccols-1; x++ {
					put(2*x, (row[x]*3+row[x-1]+8)>>4)
					put(2*x+1, (row[x]*3+row[x+1]+7)>>4)
				}
				l := ccols - 1
				put(2*l, (row[l]*3+row[l-1]+8)>>4)
				put(2*l+1, (row[l]*4+7)>>4)
				continue
			}
			in := plane[y*m.CStride:]
			o := out[y*w:]
			put := func(i int, v int32) {
				if i < w {
					o[i] = uint8(v)
				}
			}
			put(0, int32(in[0]))
			put(1, (int32(in[0])*3+int32(in[1])+2)>>2)
			for x := 1; x < ccols-1; x++ {
				put(2*x, (int32(in[x])*3+int32(in[x-1])+1)>>2)
				put(2*x+1, (int32(in[x])*3+int32(in[x+1])+2)>>2)
			}
			l := ccols - 1
			put(2*l, (int32(in[l])*3+int32(in[l-1])+1)>>2)
			put(2*l+1, int32(in[l]))
		}
		return out
	}
	cb, cr := up(m.Cb), up(m.Cr)
	cstride := w
	if !hv {
		cstride = m.CStride
	}
	out := &RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for y := range h {
		for x := range w {
			yy := int32(m.Y[y*m.YStride+x])
			cbv, crv := cb[y*cstride+x], cr[y*cstride+x]
			p := out.Pix[3*(y*w+x):]
			p[0] = clamp255(yy + crR[crv])
			p[1] = clamp255(yy + (cbG[cbv]+crG[crv])>>16)
			p[2] = clamp255(yy + cbB[cbv])
		}
	}
	return out
}
