package pickle

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ckptkit/ckpt/tensor"
)

func fixture(name string) string { return filepath.Join("..", "testdata", "pickle", name) }

func openFixture(t *testing.T, name string) *File {
	t.Helper()
	f, err := Open(fixture(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func tensorByName(t *testing.T, f *File, name string) *tensor.Tensor {
	t.Helper()
	for _, n := range f.Tensors {
		if n.Name == name {
			return n.Tensor
		}
	}
	t.Fatalf("no tensor %q", name)
	return nil
}

// TestSharedStorages checks that tensors viewing one storage in the file
// share one *tensor.Storage (views.pt: shared_a, shared_b and slice view
// one arange storage; made by testdata/gen/pickle_fixtures.py).
func TestSharedStorages(t *testing.T) {
	for _, tc := range []struct {
		file   string
		shared []string
		other  string
	}{
		{"views.pt", []string{"shared_a", "shared_b", "slice"}, "transposed"},
		{"legacy_views.pt", []string{"shared_a", "shared_b", "slice"}, "transposed"},
		{"tar_state_dict.pt", []string{"views.a", "views.s"}, "views.t"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f := openFixture(t, tc.file)
			st := tensorByName(t, f, tc.shared[0]).Storage
			for _, name := range tc.shared[1:] {
				if got := tensorByName(t, f, name).Storage; got != st {
					t.Errorf("%s: got storage %p (%s), want %p (%s) shared with %s", name, got, got.Key, st, st.Key, tc.shared[0])
				}
			}
			if got := tensorByName(t, f, tc.other).Storage; got == st {
				t.Errorf("%s shares the storage of %s, want its own", tc.other, tc.shared[0])
			}
		})
	}
}

// spanReader records the byte ranges read from it.
type spanReader struct {
	r     io.ReaderAt
	mu    sync.Mutex
	spans [][2]int64
}

func (s *spanReader) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	s.spans = append(s.spans, [2]int64{off, off + int64(len(p))})
	s.mu.Unlock()
	return s.r.ReadAt(p, off)
}

// TestLazy checks that loading a zip-format file reads no storage bytes
// beyond fixed-size probes.
func TestLazy(t *testing.T) {
	for _, name := range []string{"zip_state_dict.pt", "checkpoint.pt", "torchscript.pt", "model_zip.pt"} {
		t.Run(name, func(t *testing.T) {
			fh, err := os.Open(fixture(name))
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			sr := &spanReader{r: fh}
			f, err := Load(sr, fileSize(t, fixture(name)))
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Tensors) == 0 {
				t.Fatal("no tensors")
			}
			// Count the storage bytes that loading read: only the fixed-size
			// reads of the format sniffing (512 bytes at 0) and of the zip
			// end-of-directory search (the last 1 KiB) may touch them.
			seen := map[*tensor.Storage]bool{}
			var inside int64
			for _, n := range f.Tensors {
				if seen[n.Tensor.Storage] {
					continue
				}
				seen[n.Tensor.Storage] = true
				src, off := n.Tensor.Storage.Source()
				if src != io.ReaderAt(sr) {
					continue // numpy arrays live in the pickle, in memory
				}
				end := off + n.Tensor.Storage.Size()
				for _, s := range sr.spans {
					if lo, hi := max(s[0], off), min(s[1], end); lo < hi {
						inside += hi - lo
					}
				}
			}
			if inside > 512+1024 {
				t.Errorf("load read %d storage bytes, want at most %d", inside, 512+1024)
			}
		})
	}
}

// TestByteOrder checks that the byteorder record marks storages big-endian
// (zip_bigendian.pt; TestFixtures checks its values against torch's).
func TestByteOrder(t *testing.T) {
	for _, tc := range []struct {
		file string
		big  bool
	}{{"zip_state_dict.pt", false}, {"zip_bigendian.pt", true}} {
		f := openFixture(t, tc.file)
		for _, n := range f.Tensors {
			if n.Tensor.Storage.BigEndian != tc.big {
				t.Errorf("%s %s: got BigEndian %v, want %v", tc.file, n.Name, n.Tensor.Storage.BigEndian, tc.big)
			}
		}
	}
}

