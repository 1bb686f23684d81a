package jpeg

import (
	"bytes"
	"image"
	stdjpeg "image/jpeg"
	"testing"
)

// benchFile is a 1024×768 4:2:0 baseline JPEG of a smooth pattern with
// noise, written by image/jpeg.
func benchFile(b *testing.B) []byte {
	b.Helper()
	img := image.NewYCbCr(image.Rect(0, 0, 1024, 768), image.YCbCrSubsampleRatio420)
	seed := uint32(1)
	for i := range img.Y {
		seed = seed*1664525 + 1013904223
		img.Y[i] = uint8(i%1024/4 + int(seed>>28))
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = uint8(i%512/2), uint8(i/512)
	}
	var buf bytes.Buffer
	if err := stdjpeg.Encode(&buf, img, &stdjpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkDecode compares this decoder with image/jpeg on the same file.
func BenchmarkDecode(b *testing.B) {
	data := benchFile(b)
	b.Run("islow", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := Decode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("image-jpeg", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := stdjpeg.Decode(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
