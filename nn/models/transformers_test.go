package models

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/nn"
)

// transformerFixtureSpecs mirror FIXTURES in testdata/gen/models_transformers.py
// (its --fixtures output is testdata/models/<name>.*, listed in
// manifest_transformers.json); TestFixtures and TestRecordedPath
// (harness_test.go) check them without torch.
var transformerFixtureSpecs = map[string]Spec{
	"vit_small": {Classifier: "heads.head.weight", Build: func(cfg Config) (nn.Module, error) {
		return newViT(cfg, vitArch{patch: 8, layers: 2, heads: 2, hidden: 16, mlp: 32})
	}},
	"swin_small": {Classifier: "head.weight", Build: func(cfg Config) (nn.Module, error) {
		return newSwin(cfg, swinArch{embed: 8, depths: []int{2, 2}, heads: []int{1, 2}, window: 3, sdProb: 0.1})
	}},
	"swinv2_small": {Classifier: "head.weight", Build: func(cfg Config) (nn.Module, error) {
		return newSwin(cfg, swinArch{embed: 8, depths: []int{2, 2}, heads: []int{1, 2}, window: 3, sdProb: 0.1, v2: true})
	}},
	"maxvit_small": {Classifier: "classifier.5.weight", Build: func(cfg Config) (nn.Module, error) {
		cfg.ImageSize = 28
		return newMaxVit(cfg, maxvitArch{stem: 8, channels: []int{16}, layers: []int{2}, headDim: 8, sdProb: 0.2, partitionSize: 7})
	}},
}

// TestTransformerLoadFileFormats writes each transformer fixture's weights
// (int64 relative_position_index buffers included) as a training checkpoint
// in every format package formats writes (PyTorch zip, safetensors, sharded
// safetensors, ONNX initializers) and loads it back through LoadFile, as
// TestLoadFileFormats does for a CNN.
func TestTransformerLoadFileFormats(t *testing.T) {
	for _, name := range slices.Sorted(maps.Keys(transformerFixtureSpecs)) {
		spec := transformerFixtureSpecs[name]
		spec.Name = name
		sd := fixtureState(t, name)
		x, want := fixtureIO(t, name)
		c := &formats.Checkpoint{}
		for _, n := range sd {
			c.Tensors = append(c.Tensors, formats.Named{Name: "state_dict." + n.Name, Tensor: n.Tensor})
		}
		dir := t.TempDir()
		for _, tc := range []struct {
			file string
			opts formats.SaveOptions
			open string
		}{
			{"ckpt.pt", formats.SaveOptions{}, "ckpt.pt"},
			{"ckpt.safetensors", formats.SaveOptions{}, "ckpt.safetensors"},
			{"model.safetensors", formats.SaveOptions{MaxShardSize: 16 << 10}, "model.safetensors.index.json"},
			{"ckpt.onnx", formats.SaveOptions{}, "ckpt.onnx"},
		} {
			t.Run(name+"/"+tc.file, func(t *testing.T) {
				if _, err := formats.Save(filepath.Join(dir, tc.file), c, tc.opts); err != nil {
					t.Fatal(err)
				}
				m, rep, err := loadFile(spec, filepath.Join(dir, tc.open), Config{})
				if err != nil {
					t.Fatalf("load: %v\n%v", err, rep)
				}
				plain, prepared := forward(t, m, x)
				checkOutput(t, plain, want)
				checkOutput(t, prepared, want)
			})
		}
	}
}

// TestViTImageSize checks that a ViT built for one image size is loaded back
// at that size, taken from its position embedding (as vit_h_14's SWAG
// weights need 518 px), and that a position count that is not 1 + a square
// is refused.
func TestViTImageSize(t *testing.T) {
	spec := transformerFixtureSpecs["vit_small"]
	for _, size := range []int{32, 48, 64} {
		m, err := spec.Build(Config{ImageSize: size, NumClasses: 10})
		if err != nil {
			t.Fatal(err)
		}
		sd := m.(*VisionTransformer).StateDict()
		got, rep, err := load(spec, sd, Config{})
		if err != nil {
			t.Fatalf("size %d: load: %v\n%v", size, err, rep)
		}
		if g := got.(*VisionTransformer).ImageSize; g != size {
			t.Errorf("loaded image size: got %d, want %d", g, size)
		}
		y := nn.Infer(got, nn.RandN(1, 3, size, size))
		if s := y.Shape(); len(s) != 2 || s[1] != 10 {
			t.Errorf("size %d: output shape %v, want [1 10]", size, s)
		}
	}
	m, _ := spec.Build(Config{})
	sd := m.(*VisionTransformer).StateDict()
	for i, n := range sd {
		if n.Name == "encoder.pos_embedding" {
			bad := nn.ToStored(nn.Zeros(1, 20, 16)) // 19 patches: not a square
			sd[i] = nn.Named{Name: n.Name, Tensor: bad}
		}
	}
	if _, _, err := load(spec, sd, Config{}); err == nil || !strings.Contains(err.Error(), "not 1 + a square") {
		t.Errorf("20 positions: got error %v, want one about a non-square count", err)
	}
}
