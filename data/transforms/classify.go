package transforms

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // registered decoders: the formats Decode reads
	_ "image/png"
	"io"
	"math"

	_ "golang.org/x/image/webp"

	"github.com/ckptkit/ckpt/data/transforms/internal/jpeg"
)

// MaxPixels bounds the size of an image Decode accepts (width × height), so a
// small file that declares a huge image cannot exhaust memory.
const MaxPixels = 100 << 20

// Decode reads a JPEG, PNG or WebP image and returns it with its format name.
// Images larger than MaxPixels are refused before their pixels are decoded.
//
// JPEG files are decoded with libjpeg's integer inverse DCT, upsampling and
// colour conversion, so ToRGB gives Pillow's bytes, YCCK and subsampled CMYK
// included; the kinds that decoder does not handle (arithmetic coding,
// 12-bit, RGB-coded files, unusual three-component sampling factors, frames
// over its memory budget of jpeg.DefaultMaxSamples) go to image/jpeg and
// can differ from Pillow by a few levels.
//
// Lossy WebP comes back as *image.NRGBA, converted from YUV as libwebp
// converts it (alpha 255 where the file has none); lossless WebP as
// golang.org/x/image/webp decodes it; an animation as its first frame on
// its canvas, *image.NRGBA (see decodeAnimatedWebP). PNG comes
// back as image/png decodes it, except that 16-bit gray with a tRNS chunk is
// *image.Gray16 and palette entries past the PLTE chunk are Pillow's default
// gray (see pngPixels). ToRGB of any of these gives Pillow's bytes.
func Decode(r io.Reader) (image.Image, string, error) {
	return decode(r, MaxPixels)
}

// decode is Decode with a limit of maxPixels (the fuzz test's is smaller).
func decode(r io.Reader, maxPixels int64) (image.Image, string, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, "", fmt.Errorf("transforms: %w", err)
	}
	cfg, format, err := decodeConfig(data)
	if err != nil {
		return nil, "", fmt.Errorf("transforms: not a JPEG, PNG or WebP image: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return nil, "", fmt.Errorf("transforms: %s image of %dx%d pixels is outside the limit of %d pixels", format, cfg.Width, cfg.Height, maxPixels)
	}
	// An extended WebP header (RIFF, size, "WEBP", "VP8X", chunk size,
	// flags) with the animation flag: Pillow opens an animation at its first
	// frame.
	if format == "webp" && len(data) > 20 && string(data[12:16]) == "VP8X" && data[20]&0x02 != 0 {
		img, err := decodeAnimatedWebP(data)
		if err != nil {
			return nil, "", err
		}
		return img, format, nil
	}
	if format == "webp" {
		data = webpAlphaFlagFix(data)
	}
	if format == "jpeg" && bytes.HasPrefix(data, []byte{0xff, 0xd8}) {
		img, err := jpeg.Decode(data)
		if err == nil {
			return img, format, nil
		}
		// Frames over its own memory budget go to image/jpeg too: MaxPixels,
		// checked above, is this package's limit.
		if !errors.Is(err, jpeg.ErrUnsupported) && !errors.Is(err, jpeg.ErrTooLarge) {
			return nil, "", fmt.Errorf("transforms: %w", err) // "jpeg: ..." says what was being decoded
		}
	}
	img, format, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, "", fmt.Errorf("transforms: decoding %s: %w", format, err)
	}
	switch format {
	case "webp":
		if img, err = webpPixels(img); err != nil {
			return nil, "", err
		}
	case "png":
		img = pngPixels(img, data)
	}
	return img, format, nil
}

// decodeConfig is image.DecodeConfig, except that a JPEG file image/jpeg
// refuses (it does not read four components with most sampling layouts)
// is sized by internal/jpeg's header parser when that accepts it.
func decodeConfig(data []byte) (image.Config, string, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil && bytes.HasPrefix(data, []byte{0xff, 0xd8}) {
		if jcfg, jerr := jpeg.DecodeConfig(data); jerr == nil {
			return jcfg, "jpeg", nil
		}
	}
	return cfg, format, err
}

// webpPixels turns golang.org/x/image/webp's YCbCr planes of a lossy file
// into RGBA converted as libwebp converts them. Lossless files are decoded to
// exact RGBA already and are returned as they are.
func webpPixels(img image.Image) (image.Image, error) {
	var out *image.NRGBA
	switch m := img.(type) {
	case *image.YCbCr:
		out = webpToNRGBA(m, nil, 0)
	case *image.NYCbCrA:
		out = webpToNRGBA(&m.YCbCr, m.A, m.AStride)
	default:
		return img, nil
	}
	if out == nil {
		// Never from golang.org/x/image/webp as it is; refused rather than
		// left to ToRGB, which would take the planes for a JPEG's.
		return nil, fmt.Errorf("transforms: webp: decoder returned planes of an unexpected layout")
	}
	return out, nil
}

