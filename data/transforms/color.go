package transforms

import "math"

// The colour adjustments below are torchvision 0.14's functional ones on a
// PIL image (torchvision.transforms.functional_pil), which call Pillow's
// ImageEnhance and colour conversions; each reproduces Pillow 9.4's C code,
// float32 where Pillow computes in C float and float64 where in double, so
// that the bytes are Pillow's (testdata/gen/augment_fixtures.py).

// blend is Pillow's ImagingBlend(a, b, alpha) (alpha a C float): a + alpha ×
// (b − a) per byte, truncated; outside [0, 1] the result is clipped first.
func blend(a, b *RGB, alpha float32) *RGB {
	out := &RGB{W: a.W, H: a.H, Pix: make([]uint8, len(a.Pix))}
	if alpha >= 0 && alpha <= 1 {
		for i, x := range a.Pix {
			out.Pix[i] = uint8(float32(x) + alpha*float32(int(b.Pix[i])-int(x)))
		}
		return out
	}
	for i, x := range a.Pix {
		t := float32(x) + alpha*float32(int(b.Pix[i])-int(x))
		switch {
		case t <= 0:
			out.Pix[i] = 0
		case t >= 255:
			out.Pix[i] = 255
		default:
			out.Pix[i] = uint8(t)
		}
	}
	return out
}

// luma is Pillow's RGB to "L" conversion (ITU-R 601-2 in 16-bit fixed
// point, rounded).
func luma(r, g, b uint8) uint8 {
	return uint8((uint32(r)*19595 + uint32(g)*38470 + uint32(b)*7471 + 0x8000) >> 16)
}

// grayRGB is img.convert("L").convert("RGB").
func grayRGB(img *RGB) *RGB {
	out := &RGB{W: img.W, H: img.H, Pix: make([]uint8, len(img.Pix))}
	for i := 0; i+2 < len(img.Pix); i += 3 {
		l := luma(img.Pix[i], img.Pix[i+1], img.Pix[i+2])
		out.Pix[i], out.Pix[i+1], out.Pix[i+2] = l, l, l
	}
	return out
}

func filled(w, h int, v uint8) *RGB {
	out := &RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	if v != 0 {
		for i := range out.Pix {
			out.Pix[i] = v
		}
	}
	return out
}

// AdjustBrightness is torchvision's adjust_brightness on a PIL image
// (ImageEnhance.Brightness): a blend of black and img by factor.
func AdjustBrightness(img *RGB, factor float64) *RGB {
	return blend(filled(img.W, img.H, 0), img, float32(factor))
}

// AdjustContrast is torchvision's adjust_contrast on a PIL image
// (ImageEnhance.Contrast): a blend of the image's mean grey level (of its
// "L" conversion, rounded) and img by factor.
func AdjustContrast(img *RGB, factor float64) *RGB {
	var sum float64
	n := 0
	for i := 0; i+2 < len(img.Pix); i += 3 {
		sum += float64(luma(img.Pix[i], img.Pix[i+1], img.Pix[i+2]))
		n++
	}
	mean := 0
	if n > 0 {
		mean = int(sum/float64(n) + 0.5)
	}
	return blend(filled(img.W, img.H, uint8(mean)), img, float32(factor))
}

// AdjustSaturation is torchvision's adjust_saturation on a PIL image
// (ImageEnhance.Color): a blend of img's grey version and img by factor.
func AdjustSaturation(img *RGB, factor float64) *RGB {
	return blend(grayRGB(img), img, float32(factor))
}

// AdjustSharpness is torchvision's adjust_sharpness on a PIL image
// (ImageEnhance.Sharpness): a blend of img smoothed by Pillow's SMOOTH
// kernel and img by factor.
func AdjustSharpness(img *RGB, factor float64) *RGB {
	return blend(smooth(img), img, float32(factor))
}

