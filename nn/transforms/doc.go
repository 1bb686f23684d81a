// Package transforms prepares images for torchvision classifiers the way
// torchvision's weight transforms (ImageClassification) do on a PIL image:
// resize the shorter side with Pillow's antialiasing resampler, center crop,
// scale to [0, 1] and normalize per channel.
//
// Resizing reproduces Pillow's 8-bit resampler (separable filters whose
// support grows with the downscale factor, fixed-point coefficients with 22
// fractional bits, rounding to 8 bits after each pass), so PNG inputs give the
// same bytes as torchvision. JPEG inputs can differ by a level or two because
// Go's JPEG decoder and libjpeg round their inverse DCTs and chroma upsampling
// differently; the decoders, not the transforms, account for that.
//
// Decoding covers JPEG, PNG and WebP (golang.org/x/image/webp). The package
// reads only what it is given and returns errors for undecodable input.
package transforms
