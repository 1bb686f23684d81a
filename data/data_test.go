package data

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/data/transforms"
)

// writePNG writes a w×h image of class-dependent colour with noise.
func writePNG(t testing.TB, path string, w, h int, seed uint64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 1))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

// makeFolder writes DIR/<class>/<i>.png for counts[class] images each.
func makeFolder(t testing.TB, dir string, counts map[string]int) {
	t.Helper()
	seed := uint64(0)
	for c, n := range counts {
		for i := range n {
			seed++
			writePNG(t, filepath.Join(dir, c, string(rune('a'+i%26))+strings.Repeat("x", i/26)+".png"), 10+i%5, 8+i%3, seed)
		}
	}
}

func TestImageFolder(t *testing.T) {
	dir := t.TempDir()
	makeFolder(t, dir, map[string]int{"zebra": 3, "ant": 2, "moth": 1})
	os.WriteFile(filepath.Join(dir, "ant", "notes.txt"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "ant", ".hidden.png"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(dir, ".git"), 0o755)
	d, err := ImageFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ant", "moth", "zebra"}; !slices.Equal(d.Classes, want) {
		t.Errorf("classes: got %q, want %q", d.Classes, want)
	}
	if got, want := d.Counts(), []int{2, 1, 3}; !slices.Equal(got, want) {
		t.Errorf("counts: got %v, want %v", got, want)
	}
	if got := filepath.Base(d.Samples[0].Path); got != "a.png" {
		t.Errorf("first sample: got %s, want a.png", got)
	}

	os.MkdirAll(filepath.Join(dir, "empty"), 0o755)
	if _, err := ImageFolder(dir); err == nil || !strings.Contains(err.Error(), `"empty"`) {
		t.Errorf("class without images: got %v, want an error naming it", err)
	}
}

