package transforms

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// fuzzMaxPixels keeps each fuzz input's allocation and time small: 128x128
// pixels. The two largest seeds (wide.png, tall_odd.png, about 50,000
// pixels each) are over it, so their mutations exercise the limit's
// refusal rather than decode 130 KB of pixels per execution.
const fuzzMaxPixels = 1 << 14

// FuzzDecode checks that no input makes Decode panic or run away, that what
// it decodes has the size the header declares and converts to that many RGB
// pixels, and that the RGB pixels survive a PNG write and read back. It is
// seeded with the WebP, PNG and JPEG fixtures of testdata/transforms.
func FuzzDecode(f *testing.F) {
	var seeds []string
	for _, pat := range []string{"*.png", "*.webp", "*.jpg", "jpeg/*.jpg", "pillow/*.png", "pillow/*.webp"} {
		m, err := filepath.Glob(filepath.Join(fixtureDir, pat))
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, m...)
	}
	if len(seeds) < 30 {
		f.Fatalf("found %d seed files in %s", len(seeds), fixtureDir)
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, format, err := decode(bytes.NewReader(data), fuzzMaxPixels)
		if err != nil {
			return
		}
		cfg, _, err := decodeConfig(data)
		if err != nil {
			t.Fatalf("decoded a %s that DecodeConfig refuses: %v", format, err)
		}
		b := img.Bounds()
		if b.Dx() != cfg.Width || b.Dy() != cfg.Height || int64(b.Dx())*int64(b.Dy()) > fuzzMaxPixels {
			t.Fatalf("decoded %v, header says %dx%d", b, cfg.Width, cfg.Height)
		}
		rgb := ToRGB(img)
		if rgb.W != b.Dx() || rgb.H != b.Dy() || len(rgb.Pix) != 3*rgb.W*rgb.H {
			t.Fatalf("ToRGB gave %dx%d with %d bytes for %v", rgb.W, rgb.H, len(rgb.Pix), b)
		}
		out := image.NewRGBA(image.Rect(0, 0, rgb.W, rgb.H))
		for i := range rgb.W * rgb.H {
			copy(out.Pix[4*i:], rgb.Pix[3*i:3*i+3])
			out.Pix[4*i+3] = 0xff
		}
		var buf bytes.Buffer
		// No compression: the round trip checks the pixels, and deflating
		// them took half of each execution's time.
		enc := png.Encoder{CompressionLevel: png.NoCompression}
		if err := enc.Encode(&buf, out); err != nil {
			t.Fatal(err)
		}
		back, _, err := decode(&buf, fuzzMaxPixels)
		if err != nil {
			t.Fatalf("reading back image/png's encoding: %v", err)
		}
		if got := ToRGB(back); !bytes.Equal(got.Pix, rgb.Pix) {
			t.Fatalf("RGB pixels changed through a PNG round trip")
		}
	})
}
