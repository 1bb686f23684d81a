package transforms

import (
	"fmt"
	"math"
	"strconv"
)

// The operations of torchvision 0.14's TrivialAugmentWide on a PIL image
// (torchvision.transforms.autoaugment._apply_op with nearest interpolation
// and the default black fill), each as Pillow 9.4 computes it.

// pi is a variable so that the conversion factors are computed in float64
// as CPython's math.radians and math.degrees compute them (pi/180 and
// 180/pi rounded from the float64 pi), not folded exactly by the compiler.
var pi = math.Pi

var (
	degToRad = pi / 180
	radToDeg = 180 / pi
)

// TrivialAugmentOps are TrivialAugmentWide's operations in torchvision's
// order (the index its random draw picks).
var TrivialAugmentOps = []string{"Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate",
	"Brightness", "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize"}

// ApplyOp applies the TrivialAugmentWide operation op with magnitude as
// torchvision's _apply_op does on a PIL image: shears by atan(magnitude)
// about the top-left corner, translations by int(magnitude) pixels,
// rotation by magnitude degrees about the centre, the enhancements by the
// factor 1+magnitude, posterize to int(magnitude) bits, solarize above
// magnitude, autocontrast and equalize without parameters.
func ApplyOp(img *RGB, op string, magnitude float64) (*RGB, error) {
	deg := func(m float64) float64 { return math.Atan(m) * radToDeg }
	switch op {
	case "Identity":
		return &RGB{W: img.W, H: img.H, Pix: append([]uint8(nil), img.Pix...)}, nil
	case "ShearX":
		return Affine(img, 0, [2]float64{}, 1, [2]float64{deg(magnitude), 0}, &[2]float64{0, 0}), nil
	case "ShearY":
		return Affine(img, 0, [2]float64{}, 1, [2]float64{0, deg(magnitude)}, &[2]float64{0, 0}), nil
	case "TranslateX":
		return Affine(img, 0, [2]float64{float64(int(magnitude)), 0}, 1, [2]float64{}, nil), nil
	case "TranslateY":
		return Affine(img, 0, [2]float64{0, float64(int(magnitude))}, 1, [2]float64{}, nil), nil
	case "Rotate":
		return Rotate(img, magnitude), nil
	case "Brightness":
		return AdjustBrightness(img, 1+magnitude), nil
	case "Color":
		return AdjustSaturation(img, 1+magnitude), nil
	case "Contrast":
		return AdjustContrast(img, 1+magnitude), nil
	case "Sharpness":
		return AdjustSharpness(img, 1+magnitude), nil
	case "Posterize":
		return Posterize(img, int(magnitude))
	case "Solarize":
		return Solarize(img, magnitude), nil
	case "AutoContrast":
		return AutoContrast(img), nil
	case "Equalize":
		return Equalize(img), nil
	}
	return nil, fmt.Errorf("transforms: unknown TrivialAugmentWide operation %q", op)
}

// lut maps every byte of img through per-channel tables.
func lut(img *RGB, t *[3][256]uint8) *RGB {
	out := &RGB{W: img.W, H: img.H, Pix: make([]uint8, len(img.Pix))}
	for i, v := range img.Pix {
		out.Pix[i] = t[i%3][v]
	}
	return out
}

// Posterize keeps the top bits of every channel (ImageOps.posterize);
// bits is in [0, 8].
func Posterize(img *RGB, bits int) (*RGB, error) {
	if bits < 0 || bits > 8 {
		return nil, fmt.Errorf("transforms: posterize to %d bits (want 0 to 8)", bits)
	}
	mask := ^uint8((1 << (8 - bits)) - 1)
	var t [3][256]uint8
	for c := range 3 {
		for i := range 256 {
			t[c][i] = uint8(i) & mask
		}
	}
	return lut(img, &t), nil
}

// Solarize inverts every channel value at or above threshold
// (ImageOps.solarize).
func Solarize(img *RGB, threshold float64) *RGB {
	var t [3][256]uint8
	for c := range 3 {
		for i := range 256 {
			if float64(i) < threshold {
				t[c][i] = uint8(i)
			} else {
				t[c][i] = uint8(255 - i)
			}
		}
	}
	return lut(img, &t)
}

