package inspect

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
)

// benchInput writes a ResNet-50-sized PyTorch state_dict (102 MB, 320
// tensors; clitest.Synthetic) once per benchmark.
func benchInput(b *testing.B) string {
	path := filepath.Join(b.TempDir(), "resnet50.pt")
	clitest.Synthetic(b, path, 1)
	return path
}

// BenchmarkList measures `ckpt inspect FILE` on a ResNet-50-sized .pt:
// the target is under 50 ms per listing.
func BenchmarkList(b *testing.B) {
	path := benchInput(b)
	ios := &cmdutil.IOStreams{Out: io.Discard, ErrOut: io.Discard}
	b.ResetTimer()
	for b.Loop() {
		if err := inspectRun(&Options{IO: ios, File: path}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHash measures `ckpt inspect --hash` from the page cache; MB/s
// is tensor bytes hashed per second (target: 1 GB/s or more).
func BenchmarkHash(b *testing.B) {
	path := benchInput(b)
	ios := &cmdutil.IOStreams{Out: io.Discard, ErrOut: io.Discard}
	c, err := cmdutil.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(c.NumBytes())
	c.Close()
	b.ResetTimer()
	for b.Loop() {
		if err := inspectRun(&Options{IO: ios, File: path, Hash: true}); err != nil {
			b.Fatal(err)
		}
	}
}
