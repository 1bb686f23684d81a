package pickle

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/tensor"
)

// seedFiles returns the contents of every fixture and corpus file.
func seedFiles(t testing.TB) map[string][]byte {
	out := map[string][]byte{}
	for _, dir := range []string{"pickle", "malicious"} {
		paths, _ := filepath.Glob(filepath.Join("..", "testdata", dir, "*"))
		for _, p := range paths {
			if strings.HasSuffix(p, ".json") {
				continue
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out[p] = b
		}
	}
	return out
}

// checkLoaded asserts what any successful load must satisfy: every tensor
// is a valid view of its storage and its bytes stream without panicking,
// and listing the same input twice gives the same names.
func checkLoaded(t *testing.T, f *File, again func() (*File, error)) {
	for _, n := range f.Tensors {
		if err := n.Tensor.Validate(); err != nil {
			t.Fatalf("%s: listed an invalid tensor: %v", n.Name, err)
		}
		if n.Tensor.NumBytes() <= 1<<20 {
			n.Tensor.SHA256() // may fail on a short file, must not panic
		}
	}
	g, err := again()
	if err != nil {
		t.Fatalf("second load failed: %v", err)
	}
	if len(g.Tensors) != len(f.Tensors) || len(g.Meta) != len(f.Meta) {
		t.Fatalf("second load: %d tensors %d meta, first %d and %d", len(g.Tensors), len(g.Meta), len(f.Tensors), len(f.Meta))
	}
	for i := range f.Tensors {
		if f.Tensors[i].Name != g.Tensors[i].Name {
			t.Fatalf("second load: tensor %d named %q, first %q", i, g.Tensors[i].Name, f.Tensors[i].Name)
		}
	}
}

// noPanic fails if an error reports a panic recovered inside the VM: the
// validating pass must make every such input an ordinary error.
func noPanic(t *testing.T, err error) {
	if err != nil && strings.Contains(err.Error(), "malformed pickle (") {
		t.Fatalf("the VM panicked: %v", err)
	}
}

// fuzzStorages resolves any storage persistent id to zeroed memory.
func fuzzStorages(pid any) (any, error) {
	items, err := sequence(pid)
	if err != nil || len(items) < 5 {
		return nil, io.ErrUnexpectedEOF
	}
	vt, ok := items[1].(*valueRef)
	numel, err := toInt(items[4])
	if !ok || !vt.dtype.Valid() || err != nil || numel < 0 || numel > 1<<12 {
		return nil, io.ErrUnexpectedEOF
	}
	return &storageRef{dtype: vt.dtype, st: tensor.NewStorageBytes(make([]byte, numel*int64(vt.dtype.Size()))), n: -1}, nil
}

// fuzzLimits lowers the VM's and the walker's limits for a fuzz target (and
// puts them back after it): with the real ones (4M opcodes, 4M objects
// visited, 512 MiB of work) one input that runs up to a limit, such as a
// billion-laughs graph of shared lists, took a large part of a second, and
// the fuzzer kept finding such inputs. At these values the same checks
// still refuse them, in microseconds.
func fuzzLimits(f *testing.F) {
	old := limit
	limit.ops, limit.stack, limit.memo, limit.nodes, limit.work = 1<<16, 1<<14, 1<<14, 1<<16, 16<<20
	f.Cleanup(func() { limit = old })
}

// FuzzLoad fuzzes the pickle layer: the validating pass, the VM and the
// conversion, seeded with every pickle of testdata.
func FuzzLoad(f *testing.F) {
	fuzzLimits(f)
	for _, b := range seedFiles(f) {
		if zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b))); err == nil {
			for _, e := range zr.File {
				if strings.HasSuffix(e.Name, ".pkl") && e.UncompressedSize64 < 1<<20 {
					if rc, err := e.Open(); err == nil {
						p, _ := io.ReadAll(rc)
						rc.Close()
						f.Add(p)
					}
				}
			}
			continue
		}
		if len(b) < 1<<20 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		root, _, err := unpickle(data, fuzzStorages)
		noPanic(t, err)
		if err != nil {
			return
		}
		file := &File{Root: root}
		if err := file.finish(nil); err != nil {
			return
		}
		checkLoaded(t, file, func() (*File, error) {
			root, _, err := unpickle(data, fuzzStorages)
			if err != nil {
				return nil, err
			}
			g := &File{Root: root}
			return g, g.finish(nil)
		})
		roundTrip(t, file)
	})
}

