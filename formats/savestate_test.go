package formats_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/nn"
)

// TestSaveStateDict saves a module's state_dict in each format and reads it
// back: same names in order, same bytes, metadata kept where the format
// holds it.
func TestSaveStateDict(t *testing.T) {
	nn.ManualSeed(3)
	m := nn.NewSequential(nn.NewLinear(nil, 4, 3, true), nn.NewBatchNorm2d(nil, 3))
	sd := m.StateDict()
	meta := map[string]string{"classes": `["a","b","c"]`}
	for _, ext := range []string{".safetensors", ".pt"} {
		t.Run(ext, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m"+ext)
			res, err := formats.SaveStateDict(path, sd, meta, formats.SaveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			c, err := formats.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got, want := c.Names(), sd.Names(); len(got) != len(want) {
				t.Fatalf("got names %v, want %v", got, want)
			}
			for i, want := range sd {
				got := c.Tensors[i]
				if got.Name != want.Name {
					t.Fatalf("tensor %d: got name %q, want %q", i, got.Name, want.Name)
				}
				gb, err := got.Tensor.Bytes()
				if err != nil {
					t.Fatal(err)
				}
				wb, err := want.Tensor.Bytes()
				if err != nil {
					t.Fatal(err)
				}
				if got.Tensor.DType != want.Tensor.DType || !bytes.Equal(gb, wb) {
					t.Errorf("%s: got %s %d bytes, want %s %d bytes (or the bytes differ)", want.Name, got.Tensor.DType, len(gb), want.Tensor.DType, len(wb))
				}
			}
			if got := c.Metadata()["classes"]; got != meta["classes"] {
				t.Errorf("metadata classes: got %q, want %q", got, meta["classes"])
			}
			if len(res.DroppedMeta) != 0 {
				t.Errorf("DroppedMeta: got %v, want none", res.DroppedMeta)
			}
		})
	}
}
