package transforms

import (
	"image"

	"github.com/ckptkit/ckpt/data/transforms/internal/jpeg"
)

// ycbcrToRGB converts a decoded JPEG the way libjpeg(-turbo) does by default,
// and so as Pillow sees it: subsampled chroma is upsampled with libjpeg's
// "fancy" triangle filter (3/4 nearer sample, 1/4 further, edges
// replicated; plain replication for chroma 1 or 2 samples wide) instead of
// being repeated, then converted with libjpeg's fixed-point constants. Both
// steps are package jpeg's (jpeg.Upsample, jpeg.YCbCrToRGB), which uses
// them for the images it upsamples itself. It returns nil for layouts it
// does not handle.
func ycbcrToRGB(m *image.YCbCr) *RGB {
	b := m.Bounds()
	if b.Min != (image.Point{}) {
		return nil
	}
	w, h := b.Dx(), b.Dy()
	var rh, rv int // chroma subsampling factors
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio444:
		rh, rv = 1, 1
	case image.YCbCrSubsampleRatio422:
		rh, rv = 2, 1
	case image.YCbCrSubsampleRatio420:
		rh, rv = 2, 2
	case image.YCbCrSubsampleRatio440:
		rh, rv = 1, 2
	default:
		return nil
	}
	cb, cr, cstride := m.Cb, m.Cr, m.CStride
	if rh != 1 || rv != 1 {
		cw, ch := (w+rh-1)/rh, (h+rv-1)/rv
		cb = jpeg.Upsample(m.Cb, m.CStride, cw, ch, rh, rv, w, h)
		cr = jpeg.Upsample(m.Cr, m.CStride, cw, ch, rh, rv, w, h)
		cstride = w
	}
	out := &RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for y := range h {
		yrow, cbrow, crrow := m.Y[y*m.YStride:][:w], cb[y*cstride:][:w], cr[y*cstride:][:w]
		o := out.Pix[3*y*w:][:3*w]
		for x := range w {
			o[3*x], o[3*x+1], o[3*x+2] = jpeg.YCbCrToRGB(yrow[x], cbrow[x], crrow[x])
		}
	}
	return out
}
