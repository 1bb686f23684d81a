package pickle

import (
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
// (testdata/gen/pickle_fixtures.py --resnet50) into a temporary directory
// kept for the process, or skips without torch.
func resnet50(b *testing.B) string {
	py := torchPython(b)
	resnetOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ckpt-pickle-bench")
		if err != nil {
			resnetErr = err
			return
		}
		resnetPath = filepath.Join(dir, "resnet50.pt")
		out, err := exec.Command(py, filepath.Join("..", "testdata", "gen", "pickle_fixtures.py"), "--resnet50", resnetPath).CombinedOutput()
		if err != nil {
			resnetErr = err
			b.Logf("%s", out)
		}
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
	b.ResetTimer()
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
	b.ResetTimer()
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
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.Hashes(0); err != nil {
			b.Fatal(err)
		}
	}
}
