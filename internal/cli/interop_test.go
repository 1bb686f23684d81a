package cli

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/internal/testenv"
)

// TestInteropTorchLoad converts fixtures of every PyTorch kind and an ONNX
// model to .pt with `ckpt convert`, loads each with
// torch.load(weights_only=True) and checks, with torch's own hashing of
// each tensor's bytes, that it holds a dict (a module pickle, TorchScript
// or ONNX model as an OrderedDict state_dict; a saved dict with its
// structure) of exactly the tensors `ckpt inspect --hash` lists for the
// source, by the same dotted paths. Skipped where /usr/bin/python3
// cannot import torch.
func TestInteropTorchLoad(t *testing.T) {
	py := testenv.Python(t)
	root := clitest.Root(t)
	dir := t.TempDir()
	script := `
import sys, json, hashlib, collections, torch
def raw(v):
    v = v.contiguous()
    if v.dtype == torch.bfloat16:
        v = v.view(torch.int16)
    return v.numpy().tobytes()
def tensors(v, path):
    # dotted paths, as ckpt inspect names a nested checkpoint's tensors
    if isinstance(v, torch.Tensor):
        yield path, v
    elif isinstance(v, dict):
        for k, x in v.items():
            yield from tensors(x, f"{path}.{k}" if path else str(k))
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            yield from tensors(x, f"{path}.{i}" if path else str(i))
out = {}
for p in sys.argv[1:]:
    sd = torch.load(p, weights_only=True)
    assert isinstance(sd, dict), type(sd)
    out[p] = [[k, str(v.dtype).replace("torch.", ""), list(v.shape), hashlib.sha256(raw(v)).hexdigest()]
              for k, v in tensors(sd, "")]
print(json.dumps(out))
`
	var outs []string
	want := map[string]listing{}
	for _, f := range []string{"pickle/model_zip.pt", "pickle/torchscript.pt", "pickle/legacy_views.pt", "pickle/dtypes.pt", "pickle/tar_state_dict.pt", "onnx/cnn.onnx"} {
		in := filepath.Join(root, "testdata", f)
		out := filepath.Join(dir, filepath.Base(f)+".pt")
		if code, _, stderr := run("convert", in, out); code != 0 {
			t.Fatalf("convert %s: exit %d: %s", f, code, stderr)
		}
		outs = append(outs, out)
		want[out] = inspectHash(t, in)
	}
	cmd := exec.Command(py, append([]string{"-c", script}, outs...)...)
	b, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("torch.load: %v\n%s", err, stderr)
	}
	var got map[string][][]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, out := range outs {
		w := want[out]
		g := got[out]
		if len(g) != len(w.Tensors) {
			t.Errorf("%s: torch loads %d tensors, want %d", filepath.Base(out), len(g), len(w.Tensors))
			continue
		}
		for i, e := range g {
			wt := w.Tensors[i]
			shape, _ := json.Marshal(e[2])
			wshape, _ := json.Marshal(wt.Shape)
			if e[0] != wt.Name || e[1] != wt.DType || string(shape) != string(wshape) || e[3] != wt.SHA256 {
				t.Errorf("%s: tensor %d: torch has %v, want %s %s %s %s", filepath.Base(out), i, e, wt.Name, wt.DType, wshape, wt.SHA256)
			}
		}
	}
}

// TestInteropGraph runs `ckpt convert --graph cnn.onnx` with the weights of
// a second torch instance (B) of the exported model, then checks the result
// with onnx.checker and runs it with ONNX Runtime: the output must be
// PyTorch's output for B (cnn_b_output.bin, testdata/gen/onnx_fixtures.py).
// Tolerance |got-want| <= 1e-4 + 1e-4*|want|: the logits are O(1) sums of a
// few hundred float32 products, where runtimes differ by about 1e-6, while
// the weights of A and B differ by about 0.1.
func TestInteropGraph(t *testing.T) {
	py := testenv.Python(t)
	_, nodePath := testenv.ORT(t)
	root := clitest.Root(t)
	fx := filepath.Join(root, "testdata", "onnx")
	dir := t.TempDir()
	src := filepath.Join(dir, "b.safetensors")
	clitest.CNNB(t, src)
	out := filepath.Join(dir, "cnn_b.onnx")
	if code, _, stderr := run("convert", "--graph", filepath.Join(fx, "cnn.onnx"), src, out); code != 0 {
		t.Fatalf("convert --graph: exit %d: %s", code, stderr)
	}
	if b, err := exec.Command(py, "-c", "import sys, onnx; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)", out).CombinedOutput(); err != nil {
		t.Fatalf("onnx.checker: %v\n%s", err, b)
	}
	cmd := exec.Command("node", filepath.Join(root, "testdata", "gen", "ort_run.js"), out, "input", filepath.Join(fx, "cnn_input.bin"), "2,3,8,8")
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath)
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("ort_run.js: %v", err)
	}
	var res struct{ Data []float32 }
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(fx, "cnn_b_output.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Data) != len(raw)/4 || len(res.Data) == 0 {
		t.Fatalf("ONNX Runtime gave %d outputs, want %d", len(res.Data), len(raw)/4)
	}
	for i, g := range res.Data {
		w := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		if d := math.Abs(float64(g - w)); d > 1e-4+1e-4*math.Abs(float64(w)) {
			t.Errorf("output %d: got %g, want %g (PyTorch, weights B)", i, g, w)
		}
	}
}
