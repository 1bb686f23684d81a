package transforms

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/image/webp"

	"github.com/ckptkit/ckpt/internal/testenv"
)

// The fixtures in pillowDir are made by testdata/gen/pillow_decode_fixtures.py:
// WebP files written by Pillow's encoder and PNG files of every colour type and
// bit depth, each with Pillow's convert("RGB") of it.
const pillowDir = "../../testdata/transforms/pillow"

type pillowFile struct {
	File    string          `json:"file"`
	Width   int             `json:"width"`
	Height  int             `json:"height"`
	Mode    string          `json:"mode"`
	Format  string          `json:"format"`
	Options json.RawMessage `json:"options"`
	Alpha   string          `json:"alpha_sha256"`
	YUV     []string        `json:"yuv_sha256"`
	Frames  int             `json:"frames"`
}

func loadPillowManifest(t *testing.T, dir string) []pillowFile {
	t.Helper()
	m := readManifest[struct {
		Files []pillowFile `json:"files"`
	}](t, dir)
	if len(m.Files) == 0 {
		t.Fatal("manifest lists no files")
	}
	return m.Files
}

// alphaPlane returns the 8-bit alpha of the images Decode returns with an
// alpha channel, as Pillow's mode RGBA or LA holds it (the high byte of a
// 16-bit alpha).
func alphaPlane(t *testing.T, img image.Image) []byte {
	t.Helper()
	b := img.Bounds()
	out := make([]byte, 0, b.Dx()*b.Dy())
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			switch m := img.(type) {
			case *image.NRGBA:
				out = append(out, m.NRGBAAt(x, y).A)
			case *image.NRGBA64:
				out = append(out, uint8(m.NRGBA64At(x, y).A>>8))
			default:
				t.Fatalf("decoded a %T, want an image with non-premultiplied alpha", img)
			}
		}
	}
	return out
}

// planes420 returns the Y, Cb and Cr planes of a 4:2:0 image cropped to the
// picture, in the layout of libwebp's WebPDecodeYUV.
func planes420(m *image.YCbCr) [3][]byte {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	cw, ch := (w+1)/2, (h+1)/2
	var p [3][]byte
	for y := range h {
		p[0] = append(p[0], m.Y[m.YOffset(m.Rect.Min.X, m.Rect.Min.Y+y):][:w]...)
	}
	for y := range ch {
		p[1] = append(p[1], m.Cb[y*m.CStride:][:cw]...)
		p[2] = append(p[2], m.Cr[y*m.CStride:][:cw]...)
	}
	return p
}

func runPillowFiles(t *testing.T, dir string, files []pillowFile) {
	for _, f := range files {
		t.Run(f.File, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, f.File))
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join(dir, f.File[:len(f.File)-len(filepath.Ext(f.File))]+".rgb"))
			if err != nil {
				t.Fatal(err)
			}
			if len(f.YUV) == 3 {
				// The VP8 decoding itself: golang.org/x/image/webp's planes
				// against libwebp's WebPDecodeYUV.
				m, err := webp.Decode(bytes.NewReader(webpAlphaFlagFix(data)))
				if err != nil {
					t.Fatal(err)
				}
				var ycc *image.YCbCr
				switch m := m.(type) {
				case *image.YCbCr:
					ycc = m
				case *image.NYCbCrA:
					ycc = &m.YCbCr
				default:
					t.Fatalf("x/image/webp decoded a lossy file to %T", m)
				}
				for i, p := range planes420(ycc) {
					if got := hexSHA(p); got != f.YUV[i] {
						t.Errorf("%c plane differs from libwebp's", "YUV"[i])
					}
				}
			}
			img, format, err := Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if format != map[string]string{"WEBP": "webp", "PNG": "png"}[f.Format] {
				t.Fatalf("format %q, file is %s", format, f.Format)
			}
			rgb := ToRGB(img)
			if rgb.W != f.Width || rgb.H != f.Height {
				t.Fatalf("got %dx%d, want %dx%d", rgb.W, rgb.H, f.Width, f.Height)
			}
			if n, worst := diffBytes(rgb.Pix, want); n > 0 {
				var opts bytes.Buffer
				_ = json.Compact(&opts, f.Options)
				t.Errorf("%T (Pillow mode %s, %s): %d of %d RGB bytes differ from Pillow's, by up to %d",
					img, f.Mode, opts.Bytes(), n, len(want), worst)
			}
			if f.Alpha != "" {
				if got := hexSHA(alphaPlane(t, img)); got != f.Alpha {
					t.Errorf("alpha differs from Pillow's")
				}
			}
		})
	}
}

// diffBytes counts the bytes in which got and want differ and the largest
// difference (256 if the lengths differ).
func diffBytes(got, want []byte) (n, worst int) {
	if len(got) != len(want) {
		return max(len(got), len(want)), 256
	}
	for i := range got {
		if d := int(got[i]) - int(want[i]); d != 0 {
			n++
			worst = max(worst, d, -d)
		}
	}
	return n, worst
}

func TestPillowDecode(t *testing.T) {
	runPillowFiles(t, pillowDir, loadPillowManifest(t, pillowDir))
}

