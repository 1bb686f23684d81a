package predict

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/data/transforms"
	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/nn"
)

// writePoolGraph writes an ONNX model that classifies an image [N, 3, H, W]
// into 3 classes by its per-channel mean: GlobalAveragePool, then Flatten.
func writePoolGraph(t *testing.T, dir string) string {
	t.Helper()
	dims := func(ds ...string) *onnx.Type {
		s := &onnx.Shape{}
		for _, d := range ds {
			dim := &onnx.Dimension{}
			dim.SetParam(d)
			s.Dim = append(s.Dim, dim)
		}
		return &onnx.Type{Tensor: &onnx.TensorType{ElemType: onnx.Float, Shape: s}}
	}
	m := &onnx.Model{IRVersion: 8, OpsetImport: []*onnx.OperatorSetID{{Version: 13}}, Graph: &onnx.Graph{
		Name: "pool",
		Node: []*onnx.Node{
			{OpType: "GlobalAveragePool", Name: "gap", Input: []string{"x"}, Output: []string{"p"}},
			{OpType: "Flatten", Name: "flat", Input: []string{"p"}, Output: []string{"y"}},
		},
		Input:  []*onnx.ValueInfo{{Name: "x", Type: dims("n", "c", "h", "w")}},
		Output: []*onnx.ValueInfo{{Name: "y", Type: dims("n", "k")}},
	}}
	p := filepath.Join(dir, "pool.onnx")
	if err := onnx.Write(p, m); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeImage(t *testing.T, path string, c color.RGBA) image.Image {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 20, 14))
	for y := range 14 {
		for x := range 20 {
			img.Set(x, y, c)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	return img
}

// TestPredictONNX classifies with an ONNX graph, which records no
// preprocessing: without --preprocess or --size it is a usage error; with
// --size, the class is the channel the hand-set normalization makes
// largest, computed here through the transform itself.
func TestPredictONNX(t *testing.T) {
	dir := t.TempDir()
	model := writePoolGraph(t, dir)
	img := filepath.Join(dir, "green.png")
	writeImage(t, img, color.RGBA{40, 200, 90, 255})
	labels := filepath.Join(dir, "labels.txt")
	if err := os.WriteFile(labels, []byte("red\ngreen\nblue\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	ios, _, _ := clitest.Streams()
	err := predictRun(&Options{IO: ios, Images: []string{img}, Weights: model, TopK: 1, Labels: labels})
	if got := cmdutil.ExitCode(err); got != cmdutil.ExitInvalid || !strings.Contains(err.Error(), "--preprocess") {
		t.Fatalf("without preprocessing: got exit %d (%v), want %d naming --preprocess", got, err, cmdutil.ExitInvalid)
	}

	tests := []struct {
		name      string
		mean, std []float64
	}{
		{"imagenet", nil, nil},
		{"green pushed down", []float64{0, 0.9, 0}, []float64{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, stdout, _ := clitest.Streams()
			o := &Options{IO: ios, Images: []string{img}, Weights: model, TopK: 3, Labels: labels, JSON: true, Size: 8, Mean: tt.mean, Std: tt.std}
			if err := predictRun(o); err != nil {
				t.Fatal(err)
			}
			preds := decodeLines(t, stdout.Bytes())
			pre, err := preprocessing(o, nil)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			decoded, _, err := transforms.Decode(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			x, err := pre.Apply(decoded)
			if err != nil {
				t.Fatal(err)
			}
			means := make([]float32, 3)
			for c := range 3 {
				for _, v := range x[c*64 : (c+1)*64] {
					means[c] += v / 64
				}
			}
			want := []string{"red", "green", "blue"}[nn.TopK(means, 1)[0]]
			if len(preds) != 1 || preds[0].Top[0].Label != want {
				t.Errorf("got %+v, want top class %q (channel means %v)", preds, want, means)
			}
		})
	}

	for _, bad := range []*Options{
		{Size: 8, Preprocess: "resnet18"},
		{Mean: []float64{0, 0, 0}},
		{Size: 8, Mean: []float64{0, 0}},
		{Size: 8, Std: []float64{1, 0, 1}},
	} {
		ios, _, _ := clitest.Streams()
		bad.IO, bad.Images, bad.Weights, bad.TopK = ios, []string{img}, model, 1
		if got := cmdutil.ExitCode(predictRun(bad)); got != cmdutil.ExitInvalid {
			t.Errorf("%+v: got exit %d, want %d", bad, got, cmdutil.ExitInvalid)
		}
	}
}