// pngPixels makes what image/png decodes look as Pillow opens the same file.
// data is the whole file; image.DecodeConfig has accepted its signature and
// IHDR chunk, which PNG places first (bit depth at byte 24, colour type at
// byte 25).
//
//   - A 16-bit gray image with a tRNS chunk, which image/png decodes to gray
//     and alpha, becomes plain 16-bit gray: Pillow opens it as mode "I" and
//     keeps the transparent value aside, and ToRGB treats *image.Gray16 as
//     Pillow treats mode "I".
//   - Palette indexes past the end of the PLTE chunk, which image/png makes
//     opaque black, get Pillow's default palette instead, the gray (i, i, i).
func pngPixels(img image.Image, data []byte) image.Image {
	switch m := img.(type) {
	case *image.NRGBA64:
		if len(data) < 26 || data[24] != 16 || data[25] != 0 {
			return img
		}
		g := image.NewGray16(m.Rect)
		for y := m.Rect.Min.Y; y < m.Rect.Max.Y; y++ {
			src := m.Pix[m.PixOffset(m.Rect.Min.X, y):]
			dst := g.Pix[g.PixOffset(m.Rect.Min.X, y):]
			for x := range m.Rect.Dx() {
				dst[2*x], dst[2*x+1] = src[8*x], src[8*x+1]
			}
		}
		return g
	case *image.Paletted:
		n := pngPaletteLen(data)
		for i := n; i < len(m.Palette); i++ {
			m.Palette[i] = color.RGBA{uint8(i), uint8(i), uint8(i), 0xff}
		}
	}
	return img
}

// pngPaletteLen returns the number of entries of a PNG file's PLTE chunk, or
// 256 if it finds none before the image data. A chunk is a 4-byte big-endian
// data length, a 4-byte type, the data and a 4-byte CRC; chunks follow the
// 8-byte signature.
func pngPaletteLen(data []byte) int {
	for off := 8; off+8 <= len(data); {
		n := int(binary.BigEndian.Uint32(data[off:]))
		switch string(data[off+4 : off+8]) {
		case "PLTE":
			return n / 3
		case "IDAT":
			return 256
		}
		if n < 0 || n > len(data)-off-12 {
			break
		}
		off += 12 + n
	}
	return 256
}

// ImageClassification is torchvision's ImageClassification preset, the
// transform that classification weights ship with: resize the shorter side
// to ResizeSize, center crop CropSize × CropSize, scale to [0, 1] and
// normalize with Mean and Std.
type ImageClassification struct {
	ResizeSize    int
	CropSize      int
	Interpolation Interpolation
	Mean, Std     [3]float32
}

// ResizedSize returns the size the shorter-side resize gives a w×h image, as
// torchvision computes it (the longer side truncated).
func ResizedSize(w, h, short int) (int, int) {
	if w <= h {
		return short, int(float64(short*h) / float64(w))
	}
	return int(float64(short*w) / float64(h)), short
}

// CenterCrop cuts the centered cw×ch window of img, padding with zeros where
// the image is smaller, as torchvision's center_crop does (Python's round,
// ties to even, places the window).
func CenterCrop(img *RGB, cw, ch int) *RGB {
	if cw > img.W || ch > img.H {
		padL, padT := 0, 0
		padR, padB := 0, 0
		if cw > img.W {
			padL, padR = (cw-img.W)/2, (cw-img.W+1)/2
		}
		if ch > img.H {
			padT, padB = (ch-img.H)/2, (ch-img.H+1)/2
		}
		p := &RGB{W: img.W + padL + padR, H: img.H + padT + padB}
		p.Pix = make([]uint8, 3*p.W*p.H)
		for y := range img.H {
			copy(p.Pix[3*((y+padT)*p.W+padL):], img.Pix[3*y*img.W:3*(y+1)*img.W])
		}
		img = p
		if img.W == cw && img.H == ch {
			return img
		}
	}
	top := int(math.RoundToEven(float64(img.H-ch) / 2))
	left := int(math.RoundToEven(float64(img.W-cw) / 2))
	out := &RGB{W: cw, H: ch, Pix: make([]uint8, 3*cw*ch)}
	for y := range ch {
		copy(out.Pix[3*y*cw:3*(y+1)*cw], img.Pix[3*((y+top)*img.W+left):])
	}
	return out
}

// Normalize returns the image as a 3×H×W float32 tensor in channel-major
// order: each byte v becomes (v/255 - Mean[c]) / Std[c], computed in float32
// as torch does.
func Normalize(img *RGB, mean, std [3]float32) []float32 {
	n := img.W * img.H
	out := make([]float32, 3*n)
	for i := range n {
		for c := range 3 {
			v := float32(img.Pix[3*i+c]) / 255
			out[c*n+i] = (v - mean[c]) / std[c]
		}
	}
	return out
}

// Apply runs the preset on img and returns a 3×CropSize×CropSize tensor.
func (p ImageClassification) Apply(img image.Image) ([]float32, error) {
	if p.ResizeSize <= 0 || p.CropSize <= 0 {
		return nil, fmt.Errorf("transforms: resize size %d and crop size %d must be positive", p.ResizeSize, p.CropSize)
	}
	rgb := ToRGB(img)
	if rgb.W == 0 || rgb.H == 0 {
		return nil, fmt.Errorf("transforms: empty image")
	}
	w, h := ResizedSize(rgb.W, rgb.H, p.ResizeSize)
	if w != rgb.W || h != rgb.H {
		var err error
		if rgb, err = Resize(rgb, w, h, p.Interpolation); err != nil {
			return nil, err
		}
	}
	return Normalize(CenterCrop(rgb, p.CropSize, p.CropSize), p.Mean, p.Std), nil
}
