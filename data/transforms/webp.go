package transforms

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/draw"

	"golang.org/x/image/webp"
)

// libwebp converts a lossy (VP8) picture's YUV 4:2:0 planes to RGB in two
// steps, and Pillow, so torchvision, sees the result: its "fancy" upsampler
// interpolates each chroma sample from the 2x2 nearest chroma samples with
// weights 9, 3, 3 and 1 (in integer steps whose rounding is reproduced below),
// and its YUV -> RGB conversion is limited-range BT.601 in fixed point:
//
//	R = (19077·y             + 26149·v - 14234) >> 6
//	G = (19077·y -  6419·u   - 13320·v +  8708) >> 6
//	B = (19077·y + 33050·u             - 17685) >> 6
//
// where a·b = (a*b) >> 8 keeps 6 fractional bits (the coefficients are
// BT.601's 1.164, 1.596, 0.391, 0.813 and 2.018 scaled by 2^14), and the
// result is clipped to [0, 255]. These are the formulas of libwebp's src/dsp/yuv.h
// and upsampling.c; its SIMD versions are bit-exact with them.

// The constants as libwebp defines them. The offsets fold in the biases of
// 16 (luma) and 128 (chroma) and a rounding half; they are tuned to the
// truncating products and cannot be rederived from the coefficients to the
// last unit, so they are taken as libwebp states them.
const (
	webpFix  = 6                    // fractional bits of the YUV -> RGB sums
	webpMask = (256 << webpFix) - 1 // sums in [0, webpMask] need no clipping
	webpY    = 19077                // 1.164 × 2^14
	webpVR   = 26149                // 1.596 × 2^14
	webpUG   = 6419                 // 0.391 × 2^14
	webpVG   = 13320                // 0.813 × 2^14
	webpUB   = 33050                // 2.018 × 2^14
	webpR0   = -14234
	webpG0   = 8708
	webpB0   = -17685
)

func mulHi(v, c int) int { return (v * c) >> 8 }

func webpClip(v int) uint8 {
	if v&^webpMask == 0 {
		return uint8(v >> webpFix)
	}
	if v < 0 {
		return 0
	}
	return 255
}

// webpPixel writes the RGB of one pixel into p[0:3].
func webpPixel(y, u, v int, p []uint8) {
	yy := mulHi(y, webpY)
	p[0] = webpClip(yy + mulHi(v, webpVR) + webpR0)
	p[1] = webpClip(yy - mulHi(u, webpUG) - mulHi(v, webpVG) + webpG0)
	p[2] = webpClip(yy + mulHi(u, webpUB) + webpB0)
}

// webpLinePair converts two rows of n luma samples, top and bottom (bottom
// may be nil), between the chroma rows tu, tv (nearer the top row) and cu, cv
// (nearer the bottom row), into RGBA rows of 4 bytes a pixel (alpha is left
// alone). Each output chroma value is (9a + 3b + 3c + d + 8) >> 4 of the
// four surrounding samples, a the nearest, c the other one in its column;
// the first and, for an even n, the last pixel of a row lie beside only one
// chroma column and get (3a + c + 2) >> 2.
func webpLinePair(topY, botY, tu, tv, cu, cv []uint8, topDst, botDst []uint8, n int) {
	last := (n - 1) >> 1
	tlu, tlv := int(tu[0]), int(tv[0]) // top-left chroma
	lu, lv := int(cu[0]), int(cv[0])   // left chroma
	webpPixel(int(topY[0]), (3*tlu+lu+2)>>2, (3*tlv+lv+2)>>2, topDst)
	if botY != nil {
		webpPixel(int(botY[0]), (3*lu+tlu+2)>>2, (3*lv+tlv+2)>>2, botDst)
	}
	for x := 1; x <= last; x++ {
		tU, tV := int(tu[x]), int(tv[x]) // top chroma
		u, v := int(cu[x]), int(cv[x])   // current chroma
		// libwebp takes two truncating steps, the mean of a diagonal and then
		// its mean with the nearest sample: ((3b + 3c + a + d + 8) >> 3 + a) >> 1,
		// which is the single (9a + 3b + 3c + d + 8) >> 4 (nested floor
		// divisions by 8 and 2 are one by 16).
		webpPixel(int(topY[2*x-1]), (9*tlu+3*tU+3*lu+u+8)>>4, (9*tlv+3*tV+3*lv+v+8)>>4, topDst[4*(2*x-1):])
		webpPixel(int(topY[2*x]), (9*tU+3*tlu+3*u+lu+8)>>4, (9*tV+3*tlv+3*v+lv+8)>>4, topDst[4*(2*x):])
		if botY != nil {
			webpPixel(int(botY[2*x-1]), (9*lu+3*u+3*tlu+tU+8)>>4, (9*lv+3*v+3*tlv+tV+8)>>4, botDst[4*(2*x-1):])
			webpPixel(int(botY[2*x]), (9*u+3*lu+3*tU+tlu+8)>>4, (9*v+3*lv+3*tV+tlv+8)>>4, botDst[4*(2*x):])
		}
		tlu, tlv, lu, lv = tU, tV, u, v
	}
	if n&1 == 0 {
		webpPixel(int(topY[n-1]), (3*tlu+lu+2)>>2, (3*tlv+lv+2)>>2, topDst[4*(n-1):])
		if botY != nil {
			webpPixel(int(botY[n-1]), (3*lu+tlu+2)>>2, (3*lv+tlv+2)>>2, botDst[4*(n-1):])
		}
	}
}

