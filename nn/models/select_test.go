package models

import (
	"os"
	"slices"
	"strings"
)

// defaultInterop is the set of architectures the full-size interop tests
// check when CKPT_MODELS is unset: one or two per family, so that
// `go test ./...` stays within go test's default 10-minute timeout on two
// cores. CI sets CKPT_MODELS=all and checks every architecture.
var defaultInterop = []string{
	"resnet18", "resnext50_32x4d", "vgg11_bn", "alexnet", "squeezenet1_0", "densenet121", "googlenet",
	"inception_v3", "mobilenet_v2", "mobilenet_v3_small", "mnasnet0_5", "shufflenet_v2_x0_5",
	"efficientnet_b0", "efficientnet_v2_s", "regnet_x_400mf", "regnet_y_400mf", "convnext_tiny",
	"vit_b_32", "swin_t", "swin_v2_t", "maxvit_t",
}

// selectArchs picks, among family (the architectures one interop test
// covers), those to check: CKPT_MODELS=all for every one, CKPT_MODELS=a,b for
// those named, the default set otherwise.
func selectArchs(family []string) []string {
	want := defaultInterop
	switch s := os.Getenv("CKPT_MODELS"); s {
	case "all":
		return family
	case "":
	default:
		want = strings.Split(s, ",")
	}
	var out []string
	for _, n := range family {
		if slices.Contains(want, n) {
			out = append(out, n)
		}
	}
	return out
}
