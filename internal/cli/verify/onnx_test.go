package verify

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/internal/testenv"
)

// TestVerifyONNX checks `ckpt verify` on torch exports made by
// testdata/gen/onnx_graph_models.py: an ONNX model alone against
// PyTorch's output (no --arch), and a torch checkpoint against its
// default (BatchNorm-folded) ONNX export, each built its own way.
func TestVerifyONNX(t *testing.T) {
	dir := os.Getenv("CKPT_ONNX_GRAPH_MODELS")
	if dir == "" {
		if testing.Short() {
			t.Skip("skipping in -short mode: exporting the models takes tens of seconds")
		}
		py := testenv.Python(t)
		dir = t.TempDir()
		if out, err := exec.Command(py, "../../../testdata/gen/onnx_graph_models.py", dir).CombinedOutput(); err != nil {
			t.Fatalf("onnx_graph_models.py: %v\n%s", err, out)
		}
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	cases := []struct {
		name string
		opts Options
	}{
		{"onnx against torch's output", Options{Weights: []string{p("mobilenet_v2_op17.onnx")},
			Input: p("mobilenet_v2_io.pt") + ":input", Reference: p("mobilenet_v2_io.pt") + ":output", Batch: 2}},
		{"torch checkpoint against its export", Options{Weights: []string{p("resnet18.pt"), p("resnet18_op13.onnx")}, Arch: "resnet18",
			Input: p("resnet18_io.pt") + ":input", Batch: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			o := tc.opts
			o.IO = &cmdutil.IOStreams{Out: &out, ErrOut: &out}
			if err := verifyRun(&o); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), "result         OK") {
				t.Errorf("got report\n%s\nwant result OK", out.String())
			}
		})
	}
}
