// Package jpeg decodes JPEG images to the samples libjpeg(-turbo) gives
// Pillow, so that package transforms, converting them to RGB as Pillow does,
// gives Pillow's bytes. Three-component images come back at component
// resolution, for package transforms to upsample and convert (ycbcr.go)
// with this package's Upsample and YCbCrToRGB; four-component ones come
// back upsampled and converted to CMYK.
//
// The inverse DCT is libjpeg's default "islow" integer transform (jidctint.c):
// 13-bit fixed-point constants, two passes with 2 extra bits of precision
// after the first, round-half-up descaling and libjpeg's range limiting
// (the result is taken modulo 1024 before clamping to 0..255).
//
// Supported: baseline and extended sequential Huffman (SOF0, SOF1) and
// progressive Huffman (SOF2) with spectral selection and successive
// approximation, 8-bit samples, restart intervals, one component (returned as
// *image.Gray), three YCbCr components (returned as *image.YCbCr) whose
// chroma is subsampled 4:4:4, 4:2:2, 4:2:0 or 4:4:0, its planes at
// component resolution, or four components, CMYK or YCCK (an Adobe marker
// with a non-zero transform), with any sampling factors that divide the
// largest ones (returned as *image.CMYK). Each of four components is
// upsampled to full resolution as libjpeg-turbo does it (Upsample:
// jdsample.c's fancy filters for halved components, replication
// otherwise), YCCK converted to CMYK with the YCbCr -> RGB tables
// (jdcolor.c), and the result inverted as Pillow reads every CMYK JPEG.
// DecodeConfig reads the frame header only.
//
// Not supported, reported with an error wrapping ErrUnsupported so a caller
// can fall back to another decoder: arithmetic coding, lossless and
// hierarchical frames, 12-bit samples, 2 components, RGB-coded
// three-component images (Adobe transform 0 or component ids 'R','G','B'),
// other sampling layouts of three components, four-component factors that
// do not divide the largest (libjpeg refuses those too), DNL markers, and
// progressive files
// whose scans leave low-frequency coefficients incomplete (libjpeg smooths
// those blocks; this package does not).
//
// Input is untrusted: frame sizes are checked against MaxSide and a sample
// budget before any plane is allocated, the number of scans is bounded, and a
// truncated or corrupt entropy-coded segment is an error (libjpeg instead pads
// it with zeros and warns).
package jpeg
