package transforms

import (
	"fmt"
	"image"
	"image/color"
	"math"
)

// Interpolation is a resampling filter, named as torchvision names it.
type Interpolation string

// The resampling filters torchvision's classification weights use.
const (
	Bilinear Interpolation = "bilinear"
	Bicubic  Interpolation = "bicubic"
	Nearest  Interpolation = "nearest"
)

// RGB is an 8-bit RGB image, row-major, three bytes a pixel.
type RGB struct {
	W, H int
	Pix  []uint8
}

// ToRGB converts img to 8-bit RGB as Pillow's convert("RGB") does on the
// mode Pillow opens the same file in: alpha is dropped from non-premultiplied
// colour, gray is replicated, and
//
//   - *image.Gray16 (a 16-bit gray PNG, Pillow's mode "I") is clipped to
//     [0, 255], not scaled: Pillow's I -> RGB conversion clips;
//   - *image.NRGBA64 and opaque *image.RGBA64 (16-bit colour or gray+alpha
//     PNGs, Pillow's RGBA and RGB) keep the high byte of each sample;
//   - *image.YCbCr is converted as libjpeg converts JPEG (see ycbcrToRGB);
//   - *image.CMYK (a CMYK or YCCK JPEG) as Pillow's cmyk2rgb converts it.
//
// Lossy WebP must come from Decode, which converts it as libwebp does: the
// YCbCr planes of golang.org/x/image/webp would be taken for a JPEG's.
func ToRGB(img image.Image) *RGB {
	b := img.Bounds()
	out := &RGB{W: b.Dx(), H: b.Dy(), Pix: make([]uint8, 3*b.Dx()*b.Dy())}
	i := 0
	switch m := img.(type) {
	case *image.NRGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := 0; x < out.W; x++ {
				out.Pix[i], out.Pix[i+1], out.Pix[i+2] = row[4*x], row[4*x+1], row[4*x+2]
				i += 3
			}
		}
		return out
	case *image.YCbCr:
		if rgb := ycbcrToRGB(m); rgb != nil {
			return rgb
		}
	case *image.CMYK:
		// Pillow's cmyk2rgb: each channel (255-k) - (255-k)·c/255, the
		// product rounded as MULDIV255 rounds it.
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := 0; x < out.W; x++ {
				nk := 255 - int(row[4*x+3])
				for c := range 3 {
					t := int(row[4*x+c])*nk + 128
					out.Pix[i+c] = uint8(nk - ((t>>8)+t)>>8)
				}
				i += 3
			}
		}
		return out
	case *image.Gray:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := 0; x < out.W; x++ {
				out.Pix[i], out.Pix[i+1], out.Pix[i+2] = row[x], row[x], row[x]
				i += 3
			}
		}
		return out
	case *image.Gray16:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := 0; x < out.W; x++ {
				v := uint8(255) // big-endian: any high bit puts it over 255
				if row[2*x] == 0 {
					v = row[2*x+1]
				}
				out.Pix[i], out.Pix[i+1], out.Pix[i+2] = v, v, v
				i += 3
			}
		}
		return out
	case *image.NRGBA64:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := 0; x < out.W; x++ {
				out.Pix[i], out.Pix[i+1], out.Pix[i+2] = row[8*x], row[8*x+2], row[8*x+4]
				i += 3
			}
		}
		return out
	case *image.RGBA: // 8-bit RGB PNGs: opaque, so no un-premultiplying
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := 0; x < out.W; x++ {
				p := row[4*x : 4*x+4]
				if p[3] != 0xff {
					c := color.NRGBAModel.Convert(color.RGBA{p[0], p[1], p[2], p[3]}).(color.NRGBA)
					out.Pix[i], out.Pix[i+1], out.Pix[i+2] = c.R, c.G, c.B
				} else {
					out.Pix[i], out.Pix[i+1], out.Pix[i+2] = p[0], p[1], p[2]
				}
				i += 3
			}
		}
		return out
	case *image.RGBA64: // 16-bit RGB PNGs: opaque, the high bytes
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := 0; x < out.W; x++ {
				p := row[8*x : 8*x+8]
				if p[6] != 0xff || p[7] != 0xff {
					c := color.NRGBAModel.Convert(m.RGBA64At(b.Min.X+x, y)).(color.NRGBA)
					out.Pix[i], out.Pix[i+1], out.Pix[i+2] = c.R, c.G, c.B
				} else {
					out.Pix[i], out.Pix[i+1], out.Pix[i+2] = p[0], p[2], p[4]
				}
				i += 3
			}
		}
		return out
	case *image.Paletted:
		var pal [256][3]uint8
		for k, c := range m.Palette {
			if k == len(pal) {
				break
			}
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			pal[k] = [3]uint8{n.R, n.G, n.B}
		}
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := 0; x < out.W; x++ {
				p := pal[row[x]]
				out.Pix[i], out.Pix[i+1], out.Pix[i+2] = p[0], p[1], p[2]
				i += 3
			}
		}
		return out
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			out.Pix[i], out.Pix[i+1], out.Pix[i+2] = c.R, c.G, c.B
			i += 3
		}
	}
	return out
}

// filter is a resampling kernel with its support radius at scale 1.
type filter struct {
	support float64
	f       func(float64) float64
}

func bilinearFilter(x float64) float64 {
	x = math.Abs(x)
	if x < 1 {
		return 1 - x
	}
	return 0
}

