package jpeg

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// markerAt returns the offset of the first marker m after SOI.
func markerAt(t *testing.T, data []byte, m byte) int {
	t.Helper()
	i := bytes.Index(data[2:], []byte{0xff, m})
	if i < 0 {
		t.Fatalf("no marker 0x%02x", m)
	}
	return i + 2
}

// patched returns a copy of data with b written at offset i.
func patched(data []byte, i int, b ...byte) []byte {
	out := bytes.Clone(data)
	copy(out[i:], b)
	return out
}

func TestDecodeErrors(t *testing.T) {
	base := readFixture(t, "base_q75_420.jpg")
	prog := readFixture(t, "prog_q50_420.jpg")
	sof := markerAt(t, base, 0xc0)
	// prog without its last scan: the final luma refinement is missing.
	lastScan := bytes.LastIndex(prog, []byte{0xff, 0xda})
	partial := append(bytes.Clone(prog[:lastScan]), 0xff, 0xd9)
	// SOF payload: length(2) precision(1) height(2) width(2) count(1) ...
	cases := []struct {
		name        string
		data        []byte
		limit       int
		unsupported bool
		msg         string
	}{
		{"empty", nil, 0, false, "missing SOI"},
		{"png", []byte("\x89PNG\r\n\x1a\n"), 0, false, "missing SOI"},
		{"only SOI", []byte{0xff, 0xd8}, 0, false, "truncated"},
		{"no EOI", base[:len(base)-2], 0, false, "truncated"},
		{"no frame", []byte{0xff, 0xd8, 0xff, 0xd9}, 0, false, "no image data"},
		{"truncated baseline", base[:len(base)*2/3], 0, false, "truncated"},
		{"truncated progressive", prog[:len(prog)*2/3], 0, false, "jpeg: "},
		{"width over MaxSide", patched(base, sof+7, 0x40, 0x01), 0, false, "outside 1..16384 per side: image too large"},
		{"zero width", patched(base, sof+7, 0, 0), 0, false, "outside 1..16384"},
		{"over sample budget", base, 1000, false, "over the limit of 1000: image too large"},
		{"progressive, refinement missing", partial, 0, true, "incomplete coefficients"},
		{"arithmetic coding", patched(base, sof+1, 0xc9), 0, true, "SOF9"},
		{"lossless", patched(base, sof+1, 0xc3), 0, true, "SOF3"},
		{"12-bit", patched(base, sof+4, 12), 0, true, "12-bit"},
		{"sampling 4:1:1", patched(base, sof+11, 0x41), 0, true, "sampling factors"},
		{"four components", patched(base, sof+9, 4), 0, false, "bad SOF length"},
		{"undefined Huffman table", patched(base, markerAt(t, base, 0xda)+6, 0x33), 0, false, "undefined Huffman table"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			limit := c.limit
			if limit == 0 {
				limit = DefaultMaxSamples
			}
			img, err := DecodeLimit(c.data, limit)
			if err == nil {
				t.Fatalf("got an image %v, want an error", img.Bounds())
			}
			if !strings.HasPrefix(err.Error(), "jpeg: ") || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("got error %q, want one containing %q", err, c.msg)
			}
			if got := errors.Is(err, ErrUnsupported); got != c.unsupported {
				t.Errorf("got errors.Is(err, ErrUnsupported) = %v, want %v", got, c.unsupported)
			}
		})
	}
}

// TestFourComponentLayouts checks what four-component sampling factors are
// refused (those that do not divide the largest, which libjpeg refuses too)
// and that the upsampled planes of subsampled components count against the
// sample budget.
func TestFourComponentLayouts(t *testing.T) {
	data := readFixture(t, "cmyk_h2v1.jpg") // factors 2x1, 1x1, 2x1, 1x1
	sof := markerAt(t, data, 0xc0)
	// SOF payload after the marker: length(2) precision(1) height(2)
	// width(2) count(1), then id, factors, table for each component.
	bad := patched(data, sof+14, 0x31) // component 1 3x1: 2 does not divide 3
	if _, err := Decode(bad); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "sampling factors 2x1 of 3x1") {
		t.Errorf("3x1 beside 2x1: got %v, want an unsupported sampling error", err)
	}
	d := &decoder{data: data, maxSamples: DefaultMaxSamples}
	if err := d.decode(); err != nil {
		t.Fatal(err)
	}
	planes := int(d.samples) // the block-padded planes alone
	upsampled := 0
	for _, c := range d.comps {
		if c.h != d.hmax || c.v != d.vmax {
			upsampled += d.width * d.height
		}
	}
	if upsampled == 0 {
		t.Fatal("fixture has no subsampled component")
	}
	if _, err := DecodeLimit(data, planes+upsampled-1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("budget one short of planes and upsampled planes: got %v, want ErrTooLarge", err)
	}
	if _, err := DecodeLimit(data, planes+upsampled); err != nil {
		t.Errorf("budget of planes and upsampled planes: %v", err)
	}
}

// stripJFIF removes the APP0 segment that follows SOI.
func stripJFIF(t *testing.T, data []byte) []byte {
	t.Helper()
	if data[2] != 0xff || data[3] != 0xe0 {
		t.Fatal("fixture does not start with APP0")
	}
	n := int(data[4])<<8 | int(data[5])
	return append([]byte{0xff, 0xd8}, data[4+n:]...)
}

// TestColorSpaceGuess checks libjpeg's rule for three components without a
// JFIF marker: ids 'R','G','B' or an Adobe transform of 0 mean RGB-coded,
// which is left to other decoders.
func TestColorSpaceGuess(t *testing.T) {
	plain := stripJFIF(t, readFixture(t, "base_q50_444.jpg"))
	sof := markerAt(t, plain, 0xc0)
	rgbIDs := patched(patched(patched(plain, sof+10, 'R'), sof+13, 'G'), sof+16, 'B')
	// The scan names components by id too.
	sos := markerAt(t, rgbIDs, 0xda)
	rgbIDs = patched(patched(patched(rgbIDs, sos+5, 'R'), sos+7, 'G'), sos+9, 'B')
	adobe := func(transform byte) []byte {
		app14 := []byte{0xff, 0xee, 0, 14, 'A', 'd', 'o', 'b', 'e', 0, 100, 0, 0, 0, 0, transform}
		return append(append([]byte{0xff, 0xd8}, app14...), plain[2:]...)
	}
	for _, c := range []struct {
		name        string
		data        []byte
		unsupported bool
	}{
		{"ids 1,2,3", plain, false},
		{"ids R,G,B", rgbIDs, true},
		{"Adobe transform 0", adobe(0), true},
		{"Adobe transform 1", adobe(1), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.data)
			if got := errors.Is(err, ErrUnsupported); got != c.unsupported || (err != nil && !got) {
				t.Fatalf("got error %v, want unsupported %v", err, c.unsupported)
			}
		})
	}
}

// TestTruncatedNeverDecodes cuts a file at every length: each cut must be an
// error, never an image.
func TestTruncatedNeverDecodes(t *testing.T) {
	for _, name := range []string{"base_q50_444.jpg", "prog_q85_422.jpg", "gray_prog_q50.jpg"} {
		data := readFixture(t, name)
		if _, err := Decode(data); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for n := range len(data) - 1 {
			if img, err := Decode(data[:n]); err == nil {
				t.Fatalf("%s cut to %d of %d bytes decoded to %v, want an error", name, n, len(data), img.Bounds())
			}
		}
	}
}
