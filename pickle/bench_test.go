package pickle

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	resnetOnce sync.Once
	resnetPath string
	resnetErr  error
)

// resnet50 returns the path of a ResNet-50 state_dict written by torchvision
// (testdata/gen/pickle_fixtures.py --resnet50) into $TMPDIR/ckpt-pickle-bench,
// or skips without torch.
func resnet50(b *testing.B) string {
	py := torchPython(b)
	resnetOnce.Do(func() {
		// Kept between runs: torchvision takes seconds to write it.
		dir := filepath.Join(os.TempDir(), "ckpt-pickle-bench")
		resnetPath = filepath.Join(dir, "resnet50.pt")
		if _, err := os.Stat(resnetPath); err == nil {
			return
		}
		if resnetErr = os.MkdirAll(dir, 0o755); resnetErr != nil {
			return
		}
		tmp := resnetPath + ".tmp"
		out, err := exec.Command(py, filepath.Join("..", "testdata", "gen", "pickle_fixtures.py"), "--resnet50", tmp).CombinedOutput()
		if err != nil {
			resnetErr = fmt.Errorf("%v\n%s", err, out)
			return
		}
		resnetErr = os.Rename(tmp, resnetPath)
	})
	if resnetErr != nil {
		b.Fatal(resnetErr)
	}
	return resnetPath
}

// BenchmarkOpenResNet50 measures listing a 102 MB state_dict: reading the
// zip directory and the pickle, naming and validating 320 tensors.
func BenchmarkOpenResNet50(b *testing.B) {
	path := resnet50(b)
	cpu0 := cpuSeconds()
	b.ResetTimer()
	defer func() {
		// On a shared machine wall time includes waiting for a core; the
		// process's CPU time per open is the cost of listing itself.
		if cpu0 >= 0 {
			b.ReportMetric((cpuSeconds()-cpu0)*1e3/float64(b.N), "cpu-ms/op")
		}
	}()
	for b.Loop() {
		f, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		if len(f.Tensors) != 320 {
			b.Fatalf("got %d tensors, want 320", len(f.Tensors))
		}
		f.Close()
	}
}

// BenchmarkHashResNet50 measures SHA-256 of every tensor of a ResNet-50
// state_dict, from the page cache; MB/s counts tensor bytes.
func BenchmarkHashResNet50(b *testing.B) {
	path := resnet50(b)
	f, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var total int64
	for _, n := range f.Tensors {
		total += n.Tensor.NumBytes()
	}
	b.SetBytes(total)
	cpu0 := cpuSeconds()
	b.ResetTimer()
	defer func() {
		// Bytes hashed per second of the process's CPU time, which a
		// loaded machine does not distort as it does wall time.
		if cpu0 >= 0 {
			b.ReportMetric(float64(total)*float64(b.N)/1e6/(cpuSeconds()-cpu0), "MB/cpu-s")
		}
	}()
	for b.Loop() {
		for _, n := range f.Tensors {
			if _, err := n.Tensor.SHA256(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkHashesResNet50 is BenchmarkHashResNet50 through File.Hashes,
// which hashes tensors on every core.
func BenchmarkHashesResNet50(b *testing.B) {
	path := resnet50(b)
	f, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var total int64
	for _, n := range f.Tensors {
		total += n.Tensor.NumBytes()
	}
	b.SetBytes(total)
	cpu0 := cpuSeconds()
	b.ResetTimer()
	defer func() {
		if cpu0 >= 0 {
			b.ReportMetric(float64(total)*float64(b.N)/1e6/(cpuSeconds()-cpu0), "MB/cpu-s")
		}
	}()
	for b.Loop() {
		if _, err := f.Hashes(0); err != nil {
			b.Fatal(err)
		}
	}
}
