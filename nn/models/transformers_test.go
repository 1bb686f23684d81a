package models

import "github.com/ckptkit/ckpt/nn"

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