func bicubicFilter(x float64) float64 {
	const a = -0.5
	x = math.Abs(x)
	if x < 1 {
		return ((a+2)*x-(a+3))*x*x + 1
	}
	if x < 2 {
		return (((x-5)*x+8)*x - 4) * a
	}
	return 0
}

func filterFor(in Interpolation) (filter, error) {
	switch in {
	case Bilinear:
		return filter{1, bilinearFilter}, nil
	case Bicubic:
		return filter{2, bicubicFilter}, nil
	}
	return filter{}, fmt.Errorf("transforms: unsupported interpolation %q", in)
}

// precision is the number of fractional bits of the fixed-point weights of
// Pillow's 8-bit resampler.
const precision = 32 - 8 - 2

// coeffs computes, for each output position, the first input index, the
// number of inputs, and fixed-point weights (ksize per output).
func coeffs(inSize, outSize int, flt filter) (bounds []int, kk []int32, ksize int) {
	scale := float64(inSize) / float64(outSize)
	filterscale := math.Max(scale, 1)
	support := flt.support * filterscale
	ksize = int(math.Ceil(support))*2 + 1
	bounds = make([]int, 2*outSize)
	kk = make([]int32, outSize*ksize)
	pre := make([]float64, ksize)
	for xx := range outSize {
		center := (float64(xx) + 0.5) * scale
		ss := 1 / filterscale
		xmin := int(center - support + 0.5) // truncation toward zero, as C's cast
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		ww := 0.0
		for x := range ksize {
			pre[x] = 0
		}
		for x := range xmax {
			w := flt.f((float64(x+xmin) - center + 0.5) * ss)
			pre[x] = w
			ww += w
		}
		for x := range xmax {
			if ww != 0 {
				pre[x] /= ww
			}
		}
		for x := range ksize {
			v := pre[x] * (1 << precision)
			if v < 0 {
				kk[xx*ksize+x] = int32(-0.5 + v)
			} else {
				kk[xx*ksize+x] = int32(0.5 + v)
			}
		}
		bounds[2*xx], bounds[2*xx+1] = xmin, xmax
	}
	return bounds, kk, ksize
}

func clip8(v int64) uint8 {
	v >>= precision
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// Resize resamples src to w×h with Pillow's algorithm for 8-bit images
// (Image.resize without reducing_gap): a horizontal pass over the rows the
// vertical pass needs, then a vertical pass, each rounding to 8 bits.
func Resize(src *RGB, w, h int, interp Interpolation) (*RGB, error) {
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("transforms: cannot resize to %dx%d", w, h)
	}
	if src.W <= 0 || src.H <= 0 {
		return nil, fmt.Errorf("transforms: cannot resize an empty %dx%d image", src.W, src.H)
	}
	if w == src.W && h == src.H {
		return &RGB{W: w, H: h, Pix: append([]uint8(nil), src.Pix...)}, nil
	}
	if interp == Nearest {
		return resizeNearest(src, w, h), nil
	}
	flt, err := filterFor(interp)
	if err != nil {
		return nil, err
	}
	img := src
	bv, kv, kvs := coeffs(src.H, h, flt)
	if w != src.W {
		first := bv[0]
		last := bv[2*h-2] + bv[2*h-1]
		if h == src.H {
			first, last = 0, src.H
		}
		bh, kh, khs := coeffs(src.W, w, flt)
		tmp := &RGB{W: w, H: last - first, Pix: make([]uint8, 3*w*(last-first))}
		for y := range tmp.H {
			in := src.Pix[3*src.W*(y+first):]
			out := tmp.Pix[3*w*y:]
			for xx := range w {
				xmin, xmax := bh[2*xx], bh[2*xx+1]
				k := kh[xx*khs:]
				s0, s1, s2 := int64(1)<<(precision-1), int64(1)<<(precision-1), int64(1)<<(precision-1)
				for x := range xmax {
					p := in[3*(x+xmin):]
					kx := int64(k[x])
					s0 += int64(p[0]) * kx
					s1 += int64(p[1]) * kx
					s2 += int64(p[2]) * kx
				}
				out[3*xx], out[3*xx+1], out[3*xx+2] = clip8(s0), clip8(s1), clip8(s2)
			}
		}
		for i := range h {
			bv[2*i] -= first
		}
		img = tmp
	}
	if h == src.H {
		return img, nil
	}
	out := &RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for yy := range h {
		ymin, ymax := bv[2*yy], bv[2*yy+1]
		k := kv[yy*kvs:]
		row := out.Pix[3*w*yy:]
		for xx := range w {
			s0, s1, s2 := int64(1)<<(precision-1), int64(1)<<(precision-1), int64(1)<<(precision-1)
			for y := range ymax {
				p := img.Pix[3*(w*(y+ymin)+xx):]
				ky := int64(k[y])
				s0 += int64(p[0]) * ky
				s1 += int64(p[1]) * ky
				s2 += int64(p[2]) * ky
			}
			row[3*xx], row[3*xx+1], row[3*xx+2] = clip8(s0), clip8(s1), clip8(s2)
		}
	}
	return out, nil
}

// resizeNearest picks, as Pillow does, the source pixel under each output
// pixel's center.
func resizeNearest(src *RGB, w, h int) *RGB {
	out := &RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for y := range h {
		sy := int((float64(y) + 0.5) * float64(src.H) / float64(h))
		for x := range w {
			sx := int((float64(x) + 0.5) * float64(src.W) / float64(w))
			copy(out.Pix[3*(y*w+x):3*(y*w+x)+3], src.Pix[3*(sy*src.W+sx):])
		}
	}
	return out
}
