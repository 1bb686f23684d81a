package predict

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
)

func TestNewCmdPredict(t *testing.T) {
	got := clitest.Parse(t, NewCmdPredict, []string{"a.jpg", "b.png", "--arch", "resnet50", "--weights", "w.pt", "--topk", "3", "--labels", "l.txt", "--json"}, false)
	if len(got.Images) != 2 || got.Arch != "resnet50" || got.Weights != "w.pt" || got.TopK != 3 || got.Labels != "l.txt" || !got.JSON {
		t.Errorf("options %+v do not match the flags", *got)
	}
	clitest.Parse(t, NewCmdPredict, []string{"--arch", "resnet50"}, true) // no image
}

// TestPredictMatchesTorch classifies an image with the quick-start model and
// compares with the top-5 torch computed after torchvision's own
// preprocessing (testdata/gen/quickstart.py wrote predict.json).
func TestPredictMatchesTorch(t *testing.T) {
	root := clitest.Root(t)
	b, err := os.ReadFile(filepath.Join(root, "testdata", "quickstart", "predict.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Image string `json:"image"`
		Top   []struct {
			Index int     `json:"index"`
			Prob  float64 `json:"prob"`
		} `json:"top"`
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	labels := filepath.Join(t.TempDir(), "labels.txt")
	names := []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
	os.WriteFile(labels, []byte(strings.Join(names, "\n")+"\n"), 0o644)
	ios, stdout, _ := clitest.Streams()
	err = predictRun(&Options{IO: ios, Images: []string{filepath.Join(root, want.Image)}, Arch: "squeezenet1_1",
		Weights: filepath.Join(root, "testdata", "quickstart", "squeezenet1_1.pt"), TopK: 5, Labels: labels, JSON: true})
	if err != nil {
		t.Fatal(err)
	}
	got := decodeLines(t, stdout.Bytes())
	if len(got) != 1 || len(got[0].Top) != len(want.Top) {
		t.Fatalf("got %s, want one image with %d classes", stdout, len(want.Top))
	}
	for i, w := range want.Top {
		g := got[0].Top[i]
		// Probabilities of a softmax over float32 logits that agree to
		// ~1e-6: 1e-5 absolute leaves room for the summation order.
		if g.Index != w.Index || math.Abs(g.Prob-w.Prob) > 1e-5 || g.Label != names[w.Index] {
			t.Errorf("rank %d: got class %d (%s) p=%.6f, want %d (%s) p=%.6f", i, g.Index, g.Label, g.Prob, w.Index, names[w.Index], w.Prob)
		}
	}
}

func TestPredictErrors(t *testing.T) {
	root := clitest.Root(t)
	w := filepath.Join(root, "testdata", "quickstart", "squeezenet1_1.pt")
	notImage := filepath.Join(root, "testdata", "quickstart", "io.pt")
	for name, o := range map[string]*Options{
		"not an image":  {Images: []string{notImage}, Arch: "squeezenet1_1", Weights: w, TopK: 5},
		"missing image": {Images: []string{"nope.png"}, Arch: "squeezenet1_1", Weights: w, TopK: 5},
		"no weights":    {Images: []string{notImage}, Arch: "squeezenet1_1", TopK: 5},
		"bad topk":      {Images: []string{notImage}, Arch: "squeezenet1_1", Weights: w, TopK: 0},
	} {
		t.Run(name, func(t *testing.T) {
			ios, _, _ := clitest.Streams()
			o.IO = ios
			if err := predictRun(o); cmdutil.ExitCode(err) != cmdutil.ExitInvalid {
				t.Fatalf("got %v, want exit 2", err)
			}
		})
	}
}

// decodeLines decodes predict --json's output: one object per line.
func decodeLines(t *testing.T, b []byte) []Prediction {
	t.Helper()
	var out []Prediction
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var p Prediction
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, p)
	}
	return out
}

