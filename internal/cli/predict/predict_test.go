package predict

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
)

func TestNewCmdPredict(t *testing.T) {
	ios, _, _ := clitest.Streams()
	var got *Options
	cmd := NewCmdPredict(ios, func(o *Options) error { got = o; return nil })
	cmd.SetArgs([]string{"a.jpg", "b.png", "--arch", "resnet50", "--weights", "w.pt", "--topk", "3", "--labels", "l.txt", "--json"})
	cmd.SetOut(ios.Out)
	cmd.SetErr(ios.ErrOut)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if len(got.Images) != 2 || got.Arch != "resnet50" || got.Weights != "w.pt" || got.TopK != 3 || got.Labels != "l.txt" || !got.JSON {
		t.Errorf("options %+v do not match the flags", *got)
	}
	cmd = NewCmdPredict(ios, func(o *Options) error { return nil })
	cmd.SetArgs([]string{"--arch", "resnet50"})
	if err := cmd.Execute(); err == nil {
		t.Error("no image: got no error")
	}
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
	var got []Prediction
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
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
