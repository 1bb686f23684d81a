package formats

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/internal/testenv"
)

const script = "../testdata/gen/formats_fixtures.py"

func python(t *testing.T, args ...string) []byte {
	t.Helper()
	py := testenv.Python(t)
	out, err := exec.Command(py, append([]string{script}, args...)...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s %v: %v\n%s", script, args, err, msg)
	}
	return out
}

func describe(t *testing.T, cmd, path string) desc {
	t.Helper()
	var d desc
	if err := json.Unmarshal(python(t, cmd, path), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func sameTensors(t *testing.T, got, want desc, ordered bool) {
	t.Helper()
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("got %d tensors, want %d", len(got.Tensors), len(want.Tensors))
	}
	idx := map[string]int{}
	for i, g := range got.Tensors {
		idx[g.Name] = i
	}
	for i, w := range want.Tensors {
		j, ok := idx[w.Name]
		if !ok {
			t.Errorf("%s missing", w.Name)
			continue
		}
		if ordered && j != i {
			t.Errorf("%s at %d, want %d", w.Name, j, i)
		}
		g := got.Tensors[j]
		if g.DType != w.DType || fmt.Sprint(g.Shape) != fmt.Sprint(w.Shape) || g.SHA256 != w.SHA256 {
			t.Errorf("%s: got %s%v %s, want %s%v %s", w.Name, g.DType, g.Shape, g.SHA256, w.DType, w.Shape, w.SHA256)
		}
	}
}

// TestInteropResNet18 converts a torchvision resnet18 state_dict saved by
// torch (random seed) through every writer and has torch read the results:
// .pt outputs with torch.load(weights_only=True) and
// load_state_dict(strict=True), safetensors outputs (single and sharded)
// with the script's json + torch.frombuffer reader, the ONNX output with
// onnx.checker and numpy_helper; names, order, dtypes, shapes and SHA-256
// must equal torch's view of the original.
func TestInteropResNet18(t *testing.T) {
	testenv.Python(t)
	dir := t.TempDir()
	seed := rand.IntN(1 << 30)
	ref := filepath.Join(dir, "ref.pt")
	python(t, "resnet18", ref, filepath.Join(dir, "ref.safetensors"), fmt.Sprint(seed))
	src := open(t, ref)
	save := func(name string, c *Checkpoint, opts SaveOptions) *SaveResult {
		t.Helper()
		res, err := Save(filepath.Join(dir, name), c, opts)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		return res
	}
	save("a.pt", src, SaveOptions{})                                          // pt -> pt
	save("b.safetensors", src, SaveOptions{})                                 // pt -> safetensors
	save("b.pt", open(t, filepath.Join(dir, "b.safetensors")), SaveOptions{}) // -> pt
	sharded := save(filepath.Join("shards", "model.safetensors"), src, SaveOptions{MaxShardSize: 10_000_000})
	if len(sharded.Files) < 3 {
		t.Fatalf("got files %v, want several shards and an index", sharded.Files)
	}
	index := sharded.Files[len(sharded.Files)-1]
	save("c.pt", open(t, index), SaveOptions{}) // sharded safetensors -> pt
	save("d.onnx", src, SaveOptions{})          // pt -> onnx (initializers only)

	pts := []string{filepath.Join(dir, "a.pt"), filepath.Join(dir, "b.pt"), filepath.Join(dir, "c.pt")}
	if got := strings.TrimSpace(string(python(t, append([]string{"load-strict", "resnet18", ref}, pts...)...))); got != "ok" {
		t.Fatalf("seed %d: load-strict: %s", seed, got)
	}
	paths := append([]string{ref, filepath.Join(dir, "b.safetensors"), filepath.Join(dir, "d.onnx")}, pts...)
	paths = append(paths, sharded.Files[:len(sharded.Files)-1]...)
	var ds []desc
	if err := json.Unmarshal(python(t, append([]string{"describe"}, paths...)...), &ds); err != nil {
		t.Fatal(err)
	}
	want := ds[0]
	for i, p := range paths[1 : 3+len(pts)] {
		t.Run(filepath.Base(p), func(t *testing.T) { sameTensors(t, ds[1+i], want, true) })
	}
	var shards desc
	for _, d := range ds[3+len(pts):] {
		shards.Tensors = append(shards.Tensors, d.Tensors...)
	}
	t.Run("shards", func(t *testing.T) { sameTensors(t, shards, want, true) })
}
