package pytorch

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/formats/safetensors"
	"github.com/ckptkit/ckpt/internal/testenv"
	"github.com/ckptkit/ckpt/tensor"
)

const script = "../../testdata/gen/formats_fixtures.py"

// pyDesc is torch's description of a loaded file (describe-pt).
type pyDesc struct {
	Type string `json:"type"`
	// Record is the metadata record as zipfile reads it: [key, value] pairs.
	Record  [][2]string `json:"record"`
	Tensors []struct {
		Name    string  `json:"name"`
		DType   string  `json:"dtype"`
		Shape   []int64 `json:"shape"`
		SHA256  string  `json:"sha256"`
		Storage int     `json:"storage"`
	} `json:"tensors"`
}

func python(t *testing.T, args ...string) []byte {
	t.Helper()
	py := testenv.Python(t)
	cmd := exec.Command(py, append([]string{script}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s %v: %v\n%s", script, args, err, msg)
	}
	return out
}

func writeFile(t *testing.T, path string, ts []Named) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Write(f, ts); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTorchLoadsResNet18 writes a torchvision resnet18 state_dict (made by
// torch under a random seed, handed over as safetensors) with Write, then
// has torch 1.13 load it with weights_only=True, load_state_dict(strict=True)
// into resnet18 and compare every tensor with the original torch.save; once
// more with a metadata record (WriteMeta), which torch.load must ignore and
// Python's zipfile must read back in order (formats_fixtures.py describe-pt).
func TestTorchLoadsResNet18(t *testing.T) {
	testenv.Python(t)
	dir := t.TempDir()
	seed := rand.IntN(1 << 30)
	src, st := filepath.Join(dir, "ref.pt"), filepath.Join(dir, "ref.safetensors")
	python(t, "resnet18", src, st, fmt.Sprint(seed))
	f, err := safetensors.Open(st)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := filepath.Join(dir, "out.pt")
	writeFile(t, out, f.Tensors)
	// The same with a metadata record, which torch.load must ignore and
	// Python's zipfile read back in order.
	meta := []Meta{{Key: "arch", Value: "resnet18"}, {Key: "classes", Value: `["cat","dög"]`}, {Key: "a<b>&c", Value: "line\nbreak"}}
	withMeta := filepath.Join(dir, "meta.pt")
	fh, err := os.Create(withMeta)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteMeta(fh, f.Tensors, meta); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(python(t, "load-strict", "resnet18", src, out, withMeta))); got != "ok" {
		t.Fatalf("load-strict (seed %d): %s", seed, got)
	}
	var d pyDesc
	if err := json.Unmarshal(python(t, "describe-pt", withMeta), &d); err != nil {
		t.Fatal(err)
	}
	var want [][2]string
	for _, m := range meta {
		want = append(want, [2]string{m.Key, m.Value})
	}
	if fmt.Sprintf("%q", d.Record) != fmt.Sprintf("%q", want) {
		t.Errorf("zipfile reads the record as %q, want %q", d.Record, want)
	}
}

// TestTorchReadsEveryDType writes testdata/formats/dtypes.safetensors as a
// .pt and checks torch's view of it against dtypes.json (made by torch).
func TestTorchReadsEveryDType(t *testing.T) {
	testenv.Python(t)
	f, err := safetensors.Open("../../testdata/formats/dtypes.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := filepath.Join(t.TempDir(), "dtypes.pt")
	writeFile(t, out, f.Tensors)
	var got, want pyDesc
	if err := json.Unmarshal(python(t, "describe-pt", out), &got); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile("../../testdata/formats/dtypes.json")
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if got.Type != "collections.OrderedDict" {
		t.Errorf("torch.load gives %s, want collections.OrderedDict", got.Type)
	}
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("got %d tensors, want %d", len(got.Tensors), len(want.Tensors))
	}
	for i, w := range want.Tensors {
		g := got.Tensors[i]
		if g.Name != w.Name || g.DType != w.DType || fmt.Sprint(g.Shape) != fmt.Sprint(w.Shape) || g.SHA256 != w.SHA256 {
			t.Errorf("tensor %d: got %s %s%v %s, want %s %s%v %s", i, g.Name, g.DType, g.Shape, g.SHA256, w.Name, w.DType, w.Shape, w.SHA256)
		}
	}
}

// TestTorchKeepsSharing checks that contiguous views of one storage come
// back from torch.load sharing one storage, and a transposed view does not.
func TestTorchKeepsSharing(t *testing.T) {
	testenv.Python(t)
	base := tensor.NewStorageBytes(f32s(0, 1, 2, 3, 4, 5))
	full := tensor.New(tensor.Float32, []int64{2, 3}, base)
	row := &tensor.Tensor{DType: tensor.Float32, Shape: []int64{3}, Stride: []int64{1}, Offset: 3, Storage: base}
	tr := &tensor.Tensor{DType: tensor.Float32, Shape: []int64{3, 2}, Stride: []int64{1, 3}, Storage: base}
	out := filepath.Join(t.TempDir(), "shared.pt")
	writeFile(t, out, []Named{{Name: "w", Tensor: full}, {Name: "tied", Tensor: full}, {Name: "row", Tensor: row}, {Name: "t", Tensor: tr}})
	var got pyDesc
	if err := json.Unmarshal(python(t, "describe-pt", out), &got); err != nil {
		t.Fatal(err)
	}
	var storages []int
	for _, g := range got.Tensors {
		storages = append(storages, g.Storage)
	}
	if want := []int{0, 0, 0, 1}; fmt.Sprint(storages) != fmt.Sprint(want) {
		t.Errorf("got storage groups %v, want %v", storages, want)
	}
	for _, g := range got.Tensors {
		tt := map[string]*tensor.Tensor{"w": full, "tied": full, "row": row, "t": tr}[g.Name]
		sum, _ := tt.SHA256()
		if h := hex.EncodeToString(sum[:]); h != g.SHA256 {
			t.Errorf("%s: torch sha256 %s, want %s", g.Name, g.SHA256, h)
		}
	}
}