// webpToNRGBA converts a lossy WebP picture, decoded by golang.org/x/image/webp
// to YCbCr 4:2:0 planes (and, for VP8X files with an ALPH chunk, an alpha
// plane of stride astride), to the non-premultiplied RGBA that libwebp
// outputs in its MODE_RGBA, the mode Pillow decodes into. alpha nil means
// opaque. It returns nil for a layout it does not handle (the decoder always
// gives 4:2:0 planes anchored at the origin).
func webpToNRGBA(m *image.YCbCr, alpha []uint8, astride int) *image.NRGBA {
	r := m.Rect
	if r.Min != (image.Point{}) || m.SubsampleRatio != image.YCbCrSubsampleRatio420 || r.Dx() < 1 || r.Dy() < 1 {
		return nil
	}
	w, h := r.Dx(), r.Dy()
	cw, ch := (w+1)/2, (h+1)/2
	if len(m.Y) < (h-1)*m.YStride+w || len(m.Cb) < (ch-1)*m.CStride+cw || len(m.Cr) < (ch-1)*m.CStride+cw ||
		(alpha != nil && (astride < w || len(alpha) < (h-1)*astride+w)) {
		return nil
	}
	out := image.NewNRGBA(r)
	yRow := func(y int) []uint8 { return m.Y[y*m.YStride:][:w] }
	uRow := func(c int) []uint8 { return m.Cb[c*m.CStride:][:cw] }
	vRow := func(c int) []uint8 { return m.Cr[c*m.CStride:][:cw] }
	dst := func(y int) []uint8 { return out.Pix[y*out.Stride:][:4*w] }
	// Row 0 lies beside chroma row 0 only; then rows 2k-1 and 2k lie between
	// chroma rows k-1 and k; the last row of an even height beside the last
	// chroma row only.
	webpLinePair(yRow(0), nil, uRow(0), vRow(0), uRow(0), vRow(0), dst(0), nil, w)
	for y := 1; y < h; y += 2 {
		k := (y + 1) / 2
		if y+1 < h {
			webpLinePair(yRow(y), yRow(y+1), uRow(k-1), vRow(k-1), uRow(k), vRow(k), dst(y), dst(y+1), w)
		} else {
			webpLinePair(yRow(y), nil, uRow(k-1), vRow(k-1), uRow(k-1), vRow(k-1), dst(y), nil, w)
		}
	}
	for y := range h {
		row := dst(y)
		if alpha == nil {
			for x := range w {
				row[4*x+3] = 0xff
			}
			continue
		}
		a := alpha[y*astride:][:w]
		for x := range w {
			row[4*x+3] = a[x]
		}
	}
	return out
}

// webpChunk is one chunk of a RIFF container: a FourCC and its payload.
type webpChunk struct {
	kind string
	data []byte
}

// webpChunks splits the chunks that follow one another in data: each is a
// 4-byte FourCC, a 4-byte little-endian payload size, the payload, and a pad
// byte when the size is odd.
func webpChunks(data []byte) ([]webpChunk, error) {
	var out []webpChunk
	for len(data) > 0 {
		if len(data) < 8 {
			return nil, fmt.Errorf("transforms: webp: truncated chunk header")
		}
		n := uint64(binary.LittleEndian.Uint32(data[4:8]))
		if n > uint64(len(data)-8) {
			return nil, fmt.Errorf("transforms: webp: %q chunk of %d bytes runs past the end of the file", data[:4], n)
		}
		out = append(out, webpChunk{string(data[:4]), data[8 : 8+n]})
		data = data[min(uint64(len(data)), 8+n+n&1):]
	}
	return out, nil
}

// webpFile wraps chunks in a RIFF WEBP header.
func webpFile(chunks ...webpChunk) []byte {
	var body []byte
	for _, c := range chunks {
		body = append(body, c.kind...)
		body = binary.LittleEndian.AppendUint32(body, uint32(len(c.data)))
		body = append(body, c.data...)
		if len(c.data)&1 == 1 {
			body = append(body, 0)
		}
	}
	out := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(4+len(body)))...)
	return append(append(out, "WEBP"...), body...)
}

func u24(b []byte) int { return int(b[0]) | int(b[1])<<8 | int(b[2])<<16 }

