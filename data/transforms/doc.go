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
// libjpeg's chroma upsampling and colour conversion. JPEG kinds that decoder
// leaves to image/jpeg (arithmetic coding, 12-bit, CMYK or RGB-coded files,
// sampling other than 4:4:4, 4:2:2, 4:2:0 and 4:4:0) can differ by a few
// levels.
//
// Decoding covers JPEG, PNG and WebP (golang.org/x/image/webp). The package
// reads only what it is given and returns errors for undecodable input.
package transforms
