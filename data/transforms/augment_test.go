package transforms

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/internal/testenv"
)

// augmentDir holds testdata/gen/augment_fixtures.py's output: torchvision's
// ColorJitter adjustments and TrivialAugmentWide operations applied by
// Pillow to small PNG images.
const augmentDir = "../../testdata/augment"

type augmentCase struct {
	Image string    `json:"image"`
	Op    string    `json:"op"`
	Args  []float64 `json:"args"`
	Out   string    `json:"out"`
}

// applyAugmentCase runs one manifest case through this package.
func applyAugmentCase(img *RGB, c augmentCase) (*RGB, error) {
	if op, ok := strings.CutPrefix(c.Op, "trivial:"); ok {
		return ApplyOp(img, op, c.Args[0])
	}
	switch c.Op {
	case "brightness":
		return AdjustBrightness(img, c.Args[0]), nil
	case "contrast":
		return AdjustContrast(img, c.Args[0]), nil
	case "saturation":
		return AdjustSaturation(img, c.Args[0]), nil
	case "hue":
		return AdjustHue(img, c.Args[0]), nil
	case "sharpness":
		return AdjustSharpness(img, c.Args[0]), nil
	case "jitter": // the order of the four adjustments, then their factors
		for _, i := range c.Args[:4] {
			f := c.Args[4+int(i)]
			img = [](func(*RGB, float64) *RGB){AdjustBrightness, AdjustContrast, AdjustSaturation, AdjustHue}[int(i)](img, f)
		}
		return img, nil
	}
	return nil, fmt.Errorf("unknown case %q", c.Op)
}

// checkAugment compares every case with Pillow's bytes: exactly. Every
// operation reproduces Pillow's arithmetic (C float where Pillow computes
// in float, double where in double, its fixed-point affine coordinates),
// so there is no rounding to allow for; a difference of one grey level
// would be a difference in that arithmetic.
func checkAugment(t *testing.T, dir string) {
	m := readManifest[struct {
		Cases []augmentCase `json:"cases"`
	}](t, dir)
	if len(m.Cases) < 50 {
		t.Fatalf("manifest has %d cases, want the full set", len(m.Cases))
	}
	images := map[string]*RGB{}
	ops := map[string]int{}
	for _, c := range m.Cases {
		img := images[c.Image]
		if img == nil {
			f, err := os.Open(filepath.Join(dir, c.Image))
			if err != nil {
				t.Fatal(err)
			}
			dec, _, err := Decode(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			img = ToRGB(dec)
			images[c.Image] = img
		}
		want, err := base64.StdEncoding.DecodeString(c.Out)
		if err != nil {
			t.Fatal(err)
		}
		got, err := applyAugmentCase(img, c)
		if err != nil {
			t.Errorf("%s %s %v: %v", c.Image, c.Op, c.Args, err)
			continue
		}
		ops[c.Op]++
		if got.W != img.W || got.H != img.H || len(got.Pix) != len(want) {
			t.Errorf("%s %s %v: got %dx%d, want %dx%d", c.Image, c.Op, c.Args, got.W, got.H, img.W, img.H)
			continue
		}
		diff, worst, first := 0, 0, -1
		for i := range want {
			d := int(got.Pix[i]) - int(want[i])
			if d != 0 {
				diff++
				worst = max(worst, d, -d)
				if first < 0 {
					first = i
				}
			}
		}
		if diff > 0 {
			p := first / 3
			t.Errorf("%s %s %v: %d of %d bytes differ from Pillow's (largest %d); first at x=%d y=%d channel %d: got %d, want %d",
				c.Image, c.Op, c.Args, diff, len(want), worst, p%img.W, p/img.W, first%3, got.Pix[first], want[first])
		}
	}
	for _, op := range TrivialAugmentOps {
		if ops["trivial:"+op] == 0 {
			t.Errorf("no case for TrivialAugmentWide's %s", op)
		}
	}
	t.Logf("%d cases", len(m.Cases))
}

func TestAugmentMatchesPillow(t *testing.T) { checkAugment(t, augmentDir) }

// TestAugmentInterop regenerates the fixtures with random images, sizes and
// factors under a fresh seed.
func TestAugmentInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping Pillow interop in -short mode")
	}
	py := testenv.Python(t)
	dir := t.TempDir()
	seed := strconv.FormatInt(time.Now().UnixNano()%1_000_000, 10)
	out, err := exec.Command(py, "../../testdata/gen/augment_fixtures.py", "--out", dir, "--seed", seed, "--count", "20").CombinedOutput()
	if err != nil {
		t.Fatalf("generator: %v\n%s", err, out)
	}
	t.Logf("seed %s", seed)
	checkAugment(t, dir)
}