// decodeAnimatedWebP returns the first frame of an animated WebP as libwebp's
// WebPAnimDecoder gives it to Pillow: the frame, decoded like a still image,
// placed at its offset on a canvas of transparent black. data is the whole
// file, whose VP8X chunk has the animation flag; image.DecodeConfig has
// checked the canvas against the pixel limit.
//
// The canvas size is in the VP8X payload (flags, 3 reserved bytes, width-1
// and height-1 in 3 bytes each). Each frame is an ANMF chunk: X/2, Y/2,
// width-1, height-1 and duration in 3 bytes each, a flags byte, then the
// frame's own ALPH and VP8 chunks or its VP8L chunk. golang.org/x/image/webp
// reads no ANMF chunk, so the frame's chunks are given to it as a still file.
func decodeAnimatedWebP(data []byte) (image.Image, error) {
	if len(data) < 12 {
		return nil, fmt.Errorf("transforms: webp: truncated header")
	}
	chunks, err := webpChunks(data[12:])
	if err != nil {
		return nil, err
	}
	if len(chunks) == 0 || chunks[0].kind != "VP8X" || len(chunks[0].data) < 10 {
		return nil, fmt.Errorf("transforms: webp: animation without a VP8X chunk first")
	}
	cw, ch := u24(chunks[0].data[4:])+1, u24(chunks[0].data[7:])+1
	var frame []byte
	for _, c := range chunks[1:] {
		if c.kind == "ANMF" {
			frame = c.data
			break
		}
	}
	if len(frame) < 16 {
		return nil, fmt.Errorf("transforms: webp: animation without a frame")
	}
	fx, fy := 2*u24(frame[0:]), 2*u24(frame[3:])
	fw, fh := u24(frame[6:])+1, u24(frame[9:])+1
	if fx+fw > cw || fy+fh > ch {
		return nil, fmt.Errorf("transforms: webp: first frame %dx%d at (%d, %d) outside the %dx%d canvas", fw, fh, fx, fy, cw, ch)
	}
	sub, err := webpChunks(frame[16:])
	if err != nil {
		return nil, err
	}
	var alph, vp8, vp8l *webpChunk
	for i := range sub {
		switch sub[i].kind {
		case "ALPH":
			alph = &sub[i]
		case "VP8 ":
			vp8 = &sub[i]
		case "VP8L":
			vp8l = &sub[i]
		}
	}
	var still []byte
	switch {
	case vp8l != nil:
		still = webpFile(*vp8l)
	case vp8 != nil && alph != nil:
		hdr := make([]byte, 10)
		hdr[0] = 0x10 // alpha
		hdr[4], hdr[5], hdr[6] = uint8(fw-1), uint8((fw-1)>>8), uint8((fw-1)>>16)
		hdr[7], hdr[8], hdr[9] = uint8(fh-1), uint8((fh-1)>>8), uint8((fh-1)>>16)
		still = webpFile(webpChunk{"VP8X", hdr}, *alph, *vp8)
	case vp8 != nil:
		still = webpFile(*vp8)
	default:
		return nil, fmt.Errorf("transforms: webp: first frame has no image data")
	}
	// The frame's bitstream declares its own size: it must be the one the
	// ANMF header gives (and so within the canvas) before any pixel is
	// allocated.
	cfg, err := webp.DecodeConfig(bytes.NewReader(still))
	if err != nil {
		return nil, fmt.Errorf("transforms: webp: first frame: %w", err)
	}
	if cfg.Width != fw || cfg.Height != fh {
		return nil, fmt.Errorf("transforms: webp: first frame is %dx%d, its ANMF header says %dx%d", cfg.Width, cfg.Height, fw, fh)
	}
	img, err := webp.Decode(bytes.NewReader(still))
	if err != nil {
		return nil, fmt.Errorf("transforms: webp: first frame: %w", err)
	}
	if img, err = webpPixels(img); err != nil {
		return nil, err
	}
	if b := img.Bounds(); b.Dx() != fw || b.Dy() != fh {
		return nil, fmt.Errorf("transforms: webp: first frame decoded to %dx%d, its ANMF header says %dx%d", b.Dx(), b.Dy(), fw, fh)
	}
	canvas := image.NewNRGBA(image.Rect(0, 0, cw, ch))
	draw.Draw(canvas, image.Rect(fx, fy, fx+fw, fy+fh), img, img.Bounds().Min, draw.Src)
	return canvas, nil
}

// webpAlphaFlagFix returns data with the alpha flag of its VP8X chunk
// cleared when the file has a lossy VP8 chunk and no ALPH chunk:
// golang.org/x/image/webp refuses such a file, while libwebp decodes it as
// opaque (Pillow opens it as RGBA with alpha 255, and Decode returns alpha
// 255 for a lossy picture without an alpha plane). Other files are returned
// as they are.
func webpAlphaFlagFix(data []byte) []byte {
	if len(data) <= 20 || string(data[12:16]) != "VP8X" || data[20]&0x10 == 0 {
		return data
	}
	chunks, err := webpChunks(data[12:])
	if err != nil {
		return data
	}
	var vp8 bool
	for _, c := range chunks {
		switch c.kind {
		case "ALPH", "VP8L":
			return data
		case "VP8 ":
			vp8 = true
		}
	}
	if !vp8 {
		return data
	}
	out := append([]byte(nil), data...)
	out[20] &^= 0x10
	return out
}
