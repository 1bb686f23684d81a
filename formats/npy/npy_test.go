package npy

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/internal/testenv"
	"github.com/ckptkit/ckpt/tensor"
)

// The fixtures and their manifest are written by numpy.save through
// testdata/gen/npy_fixtures.py.
const fixtureDir = "../../testdata/npy"

type entry struct {
	DType  string  `json:"dtype"`
	Shape  []int64 `json:"shape"`
	SHA256 string  `json:"sha256"`
}

func checkDir(t *testing.T, dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Arrays map[string]entry `json:"arrays"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Arrays) == 0 {
		t.Fatal("manifest lists no arrays")
	}
	for name, want := range m.Arrays {
		t.Run(name, func(t *testing.T) {
			x, closeFn, err := Open(filepath.Join(dir, name+".npy"))
			if err != nil {
				t.Fatal(err)
			}
			defer closeFn()
			if x.DType.String() != want.DType || !slices.Equal(x.Shape, want.Shape) {
				t.Fatalf("got %s%v, want %s%v", x.DType, x.Shape, want.DType, want.Shape)
			}
			sum, err := x.SHA256()
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(sum[:]); got != want.SHA256 {
				t.Fatalf("sha256 %s, want %s", got, want.SHA256)
			}
			// Write it back and read it again: same dtype, shape and bytes.
			var buf bytes.Buffer
			if err := Write(&buf, x); err != nil {
				t.Fatal(err)
			}
			y, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
			if err != nil {
				t.Fatalf("reading back: %v", err)
			}
			if s2, _ := y.SHA256(); s2 != sum || !slices.Equal(y.Shape, x.Shape) || y.DType != x.DType {
				t.Fatalf("round trip changed the array")
			}
		})
	}
}

func TestNumpyFixtures(t *testing.T) { checkDir(t, fixtureDir) }

// TestNumpyInterop writes fresh arrays with a random seed, reads them, and
// has NumPy load what Write produced.
func TestNumpyInterop(t *testing.T) {
	py := testenv.Python(t)
	dir := t.TempDir()
	seed := strconv.FormatInt(time.Now().UnixNano()%1_000_000, 10)
	if out, err := exec.Command(py, "../../testdata/gen/npy_fixtures.py", "--out", dir, "--seed", seed).CombinedOutput(); err != nil {
		t.Fatalf("generator: %v\n%s", err, out)
	}
	checkDir(t, dir)
	x, closeFn, err := Open(filepath.Join(dir, "f32_fortran.npy"))
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	out := filepath.Join(dir, "written.npy")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(f, x); err != nil {
		t.Fatal(err)
	}
	f.Close()
	script := `import numpy as np, sys, hashlib
a = np.load(sys.argv[1], allow_pickle=False)
b = np.load(sys.argv[2], allow_pickle=False)
assert a.dtype == b.dtype and a.shape == b.shape and (a == b).all(), (a.dtype, b.dtype, a.shape, b.shape)
print("ok")`
	if out, err := exec.Command(py, "-c", script, filepath.Join(dir, "f32_fortran.npy"), out).CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("numpy rejected what Write produced: %v\n%s", err, out)
	}
}

func TestReadRejects(t *testing.T) {
	good := func(dict string, data int) []byte {
		b := []byte("\x93NUMPY\x01\x00")
		b = append(b, byte(len(dict)), byte(len(dict)>>8))
		b = append(b, dict...)
		return append(b, make([]byte, data)...)
	}
	cases := []struct {
		name, want string
		b          []byte
	}{
		{"empty", "too short", nil},
		{"magic", "magic", []byte("PK\x03\x04 not npy at all")},
		{"version", "version", []byte("\x93NUMPY\x09\x00\x00\x00")},
		{"header past end", "past the end", []byte("\x93NUMPY\x01\x00\xff\x00{}")},
		{"object dtype", "unsupported descr", good("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }\n", 8)},
		{"complex", "unsupported descr", good("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }\n", 8)},
		{"missing key", "lacks", good("{'descr': '<f4', 'shape': (1,), }\n", 4)},
		{"negative dim", "bad dimension", good("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }\n", 4)},
		{"huge shape", "too many elements", good("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n", 4)},
		{"short data", "needs 16 bytes", good("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }\n", 12)},
		{"long data", "needs 16 bytes", good("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }\n", 20)},
		{"trailing", "trailing", good("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), } x\n", 4)},
		{"duplicate", "duplicate", good("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n", 4)},
		{"bad bool", "True or False", good("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }\n", 4)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(c.b), int64(len(c.b)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Read = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestWriteRefusesBFloat16(t *testing.T) {
	x, _ := tensor.FromBytes(tensor.BFloat16, []int64{1}, []byte{0, 0})
	if err := Write(&bytes.Buffer{}, x); err == nil {
		t.Fatal("Write accepted bfloat16, which NumPy cannot load")
	}
}

// FuzzRead: no input may panic, and what Read accepts must survive a
// write-and-read-back round trip with the same bytes.
func FuzzRead(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(fixtureDir, "*.npy"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		sum, err := x.SHA256()
		if err != nil {
			t.Fatalf("accepted array unreadable: %v", err)
		}
		var buf bytes.Buffer
		if err := Write(&buf, x); err != nil {
			t.Fatal(err)
		}
		y, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatalf("reading back: %v", err)
		}
		if s2, _ := y.SHA256(); s2 != sum {
			t.Fatal("round trip changed the bytes")
		}
	})
}