// TestPredictDirectory classifies a directory tree holding copies of the
// quick-start image (and files that are not images by extension): one
// result per image, in sorted path order, each the one the image gets
// alone; batches of two, so a batch boundary falls inside the tree.
func TestPredictDirectory(t *testing.T) {
	root := clitest.Root(t)
	img := filepath.Join(root, "testdata", "transforms", "photo.jpg")
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := []string{"b.jpg", "a/z.JPG", "a/c/x.jpeg", "a/b.jpg", "a.png.jpg", "notes.txt", "c.npy"}
	for _, f := range files {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w := filepath.Join(root, "testdata", "quickstart", "squeezenet1_1.pt")
	ios, stdout, _ := clitest.Streams()
	if err := predictRun(&Options{IO: ios, Images: []string{dir}, Weights: w, TopK: 3, JSON: true, Batch: 2}); err != nil {
		t.Fatal(err)
	}
	got := decodeLines(t, stdout.Bytes())
	want := []string{"a.png.jpg", "a/b.jpg", "a/c/x.jpeg", "a/z.JPG", "b.jpg"} // sorted by path
	if len(got) != len(want) {
		t.Fatalf("got %d results, want %d:\n%s", len(got), len(want), stdout)
	}
	ios, one, _ := clitest.Streams()
	if err := predictRun(&Options{IO: ios, Images: []string{img}, Weights: w, TopK: 3, JSON: true}); err != nil {
		t.Fatal(err)
	}
	alone := decodeLines(t, one.Bytes())[0]
	for i, p := range got {
		if p.Image != filepath.Join(dir, want[i]) {
			t.Errorf("result %d: got image %s, want %s", i, p.Image, filepath.Join(dir, want[i]))
		}
		for k, c := range p.Top {
			// Same image, same model; batch rows are computed alike, so
			// the probabilities agree to float32 rounding.
			if a := alone.Top[k]; c.Index != a.Index || math.Abs(c.Prob-a.Prob) > 1e-6 {
				t.Errorf("%s rank %d: got %+v, want %+v (the image alone)", p.Image, k, c, a)
			}
		}
	}
	// Text output: one block per image.
	ios, text, _ := clitest.Streams()
	if err := predictRun(&Options{IO: ios, Images: []string{dir}, Weights: w, TopK: 1}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(text.String(), dir); n != len(want) {
		t.Errorf("text output names %d images, want %d:\n%s", n, len(want), text)
	}
	// A directory without images is a usage error.
	empty := t.TempDir()
	if err := predictRun(&Options{IO: ios, Images: []string{empty}, Weights: w, TopK: 1}); cmdutil.ExitCode(err) != cmdutil.ExitInvalid {
		t.Errorf("empty directory: got %v, want exit 2", err)
	}
}

// TestPredictLabelCount checks the labels-count error reads correctly.
func TestPredictLabelCount(t *testing.T) {
	root := clitest.Root(t)
	labels := filepath.Join(t.TempDir(), "labels.txt")
	os.WriteFile(labels, []byte("only\n"), 0o644)
	ios, _, _ := clitest.Streams()
	err := predictRun(&Options{IO: ios, Images: []string{filepath.Join(root, "testdata", "transforms", "photo.jpg")},
		Weights: filepath.Join(root, "testdata", "quickstart", "squeezenet1_1.pt"), TopK: 1, Labels: labels})
	if err == nil || !strings.Contains(err.Error(), "has 1 label, the model 10 classes") {
		t.Errorf("got %v, want \"has 1 label, the model 10 classes\"", err)
	}
}

// TestPredictRecordedRun predicts with weights that record their class
// names and preprocessing, as finetune's best.safetensors does: the labels
// are the recorded names, and the transform is the recorded one, so the
// probabilities equal those of the same transform given by hand.
func TestPredictRecordedRun(t *testing.T) {
	root := clitest.Root(t)
	src, err := formats.Open(filepath.Join(root, "testdata", "quickstart", "squeezenet1_1.pt"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	names := make([]string, 10)
	for i := range names {
		names[i] = fmt.Sprintf("kind%d", i)
	}
	classes, _ := json.Marshal(names)
	weights := filepath.Join(t.TempDir(), "best.safetensors")
	meta := map[string]string{"classes": string(classes),
		"preprocess": `{"resize":36,"crop":32,"interpolation":"bilinear","mean":[0.485,0.456,0.406],"std":[0.229,0.224,0.225]}`}
	if _, err := formats.SaveStateDict(weights, src, meta, formats.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(root, "testdata", "transforms", "photo.jpg")
	run := func(o *Options) []Prediction {
		t.Helper()
		ios, stdout, _ := clitest.Streams()
		o.IO, o.Images, o.Weights, o.TopK, o.JSON = ios, []string{img}, weights, 3, true
		if err := predictRun(o); err != nil {
			t.Fatal(err)
		}
		return decodeLines(t, stdout.Bytes())
	}
	got, byHand := run(&Options{}), run(&Options{Size: 32})
	if len(got) != 1 || len(byHand) != 1 {
		t.Fatalf("got %d and %d predictions, want 1 each", len(got), len(byHand))
	}
	for i, c := range got[0].Top {
		if want := names[c.Index]; c.Label != want {
			t.Errorf("class %d: got label %q, want the recorded %q", c.Index, c.Label, want)
		}
		if h := byHand[0].Top[i]; h.Index != c.Index || h.Prob != c.Prob {
			t.Errorf("rank %d: got %+v with the recorded transform, %+v with --size 32", i, c, h)
		}
	}
}
