package models

import (
	"path/filepath"
	"testing"

	"github.com/ckptkit/ckpt/nn"
)

// The committed fixtures testdata/models/<family>_small.* are made by
// testdata/gen/models_fixtures_mobile.py --fixtures (torch 1.13,
// torchvision 0.14, seed 0): scaled-down configurations of the mobile and
// modern families built through torchvision's own classes, with random
// BatchNorm statistics, LayerNorm parameters, biases and layer scales.
// mobileFixtureSpecs mirrors its FIXTURES table.
var mobileFixtureSpecs = map[string]Spec{
	"mobilenetv2_small": {Classifier: "classifier.1.weight", Build: func(cfg Config) (nn.Module, error) {
		return newMobileNetV2(cfg, mobilenetV2Arch{1, [][4]int{{1, 8, 1, 1}, {6, 8, 2, 2}, {6, 16, 1, 2}}, 32})
	}},
	"mobilenetv3_small": {Classifier: "classifier.3.weight", Build: func(cfg Config) (nn.Module, error) {
		return newMobileNetV3(cfg, mobilenetV3Arch{[]bneckConf{
			{8, 3, 8, 8, true, false, 2, 1},
			{8, 3, 24, 16, false, false, 2, 1},
			{16, 3, 32, 16, false, true, 1, 1},
			{16, 5, 32, 16, true, true, 2, 1},
			{16, 5, 32, 16, true, true, 1, 2},
		}, 16})
	}},
}

// TestMobileFixtures checks the committed fixtures of the mobile and modern
// families: output, printed module tree and state_dict keys.
func TestMobileFixtures(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "models")
	for name, spec := range mobileFixtureSpecs {
		t.Run(name, func(t *testing.T) {
			spec.Name = name
			r, _ := runParity(t, spec, dir, name, Config{})
			t.Logf("max|err| %.3g, max|y| %.3g", r.maxErr, r.maxY)
		})
	}
}