func TestOpenLayouts(t *testing.T) {
	t.Run("train and valid folders", func(t *testing.T) {
		dir := t.TempDir()
		makeFolder(t, filepath.Join(dir, "train"), map[string]int{"a": 2, "b": 2, "c": 2})
		makeFolder(t, filepath.Join(dir, "valid"), map[string]int{"a": 1, "c": 2})
		s, err := Open(dir, OpenOptions{ValSplit: 0.2})
		if err != nil {
			t.Fatal(err)
		}
		if s.Layout != "folders" || s.Train.Len() != 6 || s.Val.Len() != 3 {
			t.Errorf("got layout %s, %d train, %d val; want folders, 6, 3", s.Layout, s.Train.Len(), s.Val.Len())
		}
		// c is index 2 in training though it is index 1 of valid/ alone.
		if got := s.Val.Samples[2].Label; got != 2 {
			t.Errorf("val label of c: got %d, want 2 (the training index)", got)
		}
		if !slices.Equal(s.MissingInVal, []string{"b"}) {
			t.Errorf("missing in val: got %q, want [b]", s.MissingInVal)
		}
	})
	t.Run("val class unknown to train", func(t *testing.T) {
		dir := t.TempDir()
		makeFolder(t, filepath.Join(dir, "train"), map[string]int{"a": 1})
		makeFolder(t, filepath.Join(dir, "val"), map[string]int{"a": 1, "q": 1})
		_, err := Open(dir, OpenOptions{})
		var ce *ClassMismatchError
		if !errors.As(err, &ce) || !slices.Equal(ce.Extra, []string{"q"}) {
			t.Errorf("got %v, want a ClassMismatchError naming q", err)
		}
	})
	t.Run("csv", func(t *testing.T) {
		dir := t.TempDir()
		writePNG(t, filepath.Join(dir, "img", "1.png"), 5, 5, 1)
		writePNG(t, filepath.Join(dir, "img", "2.png"), 5, 5, 2)
		writePNG(t, filepath.Join(dir, "img", "3.png"), 5, 5, 3)
		csvPath := filepath.Join(dir, "list.csv")
		os.WriteFile(csvPath, []byte("path,label\nimg/1.png,dog\nimg/2.png,cat\nimg/3.png,dog\n"), 0o644)
		s, err := Open(csvPath, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(s.Train.Classes, []string{"cat", "dog"}) || s.Train.Samples[0].Label != 1 || s.Val != nil {
			t.Errorf("got classes %q, first label %d, val %v; want [cat dog], 1, nil", s.Train.Classes, s.Train.Samples[0].Label, s.Val)
		}
		if s.Train.Samples[1].Path != filepath.Join(dir, "img", "2.png") {
			t.Errorf("path: got %s, want it relative to the CSV's directory", s.Train.Samples[1].Path)
		}
		os.WriteFile(csvPath, []byte("img/1.png\n"), 0o644)
		if _, err := Open(csvPath, OpenOptions{}); err == nil {
			t.Errorf("a row with one field: got no error")
		}
	})
}

func TestSplitStratified(t *testing.T) {
	d := &Dataset{Classes: []string{"a", "b", "c"}}
	for i := range 100 {
		d.Samples = append(d.Samples, Sample{Path: string(rune(i)), Label: []int{0, 0, 0, 1, 1, 2, 0, 1, 0, 0}[i%10]})
	}
	d.Samples = append(d.Samples, Sample{Path: "lone", Label: 2})
	train, val, err := d.Split(0.2, 42)
	if err != nil {
		t.Fatal(err)
	}
	// 60, 30, 11 images: round(0.2·n) of each in validation.
	if got, want := val.Counts(), []int{12, 6, 2}; !slices.Equal(got, want) {
		t.Errorf("val counts: got %v, want %v", got, want)
	}
	if train.Len()+val.Len() != d.Len() {
		t.Errorf("sizes: got %d + %d, want %d", train.Len(), val.Len(), d.Len())
	}
	_, val2, _ := d.Split(0.2, 42)
	_, val3, _ := d.Split(0.2, 43)
	if !slices.Equal(val.Samples, val2.Samples) {
		t.Errorf("same seed: got different splits")
	}
	if slices.Equal(val.Samples, val3.Samples) {
		t.Errorf("seeds 42 and 43: got the same split")
	}
	if _, _, err := d.Split(1, 0); err == nil {
		t.Errorf("fraction 1: got no error")
	}
}

func TestWithImageSize(t *testing.T) {
	p := Preprocess{Resize: 256, Crop: 224, Interpolation: transforms.Bilinear}
	tests := []struct{ s, resize, crop int }{{32, 37, 32}, {224, 256, 224}, {0, 256, 224}, {112, 128, 112}}
	for _, tt := range tests {
		q := p.WithImageSize(tt.s)
		if q.Resize != tt.resize || q.Crop != tt.crop {
			t.Errorf("WithImageSize(%d): got resize %d crop %d, want %d %d", tt.s, q.Resize, q.Crop, tt.resize, tt.crop)
		}
	}
}

func TestEvalTransformIsThePreset(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.png")
	writePNG(t, path, 23, 17, 9)
	img, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p := Preprocess{Resize: 14, Crop: 12, Interpolation: transforms.Bicubic, Mean: [3]float32{0.4, 0.5, 0.6}, Std: [3]float32{0.2, 0.25, 0.3}}
	got, err := EvalTransform{p}.Apply(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	raw, _, _ := transforms.Decode(f)
	f.Close()
	want, err := transforms.ImageClassification{ResizeSize: 14, CropSize: 12, Interpolation: transforms.Bicubic, Mean: p.Mean, Std: p.Std}.Apply(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("EvalTransform differs from transforms.ImageClassification")
	}
}

func TestRandomResizedCrop(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		w, h := 1+i%37, 1+i%23
		top, left, ch, cw := RandomResizedCrop(w, h, [2]float64{0.08, 1}, [2]float64{3.0 / 4, 4.0 / 3}, r)
		if top < 0 || left < 0 || ch < 1 || cw < 1 || top+ch > h || left+cw > w {
			t.Fatalf("%dx%d: got window top %d left %d %dx%d outside the image", w, h, top, left, cw, ch)
		}
	}
	// A 100×10 image never fits ratio 3/4..4/3 at any scale: the fallback
	// is the central crop at ratio 4/3, 13×10.
	top, left, ch, cw := RandomResizedCrop(100, 10, [2]float64{0.9, 1}, [2]float64{3.0 / 4, 4.0 / 3}, r)
	if top != 0 || left != 43 || ch != 10 || cw != 13 {
		t.Errorf("fallback: got top %d left %d %dx%d, want 0 43 13x10", top, left, cw, ch)
	}
}

func TestGrayAndPaletteBecomeRGB(t *testing.T) {
	dir := t.TempDir()
	gray := image.NewGray(image.Rect(0, 0, 2, 1))
	gray.Pix = []uint8{7, 200}
	pal := image.NewPaletted(image.Rect(0, 0, 2, 1), color.Palette{color.NRGBA{1, 2, 3, 255}, color.NRGBA{9, 8, 7, 255}})
	pal.Pix = []uint8{1, 0}
	for _, tt := range []struct {
		name string
		img  image.Image
		want []uint8
	}{{"gray", gray, []uint8{7, 7, 7, 200, 200, 200}}, {"palette", pal, []uint8{9, 8, 7, 1, 2, 3}}} {
		p := filepath.Join(dir, tt.name+".png")
		f, _ := os.Create(p)
		png.Encode(f, tt.img)
		f.Close()
		rgb, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rgb.Pix, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, rgb.Pix, tt.want)
		}
	}
}

