// Package transforms prepares images for torchvision classifiers the way
// torchvision's weight transforms (ImageClassification) do on a PIL image:
// resize the shorter side with Pillow's antialiasing resampler, center crop,
// scale to [0, 1] and normalize per channel.
//
// Resizing reproduces Pillow's 8-bit resampler (separable filters whose
// support grows with the downscale factor, fixed-point coefficients with 22
// fractional bits, rounding to 8 bits after each pass), so PNG inputs give the
// same bytes as torchvision. JPEG inputs do too: Decode uses its own JPEG
// decoder (internal/jpeg) with libjpeg's integer inverse DCT, and ToRGB
// libjpeg's chroma upsampling and colour conversion, CMYK and YCCK files
// included, with any sampling factors libjpeg reads. JPEG kinds that decoder
// leaves to image/jpeg (arithmetic coding, 12-bit or RGB-coded files, or
// three components sampled other than 4:4:4, 4:2:2, 4:2:0 and 4:4:0) can
// differ by a few levels.
//
// Decoding covers JPEG, PNG and WebP, and Decode followed by ToRGB gives the
// bytes of Pillow's Image.open(f).convert("RGB") (checked against Pillow 9.4
// with libwebp 1.2.4 by the fixtures of testdata/gen/pillow_decode_fixtures.py):
//
//   - Lossy WebP (VP8, also inside VP8X, with or without an ALPH chunk):
//     golang.org/x/image/webp decodes the YUV 4:2:0 planes, which equal
//     libwebp's, and this package upsamples the chroma and converts to RGB
//     with libwebp's fancy upsampler and fixed-point limited-range BT.601
//     (webp.go). Alpha is kept as non-premultiplied RGBA, as libwebp gives
//     it to Pillow; convert("RGB") drops it.
//   - Lossless WebP (VP8L) decodes to exact RGBA.
//   - Animated WebP gives its first frame placed on a transparent black
//     canvas, as libwebp's animation decoder gives it to Pillow.
//   - PNG of every colour type and bit depth, interlaced or not, with or
//     without tRNS, as Pillow opens it: 1-, 2- and 4-bit gray scaled to 8
//     bits; 16-bit gray is Pillow's mode "I", which convert("RGB") clips to
//     [0, 255] (values above 255 become white); 16-bit colour, gray+alpha and
//     RGBA keep the high byte of each sample; palette indexes past the PLTE
//     chunk take Pillow's default gray; transparency keys (tRNS) do not change
//     the colour.
//
// The package reads only what it is given and returns errors for
// undecodable input.
package transforms
