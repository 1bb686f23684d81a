package models

import (
	"testing"

	"github.com/ckptkit/ckpt/nn"
)

// The committed fixtures testdata/models/<family>_small.* are made by
// testdata/gen/models_fixtures_mobile.py --fixtures (torch 1.13,
// torchvision 0.14, seed 0): scaled-down configurations of the mobile and
// modern families built through torchvision's own classes, with random
// BatchNorm statistics, LayerNorm parameters, biases and layer scales
// (listed in manifest_mobile.json). mobileFixtureSpecs mirrors its FIXTURES
// table; TestFixtures and TestRecordedPath (harness_test.go) check them.
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
	"mnasnet_small": {Classifier: "classifier.1.weight", Build: func(cfg Config) (nn.Module, error) {
		return newMNASNet(cfg, mnasnetArch{[8]int{8, 8, 8, 16, 16, 16, 16, 16}, [6]int{2, 1, 1, 2, 1, 1}, [6]int{3, 3, 2, 2, 2, 2}, 32}), nil
	}},
	"shufflenet_small": {Classifier: "fc.weight", Build: func(cfg Config) (nn.Module, error) {
		return newShuffleNetV2(cfg, shufflenetArch{[3]int{2, 1, 2}, [5]int{8, 16, 32, 48, 64}})
	}},
	"efficientnet_small": {Classifier: "classifier.1.weight", Build: func(cfg Config) (nn.Module, error) {
		// MBConvConfig(expand, kernel, stride, in, out, layers, width_mult=0.5).
		return newEfficientNet(cfg, efficientnetArch{setting: []mbconvConf{
			{false, 1, 3, 1, 8, 8, 1}, {false, 6, 3, 2, 8, 8, 2}, {false, 4, 5, 2, 8, 8, 2},
		}, dropout: 0.2, lastChannel: 32, bnOpts: []nn.Option{nn.Eps(0.001), nn.Momentum(0.01)}, sdProb: 0.2})
	}},
	"efficientnetv2_small": {Classifier: "classifier.1.weight", Build: func(cfg Config) (nn.Module, error) {
		a := efficientnetV2(0.2,
			[7]int{1, 1, 3, 1, 8, 8, 2}, [7]int{1, 4, 3, 2, 8, 16, 1}, [7]int{0, 4, 3, 2, 16, 16, 2})
		a.lastChannel = 32
		return newEfficientNet(cfg, a)
	}},
	// BlockParams.from_init_params(depth=5, w_0=8, w_a=6.0, w_m=2.0,
	// group_width=4) with stem width 8.
	"regnetx_small": {Classifier: "fc.weight", Build: func(cfg Config) (nn.Module, error) {
		return newRegNet(cfg, regnetArch{[]int{1, 2, 2}, []int{8, 16, 32}, []int{4, 4, 4}, 1, 0, 8})
	}},
	"regnety_small": {Classifier: "fc.weight", Build: func(cfg Config) (nn.Module, error) {
		return newRegNet(cfg, regnetArch{[]int{1, 2, 2}, []int{8, 16, 32}, []int{4, 4, 4}, 1, 0.25, 8})
	}},
	"convnext_small": {Classifier: "classifier.2.weight", Build: func(cfg Config) (nn.Module, error) {
		return newConvNeXt(cfg, convnextArch{[]cnStage{{8, 16, 2}, {16, 0, 2}}, 0.1, 1e-6})
	}},
}

// BenchmarkMobileNetV2 times an eval-mode forward pass of mobilenet_v2 on
// one 224x224 image.
func BenchmarkMobileNetV2(b *testing.B) { benchArch(b, "mobilenet_v2", 1, 224) }

// BenchmarkEfficientNetB0 times efficientnet_b0 on one 224x224 image.
func BenchmarkEfficientNetB0(b *testing.B) { benchArch(b, "efficientnet_b0", 1, 224) }

// BenchmarkMobileNetV2Batch8 times mobilenet_v2 on eight 224x224 images,
// where its pointwise convolutions are large products.
func BenchmarkMobileNetV2Batch8(b *testing.B) { benchArch(b, "mobilenet_v2", 8, 224) }