func collect(t *testing.T, l *Loader, epoch int) []*Batch {
	t.Helper()
	ch, errf := l.Epoch(context.Background(), epoch)
	var out []*Batch
	for b := range ch {
		out = append(out, b)
	}
	if err := errf(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLoaderDeterministic(t *testing.T) {
	dir := t.TempDir()
	makeFolder(t, dir, map[string]int{"a": 7, "b": 6})
	d, err := ImageFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTrainTransform(Preprocess{Resize: 9, Crop: 8, Interpolation: transforms.Bilinear, Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.2, 0.2, 0.2}})
	mk := func(workers int, seed uint64) *Loader {
		return &Loader{Data: d, Transform: tr, BatchSize: 4, Shuffle: true, Seed: seed, Workers: workers, Prefetch: 1}
	}
	one := collect(t, mk(1, 5), 3)
	three := collect(t, mk(3, 5), 3)
	if len(one) != 4 || one[3].Len() != 1 {
		t.Fatalf("got %d batches (last of %d), want 4 (last of 1)", len(one), one[len(one)-1].Len())
	}
	seen := map[int]bool{}
	for i := range one {
		if !slices.Equal(one[i].X, three[i].X) || !slices.Equal(one[i].Labels, three[i].Labels) {
			t.Errorf("batch %d: 1 and 3 workers differ", i)
		}
		for p, idx := range one[i].Indices {
			seen[idx] = true
			if one[i].Labels[p] != d.Samples[idx].Label {
				t.Errorf("batch %d: label of sample %d: got %d, want %d", i, idx, one[i].Labels[p], d.Samples[idx].Label)
			}
		}
		if len(one[i].X) != one[i].Len()*3*8*8 {
			t.Errorf("batch %d: got %d values, want %d", i, len(one[i].X), one[i].Len()*3*8*8)
		}
	}
	if len(seen) != d.Len() {
		t.Errorf("epoch covered %d samples, want %d", len(seen), d.Len())
	}
	other := collect(t, mk(2, 5), 4)
	if slices.Equal(one[0].Indices, other[0].Indices) && slices.Equal(one[0].X, other[0].X) {
		t.Errorf("epochs 3 and 4: got the same first batch")
	}
}

func TestLoaderBadImages(t *testing.T) {
	dir := t.TempDir()
	makeFolder(t, dir, map[string]int{"a": 3, "b": 3})
	bad := filepath.Join(dir, "b", "broken.png")
	os.WriteFile(bad, []byte("\x89PNG\r\n\x1a\nnot really"), 0o644)
	d, err := ImageFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	ev := EvalTransform{Preprocess{Resize: 8, Crop: 8, Interpolation: transforms.Bilinear, Std: [3]float32{1, 1, 1}}}
	l := &Loader{Data: d, Transform: ev, BatchSize: 2, Workers: 2}
	ch, errf := l.Epoch(context.Background(), 0)
	for range ch {
	}
	if err := errf(); err == nil || !strings.Contains(err.Error(), "broken.png") {
		t.Errorf("without SkipBad: got %v, want an error naming broken.png", err)
	}
	l = &Loader{Data: d, Transform: ev, BatchSize: 2, Workers: 2, SkipBad: true}
	n := 0
	for _, b := range collect(t, l, 0) {
		n += b.Len()
	}
	if n != 6 || len(l.Bad()) != 1 || l.Bad()[bad] == nil {
		t.Errorf("with SkipBad: got %d images and bad %v, want 6 and broken.png", n, l.Bad())
	}
}

func TestLoaderCancel(t *testing.T) {
	dir := t.TempDir()
	makeFolder(t, dir, map[string]int{"a": 20})
	d, _ := ImageFolder(dir)
	ev := EvalTransform{Preprocess{Resize: 8, Crop: 8, Interpolation: transforms.Bilinear, Std: [3]float32{1, 1, 1}}}
	l := &Loader{Data: d, Transform: ev, BatchSize: 2, Workers: 2}
	ctx, cancel := context.WithCancel(context.Background())
	ch, errf := l.Epoch(ctx, 0)
	<-ch
	cancel()
	for range ch {
	}
	if err := errf(); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

// TestTrivialMagnitudes compares the 31-bin augmentation space with
// torchvision's TrivialAugmentWide()._augmentation_space(31) (float32
// magnitudes, recorded by testdata/gen/augment_fixtures.py): within one
// float32 ulp. torch.linspace's vectorised CPU kernel builds its values from
// per-vector bases whose layout depends on the CPU's vector width; ckpt
// computes torch's scalar formula, which gives the same float32 for most
// bins and a neighbouring one for a few (5 of the 124 values of its four
// linspaces on this machine).
func TestTrivialMagnitudes(t *testing.T) {
	b, err := os.ReadFile("../testdata/augment/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Space map[string]struct {
			Magnitudes []float64 `json:"magnitudes"`
			Signed     bool      `json:"signed"`
		} `json:"space"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Space) != len(transforms.TrivialAugmentOps) {
		t.Fatalf("torch has %d operations, ckpt %d", len(m.Space), len(transforms.TrivialAugmentOps))
	}
	for _, op := range transforms.TrivialAugmentOps {
		want, ok := m.Space[op]
		if !ok {
			t.Errorf("%s: not in torchvision's space", op)
			continue
		}
		if len(want.Magnitudes) == 1 { // a 0-d tensor: no magnitude
			if got, _ := TrivialMagnitude(op, 0); got != 0 {
				t.Errorf("%s: got magnitude %v, want none", op, got)
			}
			continue
		}
		for bin, w := range want.Magnitudes {
			got, signed := TrivialMagnitude(op, bin)
			ulp := float64(math.Nextafter32(float32(math.Abs(w)), float32(math.Inf(1))) - float32(math.Abs(w)))
			if math.Abs(got-w) > ulp || signed != want.Signed {
				t.Errorf("%s bin %d: got %v signed %v, want %v signed %v", op, bin, got, signed, w, want.Signed)
			}
		}
	}
}

// TestRandomAugmentations checks ColorJitter's and TrivialAugmentWide's
// draws: the same seed gives the same image, ranges are torchvision's, and
// across draws every operation and order occurs.
func TestRandomAugmentations(t *testing.T) {
	j, err := ParseColorJitter("0.4,0.3,0.2,0.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "0.1,0.1,0.1", "0.1,0.1,0.1,0.6", "-1,0,0,0", "a,0,0,0"} {
		if _, err := ParseColorJitter(bad); err == nil {
			t.Errorf("ParseColorJitter(%q) succeeded", bad)
		}
	}
	orders := map[[4]int]bool{}
	for k := range 2000 {
		p := j.Sample(rand.New(rand.NewPCG(uint64(k), 1)))
		orders[p.Order] = true
		for i, lim := range [][2]float64{{0.6, 1.4}, {0.7, 1.3}, {0.8, 1.2}, {-0.1, 0.1}} {
			if f := p.Factors[i]; f < lim[0] || f > lim[1] {
				t.Fatalf("factor %d = %v, want in %v", i, f, lim)
			}
		}
	}
	if len(orders) != 24 {
		t.Errorf("got %d orders of the four adjustments, want all 24", len(orders))
	}
	img := &transforms.RGB{W: 9, H: 7, Pix: make([]uint8, 9*7*3)}
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 37)
	}
	tr := TrainTransform{Crop: 8, Scale: [2]float64{0.5, 1}, Ratio: [2]float64{0.75, 4.0 / 3}, Interpolation: "bilinear",
		Std: [3]float32{1, 1, 1}, Jitter: j, Trivial: true}
	distinct := map[string]bool{}
	for k := range 50 {
		a, err := tr.Apply(img, rand.New(rand.NewPCG(uint64(k), 2)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := tr.Apply(img, rand.New(rand.NewPCG(uint64(k), 2)))
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("seed %d: two draws differ", k)
		}
		distinct[fmt.Sprint(a)] = true
	}
	if len(distinct) < 40 {
		t.Errorf("50 seeds gave %d distinct images", len(distinct))
	}
}
