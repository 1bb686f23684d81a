package convert

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
)

// BenchmarkConvert measures `ckpt convert resnet50.pt out.safetensors` on a
// ResNet-50-sized state_dict (102 MB, clitest.Synthetic) from the page
// cache. Compare its MB/s with cp's on the same file (the target is
// within 2x of cp):
//
//	go test ./internal/cli/convert -run - -bench Convert -benchtime 5x
func BenchmarkConvert(b *testing.B) {
	dir := b.TempDir()
	in := filepath.Join(dir, "resnet50.pt")
	clitest.Synthetic(b, in, 1)
	st, err := os.Stat(in)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	ios := &cmdutil.IOStreams{Out: io.Discard, ErrOut: io.Discard}
	out := filepath.Join(dir, "out.safetensors")
	b.ResetTimer()
	for b.Loop() {
		if err := convertRun(&Options{IO: ios, In: in, Out: out, Force: true}); err != nil {
			b.Fatal(err)
		}
	}
}