// TestPillowDecodeInterop writes random WebP and PNG files of random kinds
// with a fresh seed and checks the decoded pixels against Pillow's.
func TestPillowDecodeInterop(t *testing.T) {
	py := testenv.Python(t)
	if out, err := exec.Command(py, "-c", "import PIL.features, sys; sys.exit(not PIL.features.check('webp'))").CombinedOutput(); err != nil {
		if testenv.Required() {
			t.Fatalf("%s: Pillow has no WebP support (scripts/setup-interop.sh installs it): %v %s", py, err, out)
		}
		t.Skipf("%s: Pillow has no WebP support (scripts/setup-interop.sh installs it)", py)
	}
	if _, err := exec.LookPath("cwebp"); err != nil {
		// Without libwebp's cwebp the generator leaves out the encoder
		// options Pillow does not pass (simple loop filter, segments, ...).
		if testenv.Required() {
			t.Fatalf("cwebp is not on PATH (scripts/setup-interop.sh installs it)")
		}
		t.Logf("cwebp is not on PATH: only Pillow-encoded WebP files")
	}
	dir := t.TempDir()
	seed := strconv.FormatInt(time.Now().UnixNano()%1_000_000, 10)
	out, err := exec.Command(py, "../../testdata/gen/pillow_decode_fixtures.py", "--out", dir, "--seed", seed, "--count", "40").CombinedOutput()
	if err != nil {
		t.Fatalf("generator: %v\n%s", err, out)
	}
	t.Logf("seed %s", seed)
	runPillowFiles(t, dir, loadPillowManifest(t, dir))
}

// TestToRGBFastPaths checks each of ToRGB's per-type loops against the
// general conversion through color.NRGBAModel on random pixels, sub-images
// included; *image.NRGBA64 against its high bytes. (*image.Gray16 is left
// out: TestPillowDecode checks its clipping against Pillow's mode "I".)
func TestToRGBFastPaths(t *testing.T) {
	r := image.Rect(0, 0, 9, 7)
	fill := func(pix []uint8, seed uint32) {
		for i := range pix {
			seed = seed*1664525 + 1013904223
			pix[i] = uint8(seed >> 24)
		}
	}
	rgba := image.NewRGBA(r)
	fill(rgba.Pix, 1)
	for i := 3; i < len(rgba.Pix); i += 4 {
		if i%12 != 3 {
			rgba.Pix[i] = 0xff // mostly opaque, some not (premultiplied: colour <= alpha)
		} else {
			for c := 1; c <= 3; c++ {
				rgba.Pix[i-c] = min(rgba.Pix[i-c], rgba.Pix[i])
			}
		}
	}
	rgba64 := image.NewRGBA64(r)
	for y := range r.Dy() {
		for x := range r.Dx() {
			c := rgba.RGBAAt(x, y)
			rgba64.SetRGBA64(x, y, color.RGBA64{uint16(c.R)<<8 | uint16(x), uint16(c.G)<<8 | uint16(y), uint16(c.B) << 8, uint16(c.A)<<8 | uint16(c.A)})
		}
	}
	nrgba64 := image.NewNRGBA64(r)
	fill(nrgba64.Pix, 2)
	pal := image.NewPaletted(r, color.Palette{color.RGBA{1, 2, 3, 255}, color.NRGBA{200, 100, 50, 0}, color.Gray{77}})
	for i := range pal.Pix {
		pal.Pix[i] = uint8(i % 3)
	}
	sub := image.Rect(2, 1, 8, 6)
	for _, img := range []image.Image{
		rgba, rgba64, nrgba64, pal,
		rgba.SubImage(sub), rgba64.SubImage(sub), nrgba64.SubImage(sub), pal.SubImage(sub),
	} {
		got := ToRGB(img)
		b := img.Bounds()
		var want []uint8
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				if m, ok := img.(*image.NRGBA64); ok {
					// Pillow's RGBA;16B keeps the high bytes; NRGBAModel
					// would go through premultiplied colour and back.
					c := m.NRGBA64At(x, y)
					want = append(want, uint8(c.R>>8), uint8(c.G>>8), uint8(c.B>>8))
					continue
				}
				c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				want = append(want, c.R, c.G, c.B)
			}
		}
		if n, worst := diffBytes(got.Pix, want); n > 0 {
			t.Errorf("%T %v: %d bytes differ from color.NRGBAModel's, by up to %d", img, b, n, worst)
		}
	}
}

// TestDecodeAnimatedRejects checks that a malformed first frame of an
// animation is refused before any of its pixels are allocated: a frame that
// does not fit the canvas, a bitstream that declares another size than its
// ANMF header (here 16000x16000, which would take 384 MB of planes), a frame
// without image data and a truncated file.
func TestDecodeAnimatedRejects(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(pillowDir, "animated_offset_opaque_9x7_on_16x12.webp"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Decode(bytes.NewReader(good)); err != nil {
		t.Fatalf("the unmodified file: %v", err)
	}
	// Offsets into the file: RIFF header (12), VP8X chunk (8+10), ANIM
	// chunk (8+6), ANMF chunk header (8), then the ANMF payload.
	const anmf = 12 + 18 + 14 + 8
	if string(good[anmf-8:anmf-4]) != "ANMF" || string(good[anmf+16:anmf+20]) != "VP8 " {
		t.Fatalf("fixture layout is not VP8X, ANIM, ANMF(VP8 )")
	}
	vp8 := anmf + 16 + 8 // the VP8 payload: 3-byte frame tag, start code, 14-bit width and height
	patch := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, c := range []struct {
		name, want string
		data       []byte
	}{
		{"frame outside the canvas", "outside the 16x12 canvas", patch(func(b []byte) []byte { b[anmf] = 4; return b })},
		{"bitstream larger than its frame", "its ANMF header says 9x7", patch(func(b []byte) []byte {
			b[vp8+6], b[vp8+7], b[vp8+8], b[vp8+9] = 16000&0xff, 16000>>8, 16000&0xff, 16000>>8
			return b
		})},
		{"no image data", "no image data", patch(func(b []byte) []byte { copy(b[anmf+16:], "XXXX"); return b })},
		{"truncated", "runs past the end", good[:len(good)-10]},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := Decode(bytes.NewReader(c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got error %v, want one containing %q", err, c.want)
			}
		})
	}
}