// FuzzZip fuzzes whole files (zip, TorchScript, legacy and tar
// containers), seeded with every file of testdata/pickle and
// testdata/malicious.
func FuzzZip(f *testing.F) {
	fuzzLimits(f)
	for _, b := range seedFiles(f) {
		f.Add(b)
	}
	addRecordSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Load(bytes.NewReader(data), int64(len(data)))
		noPanic(t, err)
		if err != nil {
			return
		}
		checkLoaded(t, file, func() (*File, error) { return Load(bytes.NewReader(data), int64(len(data))) })
		roundTrip(t, file)
	})
}

// addRecordSeeds adds recordBase with each small case of recordCases as
// its metadata record.
func addRecordSeeds(f *testing.F) {
	base, err := os.ReadFile(recordBase)
	if err != nil {
		f.Fatal(err)
	}
	for _, tc := range recordCases {
		if len(tc.content) <= 1<<10 {
			f.Add(withRecord(f, base, []byte(tc.content), zip.Store))
		}
	}
}

// seedsOf returns the seed files whose content starts as pick says.
func seedsOf(f *testing.F, pick func([]byte) bool) {
	for _, b := range seedFiles(f) {
		if pick(b) {
			f.Add(b)
		}
	}
}

func isLegacySeed(b []byte) bool {
	return len(b) > 2 && b[0] == 0x80 && !IsTarHeader(b[:min(len(b), 512)])
}

// FuzzLegacy fuzzes the legacy layer (five pickles, then the storages),
// seeded with the legacy files of testdata.
func FuzzLegacy(f *testing.F) {
	fuzzLimits(f)
	seedsOf(f, isLegacySeed)
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := loadLegacy(bytes.NewReader(data), int64(len(data)))
		noPanic(t, err)
		if err != nil {
			return
		}
		checkLoaded(t, file, func() (*File, error) { return loadLegacy(bytes.NewReader(data), int64(len(data))) })
	})
}

// FuzzTar fuzzes the tar layer (members sys_info, pickle, tensors,
// storages), seeded with the tar files of testdata.
func FuzzTar(f *testing.F) {
	fuzzLimits(f)
	seedsOf(f, func(b []byte) bool { return IsTarHeader(b[:min(len(b), 512)]) })
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := loadTar(bytes.NewReader(data), int64(len(data)))
		noPanic(t, err)
		if err != nil {
			return
		}
		checkLoaded(t, file, func() (*File, error) { return loadTar(bytes.NewReader(data), int64(len(data))) })
	})
}

// FuzzScan fuzzes the scanner on whole files and checks that it agrees
// with the reader: a file Load accepts has no finding above LOW (the
// reader refuses every global, call and anomaly the scanner reports above
// LOW), except that a legacy file may also hold a zip directory; a torch
// file Load refuses is never clean to Scan.
func FuzzScan(f *testing.F) {
	fuzzLimits(f)
	for _, b := range seedFiles(f) {
		f.Add(b)
	}
	addRecordSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		rep := Scan(bytes.NewReader(data), int64(len(data)))
		file, err := Load(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			// Bare pickles and joblib files are no torch files: the reader
			// refuses them whatever they hold.
			if rep.Format != FormatPickle && rep.Format != FormatJoblib && len(rep.Errors) == 0 {
				for _, x := range rep.Findings {
					if x.Severity > SeverityLow {
						return
					}
				}
				t.Fatalf("the reader refuses the file (%v), Scan calls it clean", err)
			}
			return
		}
		file.Close()
		for _, x := range rep.Findings {
			if x.Severity > SeverityLow && x.Global != "pickle-zip-polyglot" {
				t.Fatalf("Load accepts the file, Scan reports %s %s at %d (%s)", x.Severity, x.Global, x.Offset, x.Description)
			}
		}
		if len(rep.Errors) > 0 {
			t.Fatalf("Load accepts the file, Scan could not read it: %v", rep.Errors)
		}
	})
}