func histograms(img *RGB) *[3][256]int {
	var h [3][256]int
	for i, v := range img.Pix {
		h[i%3][v]++
	}
	return &h
}

// AutoContrast stretches each channel so its darkest value becomes 0 and
// its lightest 255 (ImageOps.autocontrast with no cutoff).
func AutoContrast(img *RGB) *RGB {
	h := histograms(img)
	var t [3][256]uint8
	for c := range 3 {
		lo, hi := 0, 255
		for lo < 256 && h[c][lo] == 0 {
			lo++
		}
		for hi >= 0 && h[c][hi] == 0 {
			hi--
		}
		if hi <= lo {
			for i := range 256 {
				t[c][i] = uint8(i)
			}
			continue
		}
		scale := 255.0 / float64(hi-lo)
		offset := float64(-lo) * scale
		for i := range 256 {
			t[c][i] = clipInt8(int(float64(i)*scale + offset))
		}
	}
	return lut(img, &t)
}

// Equalize equalizes each channel's histogram (ImageOps.equalize).
func Equalize(img *RGB) *RGB {
	h := histograms(img)
	var t [3][256]uint8
	for c := range 3 {
		total, last, nonzero := 0, 0, 0
		for _, n := range h[c] {
			if n > 0 {
				total += n
				last = n
				nonzero++
			}
		}
		step := 0
		if nonzero > 1 {
			step = (total - last) / 255
		}
		if step == 0 {
			for i := range 256 {
				t[c][i] = uint8(i)
			}
			continue
		}
		n := step / 2
		for i := range 256 {
			t[c][i] = clipInt8(n / step)
			n += h[c][i]
		}
	}
	return lut(img, &t)
}

// inverseAffine is torchvision's _get_inverse_affine_matrix: the matrix
// mapping output pixel coordinates to input ones for a rotation by angle
// degrees, a translation, a scale and shears (degrees) about center.
func inverseAffine(center [2]float64, angle float64, translate [2]float64, scale float64, shear [2]float64) [6]float64 {
	rot, sx, sy := angle*degToRad, shear[0]*degToRad, shear[1]*degToRad
	cx, cy := center[0], center[1]
	tx, ty := translate[0], translate[1]
	a := math.Cos(rot-sy) / math.Cos(sy)
	b := -math.Cos(rot-sy)*math.Tan(sx)/math.Cos(sy) - math.Sin(rot)
	c := math.Sin(rot-sy) / math.Cos(sy)
	d := -math.Sin(rot-sy)*math.Tan(sx)/math.Cos(sy) + math.Cos(rot)
	m := [6]float64{d, -b, 0, -c, a, 0}
	for i := range m {
		m[i] /= scale
	}
	m[2] += m[0]*(-cx-tx) + m[1]*(-cy-ty)
	m[5] += m[3]*(-cx-tx) + m[4]*(-cy-ty)
	m[2] += cx
	m[5] += cy
	return m
}

// Affine is torchvision's F.affine on a PIL image with nearest
// interpolation and black fill: center nil is the image's centre
// (width/2, height/2), as torchvision takes it for PIL images.
func Affine(img *RGB, angle float64, translate [2]float64, scale float64, shear [2]float64, center *[2]float64) *RGB {
	c := [2]float64{float64(img.W) * 0.5, float64(img.H) * 0.5}
	if center != nil {
		c = *center
	}
	return TransformAffine(img, inverseAffine(c, angle, translate, scale, shear))
}

