// Package jpeg decodes JPEG images to the sample planes libjpeg(-turbo)
// produces before chroma upsampling, so that colour conversion done the
// libjpeg way (package transforms, ycbcr.go) gives the same bytes as Pillow.
//
// The inverse DCT is libjpeg's default "islow" integer transform (jidctint.c):
// 13-bit fixed-point constants, two passes with 2 extra bits of precision
// after the first, round-half-up descaling and libjpeg's range limiting
// (the result is taken modulo 1024 before clamping to 0..255).
//
// Supported: baseline and extended sequential Huffman (SOF0, SOF1) and
// progressive Huffman (SOF2) with spectral selection and successive
// approximation, 8-bit samples, restart intervals, one component (returned as
// *image.Gray), four CMYK components at full resolution (returned as
// *image.CMYK, inverted as Pillow reads every CMYK JPEG), or three YCbCr
// components (returned as *image.YCbCr) whose chroma is subsampled 4:4:4,
// 4:2:2, 4:2:0 or 4:4:0, its planes at component resolution. Upsample and
// YCbCrToRGB are libjpeg-turbo's chroma upsampling and colour conversion,
// which package transforms applies to those planes.
//
// Not supported, reported with an error wrapping ErrUnsupported so a caller
// can fall back to another decoder: arithmetic coding, lossless and
// hierarchical frames, 12-bit samples, 2 components, YCCK (four components
// with an Adobe transform other than 0) and subsampled CMYK, RGB-coded
// three-component images (Adobe transform 0 or component ids 'R','G','B'),
// other sampling layouts, DNL markers, and progressive files
// whose scans leave low-frequency coefficients incomplete (libjpeg smooths
// those blocks; this package does not).
//
// Input is untrusted: frame sizes are checked against MaxSide and a sample
// budget before any plane is allocated, the number of scans is bounded, and a
// truncated or corrupt entropy-coded segment is an error (libjpeg instead pads
// it with zeros and warns).
package jpeg
