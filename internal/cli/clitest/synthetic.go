package clitest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/tensor"
)

// Synthetic writes to path (format from its extension) a state_dict laid out
// like torchvision's ResNet-50: 53 convolutions with BatchNorm (weight,
// bias, running_mean, running_var, num_batches_tracked) and a 1000-class
// fc, about 25.6 M float32 parameters (102 MB) of random values, scaled by
// scale (0.5 gives about half the bytes) to make benchmark inputs of a
// chosen size.
func Synthetic(tb testing.TB, path string, scale float64) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	c := &formats.Checkpoint{}
	add := func(name string, dt tensor.DType, shape ...int64) {
		t, err := tensor.FromBytes(dt, shape, randomBytes(rng, dt, shape))
		if err != nil {
			tb.Fatal(err)
		}
		c.Tensors = append(c.Tensors, formats.Named{Name: name, Tensor: t})
	}
	conv := func(name string, out, in, k int64) {
		out = max(1, int64(float64(out)*scale))
		add(name+".weight", tensor.Float32, out, in, k, k)
		bn := name + ".bn"
		add(bn+".weight", tensor.Float32, out)
		add(bn+".bias", tensor.Float32, out)
		add(bn+".running_mean", tensor.Float32, out)
		add(bn+".running_var", tensor.Float32, out)
		add(bn+".num_batches_tracked", tensor.Int64)
	}
	conv("conv1", 64, 3, 7)
	in := int64(64)
	for s, stage := range []struct{ blocks, width int64 }{{3, 64}, {4, 128}, {6, 256}, {3, 512}} {
		for b := range stage.blocks {
			p := fmt.Sprintf("layer%d.%d", s+1, b)
			conv(p+".conv1", stage.width, in, 1)
			conv(p+".conv2", stage.width, stage.width, 3)
			conv(p+".conv3", 4*stage.width, stage.width, 1)
			if b == 0 {
				conv(p+".downsample.0", 4*stage.width, in, 1)
			}
			in = 4 * stage.width
		}
	}
	add("fc.weight", tensor.Float32, max(1, int64(1000*scale)), 2048)
	add("fc.bias", tensor.Float32, max(1, int64(1000*scale)))
	if _, err := formats.Save(path, c, formats.SaveOptions{Force: true}); err != nil {
		tb.Fatal(err)
	}
}

func randomBytes(rng *rand.Rand, dt tensor.DType, shape []int64) []byte {
	n := int64(dt.Size())
	for _, d := range shape {
		n *= d
	}
	b := make([]byte, n)
	for i := 0; i < len(b); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// CNNBEntry describes one tensor of testdata/onnx/cnn_b.bin.
type CNNBEntry struct {
	Name, DType, SHA256 string
	Shape               []int64
	Offset, NBytes      int64
}

// CNNB writes to path the state_dict of the second instance (B) of the
// small CNN whose first instance testdata/onnx/cnn.onnx exports, from
// cnn_b.bin and cnn_b.json (made by testdata/gen/onnx_fixtures.py with
// torch), and returns its entries.
func CNNB(tb testing.TB, path string) []CNNBEntry {
	tb.Helper()
	dir := filepath.Join(Root(tb), "testdata", "onnx")
	raw, err := os.ReadFile(filepath.Join(dir, "cnn_b.bin"))
	if err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "cnn_b.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var entries []CNNBEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		tb.Fatal(err)
	}
	c := &formats.Checkpoint{}
	for _, e := range entries {
		dt, err := tensor.ParseDType(e.DType)
		if err != nil {
			tb.Fatal(err)
		}
		if e.Offset < 0 || e.NBytes < 0 || e.Offset+e.NBytes > int64(len(raw)) {
			tb.Fatalf("cnn_b.json: %s lies outside cnn_b.bin", e.Name)
		}
		x, err := tensor.FromBytes(dt, e.Shape, raw[e.Offset:e.Offset+e.NBytes])
		if err != nil {
			tb.Fatal(err)
		}
		c.Tensors = append(c.Tensors, formats.Named{Name: e.Name, Tensor: x})
	}
	if _, err := formats.Save(path, c, formats.SaveOptions{}); err != nil {
		tb.Fatal(err)
	}
	return entries
}
