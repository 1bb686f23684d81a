package jpeg_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/data/transforms"
	"github.com/ckptkit/ckpt/data/transforms/internal/jpeg"
	"github.com/ckptkit/ckpt/internal/testenv"
)

// The fixtures are written by testdata/gen/jpeg_fixtures.py: JPEG files saved
// by Pillow (or, for YCCK and subsampled CMYK, which Pillow cannot write, by
// its small encoder jpeg_encoder.py) and Pillow's own RGB decoding of each
// (libjpeg-turbo's islow IDCT, fancy upsampling and fixed-point colour
// conversion), with its CMYK samples for four-component files.
const fixtureDir = "../../../../testdata/transforms/jpeg"

type pillowCase struct {
	Name    string         `json:"name"`
	Width   int            `json:"width"`
	Height  int            `json:"height"`
	Options map[string]any `json:"options"`
}

func loadCases(t *testing.T, dir string) []pillowCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Cases []pillowCase `json:"pillow_decodes"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Cases) == 0 {
		t.Fatal("manifest has no cases")
	}
	return m.Cases
}

// firstDiff describes the first pixel where RGB images got and want differ.
func firstDiff(got, want []byte, w int) string { return firstDiffN(got, want, w, 3) }

// firstDiffN describes the first pixel where got and want, images of n
// channels, differ.
func firstDiffN(got, want []byte, w, n int) string {
	count, maxd := 0, 0
	first := -1
	for i := range want {
		if d := int(got[i]) - int(want[i]); d != 0 {
			if first < 0 {
				first = i
			}
			count++
			maxd = max(maxd, d, -d)
		}
	}
	p := first / n
	return fmt.Sprintf("%d of %d bytes differ (max %d levels); first at x=%d y=%d channel %d: got %d, want %d",
		count, len(want), maxd, p%w, p/w, first%n, got[first], want[first])
}

func runPillowCases(t *testing.T, dir string, cases []pillowCase) {
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%dx%d/%v", c.Name, c.Width, c.Height, c.Options), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, c.Name+".jpg"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join(dir, c.Name+".rgb"))
			if err != nil {
				t.Fatal(err)
			}
			img, err := jpeg.Decode(data)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if cfg, err := jpeg.DecodeConfig(data); err != nil || cfg.Width != c.Width || cfg.Height != c.Height || cfg.ColorModel != img.ColorModel() {
				t.Fatalf("DecodeConfig: %dx%d, %v", cfg.Width, cfg.Height, err)
			}
			if got := img.Bounds(); got != image.Rect(0, 0, c.Width, c.Height) {
				t.Fatalf("got bounds %v, want %dx%d", got, c.Width, c.Height)
			}
			rgb := transforms.ToRGB(img)
			if len(rgb.Pix) != len(want) {
				t.Fatalf("got %d bytes, want %d", len(rgb.Pix), len(want))
			}
			if !bytes.Equal(rgb.Pix, want) {
				t.Fatalf("pixels differ from Pillow's: %s", firstDiff(rgb.Pix, want, c.Width))
			}
			// Four components: Pillow's CMYK samples too, where a dark K
			// would hide a difference in the RGB bytes.
			if wantCMYK, err := os.ReadFile(filepath.Join(dir, c.Name+".cmyk")); err == nil {
				m, ok := img.(*image.CMYK)
				if !ok {
					t.Fatalf("decoded a %T, want *image.CMYK", img)
				}
				var got []byte
				for y := range c.Height {
					got = append(got, m.Pix[y*m.Stride:][:4*c.Width]...)
				}
				if !bytes.Equal(got, wantCMYK) {
					t.Fatalf("CMYK samples differ from Pillow's: %s", firstDiffN(got, wantCMYK, c.Width, 4))
				}
			} else if !os.IsNotExist(err) {
				t.Fatal(err)
			}
			// transforms.Decode must take this decoder, not image/jpeg.
			timg, format, err := transforms.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if got := transforms.ToRGB(timg).Pix; format != "jpeg" || !bytes.Equal(got, want) {
				t.Fatalf("transforms.Decode: format %q, pixels differ from Pillow's", format)
			}
		})
	}
}

func TestPillowFixtures(t *testing.T) {
	runPillowCases(t, fixtureDir, loadCases(t, fixtureDir))
}

// TestPillowInterop writes random images with random encoder options through
// Pillow with a fresh seed and checks the decoder against Pillow's decoding.
func TestPillowInterop(t *testing.T) {
	py := testenv.Python(t)
	dir := t.TempDir()
	seed := strconv.FormatInt(time.Now().UnixNano()%1_000_000, 10)
	out, err := exec.Command(py, "../../../../testdata/gen/jpeg_fixtures.py", "--out", dir, "--seed", seed, "--count", "40").CombinedOutput()
	if err != nil {
		t.Fatalf("generator: %v\n%s", err, out)
	}
	t.Logf("seed %s", seed)
	cases := loadCases(t, dir)
	runPillowCases(t, dir, cases)

	// The same coefficients re-encoded with restart markers, half of them
	// with one scan per component (neither of which Pillow 9 writes), decoded
	// by Pillow again.
	var rst []pillowCase
	var paths []string
	for i, c := range cases {
		data, err := os.ReadFile(filepath.Join(dir, c.Name+".jpg"))
		if err != nil {
			t.Fatal(err)
		}
		interval := 1 + i%5
		re, err := jpeg.Reencode(data, interval, i%2 == 1)
		if err != nil {
			t.Fatal(err)
		}
		c.Name += "_rst"
		c.Options = map[string]any{"restart_interval": interval, "scan_per_component": i%2 == 1}
		p := filepath.Join(dir, c.Name+".jpg")
		if err := os.WriteFile(p, re, 0o644); err != nil {
			t.Fatal(err)
		}
		rst, paths = append(rst, c), append(paths, p)
	}
	args := append([]string{"../../../../testdata/gen/jpeg_fixtures.py", "--decode"}, paths...)
	if out, err := exec.Command(py, args...).CombinedOutput(); err != nil {
		t.Fatalf("generator --decode: %v\n%s", err, out)
	}
	runPillowCases(t, dir, rst)
}

// TestPillowSamplingInterop checks sampling layouts Pillow cannot write
// (4:4:0, and layouts whose luma factors are not 1 or 2) and images at most
// 4 pixels wide, whose subsampled chroma libjpeg replicates instead of
// filtering, on files with random coefficients, decoded by Pillow.
func TestPillowSamplingInterop(t *testing.T) {
	py := testenv.Python(t)
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	layouts := []struct {
		name    string
		factors [3][2]int
	}{
		{"440", [3][2]int{{1, 2}, {1, 1}, {1, 1}}},
		{"440_y2x2", [3][2]int{{2, 2}, {2, 1}, {2, 1}}},
		{"420", [3][2]int{{2, 2}, {1, 1}, {1, 1}}},
		{"422_y2x2", [3][2]int{{2, 2}, {1, 2}, {1, 2}}},
		{"444_y2x1", [3][2]int{{2, 1}, {2, 1}, {2, 1}}},
	}
	var cases []pillowCase
	var paths []string
	for i, l := range layouts {
		for j, size := range [][2]int{{37, 23}, {16, 16}, {9, 61}, {70, 5}, {1, 9}, {2, 3}, {3, 1}, {4, 9}, {5, 2}, {40, 1}} {
			c := pillowCase{Name: fmt.Sprintf("%s_%d", l.name, j), Width: size[0], Height: size[1],
				Options: map[string]any{"factors": l.factors}}
			p := filepath.Join(dir, c.Name+".jpg")
			data := jpeg.Synthesize(size[0], size[1], l.factors, seed+uint64(10*i+j), 1+j*3)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			cases, paths = append(cases, c), append(paths, p)
		}
	}
	args := append([]string{"../../../../testdata/gen/jpeg_fixtures.py", "--decode"}, paths...)
	if out, err := exec.Command(py, args...).CombinedOutput(); err != nil {
		t.Fatalf("generator --decode: %v\n%s", err, out)
	}
	runPillowCases(t, dir, cases)
}