// TestRoot checks the decoded object of a training checkpoint: an ordered
// dict whose keys are, in order, the first components of the paths torch
// reported in the manifest.
func TestRoot(t *testing.T) {
	m := readManifest(t, filepath.Join("..", "testdata", "pickle"))
	for _, e := range m.Files {
		if e.File != "checkpoint.pt" {
			continue
		}
		var want []string
		add := func(path string) {
			k, _, _ := strings.Cut(path, ".")
			if !slices.Contains(want, k) {
				want = append(want, k)
			}
		}
		f := openFixture(t, e.File)
		for _, tt := range e.Tensors {
			add(tt.Name)
		}
		for _, mm := range e.Meta {
			add(mm.Path)
		}
		d, ok := f.Root.(*Dict)
		if !ok {
			t.Fatalf("root is %T, want *Dict", f.Root)
		}
		var got []string
		for _, k := range d.Keys {
			got = append(got, k.(string))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("root keys: got %q, want %q", got, want)
		}
		flags, _ := d.Get("flags")
		if l, ok := flags.([]any); !ok || len(l) != 2 || l[0] != true || l[1] != nil {
			t.Errorf("flags: got %#v, want []any{true, nil}", flags)
		}
		return
	}
	t.Fatal("manifest has no checkpoint.pt")
}

func TestForbiddenErrorType(t *testing.T) {
	_, err := Open(filepath.Join("..", "testdata", "malicious", "payload_os_system_zip.pt"))
	var fe *ForbiddenError
	if !errors.As(err, &fe) {
		t.Fatalf("got %v, want a *ForbiddenError", err)
	}
	if fe.Global != "posix.system" {
		t.Errorf("got global %q, want %q", fe.Global, "posix.system")
	}
}

func TestOpenMissing(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "missing.pt"))
	if err == nil || !strings.HasPrefix(err.Error(), "pickle: ") {
		t.Errorf("got %v, want an error prefixed \"pickle: \"", err)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		module, name string
		want         category
	}{
		{"posix", "system", catForbidden},
		{"os", "system", catForbidden},
		{"os.path", "join", catForbidden},
		{"nt", "system", catForbidden},
		{"subprocess", "Popen", catForbidden},
		{"builtins", "eval", catForbidden},
		{"builtins", "exec", catForbidden},
		{"__builtin__", "getattr", catForbidden},
		{"builtins", "__import__", catForbidden},
		{"runpy", "_run_code", catForbidden},
		{"importlib", "import_module", catForbidden},
		{"sys", "modules", catForbidden},
		{"shutil", "rmtree", catForbidden},
		{"socket", "socket", catForbidden},
		{"torch", "__builtins__", catForbidden},
		{"collections", "OrderedDict.__getattribute__", catForbidden},
		{"torch._utils", "_rebuild_tensor_v2", catCall},
		{"torch._utils", "_rebuild_parameter", catCall},
		{"collections", "OrderedDict", catCall},
		{"copyreg", "_reconstructor", catCall},
		{"torch", "FloatStorage", catValue},
		{"torch", "bfloat16", catValue},
		{"torchvision.models.resnet", "ResNet", catClass},
		{"__main__", "Net", catClass},
		{"builtins", "object", catClass},
		{"numpy.core.multiarray", "_reconstruct", catCall},
		{"numpy", "load", catClass},
	} {
		if got := classify(tc.module, tc.name); got != tc.want {
			t.Errorf("classify(%q, %q): got %d, want %d", tc.module, tc.name, got, tc.want)
		}
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestHashes checks File.Hashes against Tensor.SHA256 one by one, over
// fixtures with views, every dtype and big-endian storages.
func TestHashes(t *testing.T) {
	for _, name := range []string{"checkpoint.pt", "views.pt", "dtypes.pt", "zip_bigendian.pt", "legacy_views.pt"} {
		f := openFixture(t, name)
		sums, err := f.Hashes(3)
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range f.Tensors {
			want, err := n.Tensor.SHA256()
			if err != nil {
				t.Fatal(err)
			}
			if sums[i] != want {
				t.Errorf("%s %s: got %x, want %x", name, n.Name, sums[i], want)
			}
		}
	}
}

func TestDictGet(t *testing.T) {
	d := &Dict{Keys: []any{Tuple{int64(1)}, "a", int64(2), nil}, Values: []any{"tuple", "str", "int", "none"}}
	for _, tc := range []struct {
		key  any
		want any
		ok   bool
	}{
		{"a", "str", true},
		{int64(2), "int", true},
		{nil, "none", true},
		{2.0, nil, false},
		{Tuple{int64(1)}, nil, false}, // incomparable: never found, never a panic
		{"missing", nil, false},
	} {
		got, ok := d.Get(tc.key)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Get(%#v): got %v, %v, want %v, %v", tc.key, got, ok, tc.want, tc.ok)
		}
	}
}