// Rotate is torchvision's F.rotate on a PIL image (Image.rotate, nearest,
// black fill, not expanded): counter-clockwise by angle degrees about the
// centre; multiples of 90 degrees on square images are exact transposes,
// as in Pillow.
func Rotate(img *RGB, angle float64) *RGB {
	angle = math.Mod(angle, 360)
	if angle < 0 {
		angle += 360 // Python's % takes the divisor's sign
	}
	switch {
	case angle == 0:
		return &RGB{W: img.W, H: img.H, Pix: append([]uint8(nil), img.Pix...)}
	case angle == 180:
		return transpose(img, func(x, y int) (int, int) { return img.W - 1 - x, img.H - 1 - y }, img.W, img.H)
	case angle == 90 && img.W == img.H:
		// ROTATE_90: output (x, y) comes from input (W-1-y, x).
		return transpose(img, func(x, y int) (int, int) { return img.W - 1 - y, x }, img.H, img.W)
	case angle == 270 && img.W == img.H:
		return transpose(img, func(x, y int) (int, int) { return y, img.H - 1 - x }, img.H, img.W)
	}
	cx, cy := float64(img.W)/2, float64(img.H)/2
	a := -(angle * degToRad)
	r15 := func(v float64) float64 { // Python's round(v, 15)
		f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', 15, 64), 64)
		return f
	}
	m := [6]float64{r15(math.Cos(a)), r15(math.Sin(a)), 0, r15(-math.Sin(a)), r15(math.Cos(a)), 0}
	m[2] = m[0]*-cx + m[1]*-cy + m[2]
	m[5] = m[3]*-cx + m[4]*-cy + m[5]
	m[2] += cx
	m[5] += cy
	return TransformAffine(img, m)
}

func transpose(img *RGB, src func(x, y int) (int, int), w, h int) *RGB {
	out := &RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for y := range h {
		for x := range w {
			sx, sy := src(x, y)
			copy(out.Pix[3*(y*w+x):3*(y*w+x)+3], img.Pix[3*(sy*img.W+sx):])
		}
	}
	return out
}

// TransformAffine is Pillow's Image.transform(size, AFFINE, m, NEAREST)
// with black fill: output pixel (x, y) takes the input pixel at
// (m0·x' + m1·y' + m2, m3·x' + m4·y' + m5) for the pixel centre (x', y'),
// computed as Pillow does (a scaling-only matrix in float64, otherwise
// 16.16 fixed point when the corners fit, else float64).
func TransformAffine(img *RGB, m [6]float64) *RGB {
	w, h := img.W, img.H
	out := &RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	set := func(x, y, xin, yin int) {
		if xin >= 0 && xin < w && yin >= 0 && yin < h {
			copy(out.Pix[3*(y*w+x):3*(y*w+x)+3], img.Pix[3*(yin*w+xin):])
		}
	}
	coord := func(v float64) int { // Pillow's COORD
		if v < 0 {
			return -1
		}
		return int(v)
	}
	if m[1] == 0 && m[3] == 0 { // ImagingScaleAffine
		xin := make([]int, w)
		xo := m[2] + m[0]*0.5
		for x := range w {
			xin[x] = coord(xo)
			xo += m[0]
		}
		yo := m[5] + m[4]*0.5
		for y := range h {
			yi := coord(yo)
			for x := range w {
				set(x, y, xin[x], yi)
			}
			yo += m[4]
		}
		return out
	}
	fits := func(x, y float64) bool {
		return math.Abs(x*m[0]+y*m[1]+m[2]) < 32768 && math.Abs(x*m[3]+y*m[4]+m[5]) < 32768
	}
	W, H := float64(w), float64(h)
	if fits(0, 0) && fits(W, H) && fits(0, H) && fits(W, 0) {
		fix := func(v float64) int32 { // FLOOR(v*65536 + 0.5)
			v = v*65536.0 + 0.5
			if v < 0 {
				return int32(math.Floor(v))
			}
			return int32(v)
		}
		a0, a1, a3, a4 := fix(m[0]), fix(m[1]), fix(m[3]), fix(m[4])
		a2 := fix(m[2] + m[0]*0.5 + m[1]*0.5)
		a5 := fix(m[5] + m[3]*0.5 + m[4]*0.5)
		for y := range h {
			xx, yy := a2, a5
			for x := range w {
				set(x, y, int(xx>>16), int(yy>>16))
				xx += a0
				yy += a3
			}
			a2 += a1
			a5 += a4
		}
		return out
	}
	xo := m[2] + m[1]*0.5 + m[0]*0.5
	yo := m[5] + m[4]*0.5 + m[3]*0.5
	for y := range h {
		xx, yy := xo, yo
		for x := range w {
			set(x, y, coord(xx), coord(yy))
			xx += m[0]
			yy += m[3]
		}
		xo += m[1]
		yo += m[4]
	}
	return out
}
