package transforms

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/data/transforms/internal/jpeg"
	"github.com/ckptkit/ckpt/internal/testenv"
)

// The fixtures are made by testdata/gen/transforms_fixtures.py with
// torchvision's own ImageClassification transform on Pillow images.
const fixtureDir = "../../testdata/transforms"

type refCase struct {
	Image         string    `json:"image"`
	Resize        int       `json:"resize"`
	Crop          int       `json:"crop"`
	Interpolation string    `json:"interpolation"`
	Mean          []float64 `json:"mean"`
	Std           []float64 `json:"std"`
	Resized       [2]int    `json:"resized"`
	CropSHA       string    `json:"crop_u8_sha256"`
	SHA           string    `json:"sha256"`
	DecodedSHA    string    `json:"decoded_sha256"`
	Values        []float64 `json:"values"`
}

// readManifest decodes dir/manifest.json, the index every fixture generator
// of this package writes, into a T.
func readManifest[T any](t *testing.T, dir string) T {
	t.Helper()
	var m T
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func loadManifest(t *testing.T, dir string) []refCase {
	t.Helper()
	m := readManifest[struct {
		Cases []refCase `json:"cases"`
	}](t, dir)
	if len(m.Cases) == 0 {
		t.Fatal("manifest has no cases")
	}
	return m.Cases
}

func hashFloats(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func chw(img *RGB) []byte {
	n := img.W * img.H
	out := make([]byte, 3*n)
	for i := range n {
		for c := range 3 {
			out[c*n+i] = img.Pix[3*i+c]
		}
	}
	return out
}

func hexSHA(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func runCases(t *testing.T, dir string, cases []refCase) {
	for _, c := range cases {
		name := c.Image + "/" + c.Interpolation + "/" + strconv.Itoa(c.Resize) + "-" + strconv.Itoa(c.Crop)
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(filepath.Join(dir, c.Image))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, format, err := Decode(f)
			if err != nil {
				t.Fatal(err)
			}
			p := ImageClassification{ResizeSize: c.Resize, CropSize: c.Crop, Interpolation: Interpolation(c.Interpolation)}
			for i := range 3 {
				p.Mean[i], p.Std[i] = float32(c.Mean[i]), float32(c.Std[i])
			}
			rgb := ToRGB(img)
			// JPEG is exact wherever internal/jpeg decodes the file; only
			// the kinds it hands to image/jpeg keep a tolerance.
			lossy := format == "jpeg" && jpegFallback(t, filepath.Join(dir, c.Image))
			if got := hexSHA(rgb.Pix); got != c.DecodedSHA && !lossy {
				t.Fatalf("decoded %s pixels differ from Pillow's", format)
			}
			w, h := ResizedSize(rgb.W, rgb.H, c.Resize)
			if w != c.Resized[0] || h != c.Resized[1] {
				t.Fatalf("resized to %dx%d, torchvision %dx%d", w, h, c.Resized[0], c.Resized[1])
			}
			got, err := p.Apply(img)
			if err != nil {
				t.Fatal(err)
			}
			if want := 3 * c.Crop * c.Crop; len(got) != want {
				t.Fatalf("got %d values, want %d", len(got), want)
			}
			if !lossy {
				// Lossless input: Pillow's resampler is reproduced exactly,
				// so every byte of the crop and every float must be equal.
				r, err := Resize(rgb, w, h, p.Interpolation)
				if err != nil {
					t.Fatal(err)
				}
				if hexSHA(chw(CenterCrop(r, c.Crop, c.Crop))) != c.CropSHA {
					t.Fatalf("resized and cropped pixels differ from torchvision's")
				}
				if hashFloats(got) != c.SHA {
					t.Fatalf("normalized tensor differs from torchvision's")
				}
				return
			}
			// JPEG kinds internal/jpeg hands to image/jpeg (arithmetic
			// coding, 12-bit, RGB-coded, unusual three-component
			// sampling): Go's inverse DCT
			// rounds differently from libjpeg's, so decoded pixels differ by
			// a level here and there. Allow 3 levels at worst and a quarter
			// level on average, in units of the normalized output (one level
			// is 1/255/std).
			if len(c.Values) != len(got) {
				t.Fatalf("reference has %d values, got %d", len(c.Values), len(got))
			}
			minStd := math.Min(c.Std[0], math.Min(c.Std[1], c.Std[2]))
			maxAbs, sum := 0.0, 0.0
			for i, v := range got {
				d := math.Abs(float64(v) - c.Values[i])
				maxAbs = math.Max(maxAbs, d)
				sum += d
			}
			t.Logf("max abs err %.4f, mean %.5f (one level is %.4f)", maxAbs, sum/float64(len(got)), 1/255.0/minStd)
			if limit := 3 / 255.0 / minStd; maxAbs > limit {
				t.Errorf("max |err| %.4f, want <= %.4f", maxAbs, limit)
			}
			if mean, limit := sum/float64(len(got)), 0.25/255.0/minStd; mean > limit {
				t.Errorf("mean |err| %.5f, want <= %.5f", mean, limit)
			}
		})
	}
}

// jpegFallback reports whether Decode hands the JPEG file at path to
// image/jpeg because internal/jpeg does not support it.
func jpegFallback(t *testing.T, path string) bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = jpeg.Decode(data)
	if err != nil && !errors.Is(err, jpeg.ErrUnsupported) {
		t.Fatalf("internal/jpeg: %v", err)
	}
	return err != nil
}

func TestTorchvisionFixtures(t *testing.T) {
	runCases(t, fixtureDir, loadManifest(t, fixtureDir))
}

// TestTorchvisionInterop regenerates random images, sizes and presets with a
// fresh seed and checks them against torchvision.
func TestTorchvisionInterop(t *testing.T) {
	py := testenv.Python(t)
	dir := t.TempDir()
	seed := strconv.FormatInt(time.Now().UnixNano()%1_000_000, 10)
	out, err := exec.Command(py, "../../testdata/gen/transforms_fixtures.py", "--out", dir, "--seed", seed, "--count", "12").CombinedOutput()
	if err != nil {
		t.Fatalf("generator: %v\n%s", err, out)
	}
	t.Logf("seed %s", seed)
	runCases(t, dir, loadManifest(t, dir))
}

func TestDecodeRejects(t *testing.T) {
	for _, in := range []string{"", "not an image", "\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\xff\xff\xff\xff\xff\xff\xff\xff\x08\x02\x00\x00\x00"} {
		if _, _, err := Decode(strings.NewReader(in)); err == nil {
			t.Errorf("Decode(%q) succeeded", in)
		}
	}
}
