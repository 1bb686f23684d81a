package jpeg

import (
	"bytes"
	"image"
	stdjpeg "image/jpeg"
	"os"
	"path/filepath"
	"testing"
)

const fixtureDir = "../../../../testdata/transforms/jpeg"

// fuzzMaxSamples keeps each fuzz input's allocation small.
const fuzzMaxSamples = 1 << 20

// FuzzDecode checks that no input makes the decoder panic or run away, that
// what it decodes has the declared size, and that it reads back what
// image/jpeg writes of it.
func FuzzDecode(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join(fixtureDir, "*.jpg"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed files in %s: %v", fixtureDir, err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// Layouts Pillow does not write: restart intervals, a scan per
	// component, 4:4:0.
	for _, sep := range []bool{false, true} {
		b, err := Reencode(seedFile(f, "base_q75_420.jpg"), 2, sep)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(Synthesize(19, 21, [3][2]int{{1, 2}, {1, 1}, {1, 1}}, 1, 3))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := DecodeLimit(data, fuzzMaxSamples)
		if err != nil {
			return
		}
		b := img.Bounds()
		if b.Min != (image.Point{}) || b.Dx() < 1 || b.Dy() < 1 || b.Dx() > MaxSide || b.Dy() > MaxSide {
			t.Fatalf("decoded bounds %v", b)
		}
		switch m := img.(type) {
		case *image.Gray:
			if len(m.Pix) < m.Stride*(b.Dy()-1)+b.Dx() {
				t.Fatalf("gray plane of %d bytes for %v", len(m.Pix), b)
			}
		case *image.CMYK:
			if len(m.Pix) < m.Stride*(b.Dy()-1)+4*b.Dx() {
				t.Fatalf("CMYK image of %d bytes for %v", len(m.Pix), b)
			}
		case *image.YCbCr:
			_ = m.At(b.Dx()-1, b.Dy()-1) // panics if a plane is short
		default:
			t.Fatalf("decoded a %T", img)
		}
		var buf bytes.Buffer
		if err := stdjpeg.Encode(&buf, img, nil); err != nil {
			t.Fatal(err)
		}
		back, err := DecodeLimit(buf.Bytes(), fuzzMaxSamples)
		if err != nil {
			t.Fatalf("reading back image/jpeg's encoding: %v", err)
		}
		if back.Bounds() != b {
			t.Fatalf("read back %v, wrote %v", back.Bounds(), b)
		}
	})
}

func seedFile(f *testing.F, name string) []byte {
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		f.Fatal(err)
	}
	return b
}
