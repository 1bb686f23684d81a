package pickle

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/ckptkit/ckpt/internal/testenv"
)

// manifest is what testdata/gen/pickle_fixtures.py records of each file:
// what torch itself reports after loading it.
type manifest struct {
	Torch string `json:"torch"`
	Seed  int    `json:"seed"`
	Files []struct {
		File     string   `json:"file"`
		Format   string   `json:"format"`
		IsModule bool     `json:"is_module"`
		Classes  []string `json:"classes"`
		Modules  *Module  `json:"modules"`
		Tensors  []struct {
			Name   string  `json:"name"`
			DType  string  `json:"dtype"`
			Shape  []int64 `json:"shape"`
			SHA256 string  `json:"sha256"`
		} `json:"tensors"`
		Meta []struct {
			Path  string          `json:"path"`
			Value json.RawMessage `json:"value"`
		} `json:"meta"`
	} `json:"files"`
}

func readManifest(t *testing.T, dir string) *manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Files) == 0 {
		t.Fatal("manifest lists no files")
	}
	return &m
}

// metaJSON renders a decoded metadata value as the JSON Python's json
// module writes for it.
func metaJSON(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case *big.Int:
		return x.String()
	case float64:
		b, _ := json.Marshal(x)
		return string(b)
	case string:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return fmt.Sprintf("%T(%v)", v, v)
}

// sameJSON compares a Python-written JSON scalar with ours: numbers by value.
func sameJSON(want json.RawMessage, got string) bool {
	if bytes.Equal(want, []byte(got)) {
		return true
	}
	a, err1 := strconv.ParseFloat(string(want), 64)
	b, err2 := strconv.ParseFloat(got, 64)
	return err1 == nil && err2 == nil && a == b
}

// checkManifest opens every file the manifest in dir lists and compares the
// listing with what torch reported.
func checkManifest(t *testing.T, dir string) {
	m := readManifest(t, dir)
	for _, want := range m.Files {
		t.Run(want.File, func(t *testing.T) {
			f, err := Open(filepath.Join(dir, want.File))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Format != want.Format {
				t.Errorf("format: got %q, want %q", f.Format, want.Format)
			}
			if f.IsModule != want.IsModule {
				t.Errorf("IsModule: got %v, want %v", f.IsModule, want.IsModule)
			}
			if want.Classes != nil && !slices.Equal(f.Classes, want.Classes) {
				t.Errorf("classes: got %q, want %q", f.Classes, want.Classes)
			}
			if want.Modules != nil {
				if f.Modules == nil {
					t.Errorf("got no module tree, want one")
				} else if g, w := treeString(f.Modules), treeString(want.Modules); g != w {
					t.Errorf("module tree:\ngot  %s\nwant %s", g, w)
				}
			}
			if len(f.Tensors) != len(want.Tensors) {
				var names []string
				for _, n := range f.Tensors {
					names = append(names, n.Name)
				}
				t.Fatalf("got %d tensors %q, want %d", len(f.Tensors), names, len(want.Tensors))
			}
			for i, wt := range want.Tensors {
				got := f.Tensors[i]
				if got.Name != wt.Name {
					t.Errorf("tensor %d: got name %q, want %q", i, got.Name, wt.Name)
					continue
				}
				if got.Tensor.DType.String() != wt.DType {
					t.Errorf("%s: got dtype %s, want %s", wt.Name, got.Tensor.DType, wt.DType)
				}
				if !slices.Equal(got.Tensor.Shape, wt.Shape) && !(len(got.Tensor.Shape) == 0 && len(wt.Shape) == 0) {
					t.Errorf("%s: got shape %v, want %v", wt.Name, got.Tensor.Shape, wt.Shape)
				}
				sum, err := got.Tensor.SHA256()
				if err != nil {
					t.Errorf("%s: %v", wt.Name, err)
				} else if h := hex.EncodeToString(sum[:]); h != wt.SHA256 {
					t.Errorf("%s: got sha256 %s, want %s", wt.Name, h, wt.SHA256)
				}
			}
			if len(f.Meta) != len(want.Meta) {
				t.Fatalf("got %d metadata leaves %v, want %d", len(f.Meta), f.Meta, len(want.Meta))
			}
			for i, wm := range want.Meta {
				got := f.Meta[i]
				if got.Path != wm.Path || !sameJSON(wm.Value, metaJSON(got.Value)) {
					t.Errorf("meta %d: got %s=%s, want %s=%s", i, got.Path, metaJSON(got.Value), wm.Path, wm.Value)
				}
			}
		})
	}
}

// TestFixtures checks the committed files of testdata/pickle, written by
// testdata/gen/pickle_fixtures.py with torch 1.13, against torch's manifest.
func TestFixtures(t *testing.T) {
	checkManifest(t, filepath.Join("..", "testdata", "pickle"))
}

// torchPython returns /usr/bin/python3 when it can import torch, or skips.
func torchPython(t testing.TB) string {
	t.Helper()
	return testenv.Python(t) // skips without torch; fails under CKPT_REQUIRE_INTEROP=1
}

// TestInterop writes fresh checkpoints of every kind with torch and a random
// seed, and checks the listing against torch's manifest.
func TestInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping interop test in -short mode")
	}
	py := torchPython(t)
	dir := t.TempDir()
	seed := rand.IntN(1 << 20)
	cmd := exec.Command(py, filepath.Join("..", "testdata", "gen", "pickle_fixtures.py"), "--out", dir, "--seed", strconv.Itoa(seed))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pickle_fixtures.py --seed %d: %v\n%s", seed, err, out)
	}
	t.Logf("seed %d", seed)
	checkManifest(t, dir)
}

// treeString renders a module tree on one line for comparison.
func treeString(m *Module) string {
	s := fmt.Sprintf("%s:%s p%q b%q [", m.Name, m.Class, m.Params, m.Buffers)
	for _, c := range m.Children {
		s += treeString(c) + " "
	}
	return s + "]"
}

// TestInteropTorchvision checks whole torchvision models (torch.save(model))
// against torch's own state_dict, class names and module tree.
func TestInteropTorchvision(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping interop test in -short mode")
	}
	py := torchPython(t)
	dir := t.TempDir()
	cmd := exec.Command(py, filepath.Join("..", "testdata", "gen", "pickle_fixtures.py"), "--torchvision", "--out", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pickle_fixtures.py --torchvision: %v\n%s", err, out)
	}
	checkManifest(t, dir)
}