// smooth is img.filter(ImageFilter.SMOOTH): the 3×3 kernel
// [1 1 1; 1 5 1; 1 1 1]/13 in C floats, rounded and clipped, with the
// border rows and columns copied unchanged (Pillow's ImagingFilter3x3).
func smooth(img *RGB) *RGB {
	out := &RGB{W: img.W, H: img.H, Pix: append([]uint8(nil), img.Pix...)}
	if img.W < 3 || img.H < 3 {
		return out
	}
	var k [9]float32
	for i := range k {
		k[i] = float32(1) / 13
	}
	k[4] = float32(5) / 13
	w := img.W
	px := func(x, y, c int) float32 { return float32(img.Pix[3*(y*w+x)+c]) }
	for y := 1; y < img.H-1; y++ {
		for x := 1; x < w-1; x++ {
			for c := range 3 {
				// Pillow adds the row below (kernel[0:3]) first, then the
				// row itself, then the row above, each left to right.
				var s float32
				s += px(x-1, y+1, c)*k[0] + px(x, y+1, c)*k[1] + px(x+1, y+1, c)*k[2]
				s += px(x-1, y, c)*k[3] + px(x, y, c)*k[4] + px(x+1, y, c)*k[5]
				s += px(x-1, y-1, c)*k[6] + px(x, y-1, c)*k[7] + px(x+1, y-1, c)*k[8]
				out.Pix[3*(y*w+x)+c] = clipFloat8(s)
			}
		}
	}
	return out
}

// clipFloat8 is Pillow's clip8 for float sums: rounded half up, clipped.
func clipFloat8(v float32) uint8 {
	switch {
	case v <= 0:
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v + 0.5)
}

// AdjustHue is torchvision's adjust_hue on a PIL image: the image converted
// to HSV (Pillow's rgb2hsv), hueFactor×255 (truncated, as numpy's uint8
// cast does) added to the hue byte modulo 256, and converted back (Pillow's
// hsv2rgb). hueFactor is in [-0.5, 0.5].
func AdjustHue(img *RGB, hueFactor float64) *RGB {
	shift := uint8(int64(hueFactor * 255))
	out := &RGB{W: img.W, H: img.H, Pix: make([]uint8, len(img.Pix))}
	for i := 0; i+2 < len(img.Pix); i += 3 {
		h, s, v := rgbToHSV(img.Pix[i], img.Pix[i+1], img.Pix[i+2])
		out.Pix[i], out.Pix[i+1], out.Pix[i+2] = hsvToRGB(h+shift, s, v)
	}
	return out
}

// rgbToHSV is Pillow's rgb2hsv_row: float hue and saturation, scaled to
// bytes by truncation.
func rgbToHSV(r, g, b uint8) (uint8, uint8, uint8) {
	maxc, minc := max(r, g, b), min(r, g, b)
	if maxc == minc {
		return 0, 0, maxc
	}
	cr := float32(maxc - minc)
	s := cr / float32(maxc)
	rc := float32(maxc-r) / cr
	gc := float32(maxc-g) / cr
	bc := float32(maxc-b) / cr
	var h float32
	switch {
	case r == maxc:
		h = bc - gc
	case g == maxc:
		h = float32(2.0 + float64(rc) - float64(bc))
	default:
		h = float32(4.0 + float64(gc) - float64(rc))
	}
	h = float32(math.Mod(float64(h)/6.0+1.0, 1.0))
	return clipInt8(int(float64(h) * 255.0)), clipInt8(int(float64(s) * 255.0)), maxc
}

func clipInt8(v int) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// hsvToRGB is Pillow's hsv2rgb.
func hsvToRGB(h, s, v uint8) (uint8, uint8, uint8) {
	if s == 0 {
		return v, v, v
	}
	hh := float64(float32(h)) * 6.0 / 255.0
	i := int(math.Floor(hh))
	f := float32(hh - float64(float32(i)))
	fs := float32(float64(float32(s)) / 255.0)
	fv := float64(float32(v))
	p := clipInt8(int(math.Round(fv * (1.0 - float64(fs)))))
	q := clipInt8(int(math.Round(fv * (1.0 - float64(fs*f)))))
	t := clipInt8(int(math.Round(fv * (1.0 - float64(fs)*(1.0-float64(f))))))
	switch i % 6 {
	case 0:
		return v, t, p
	case 1:
		return q, v, p
	case 2:
		return p, v, t
	case 3:
		return p, q, v
	case 4:
		return t, p, v
	}
	return v, p, q
}
