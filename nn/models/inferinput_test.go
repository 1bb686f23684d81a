package models

import (
	"math"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/nn"
)

// TestInferInputFrozenBackbone checks, for an architecture of each family,
// that a frozen backbone's features taken by nn.InferInput and passed
// through the classifier give the logits, and the classifier's gradients,
// of the model's own forward pass with the backbone frozen (nn.Freeze) and
// only the classifier trained, bit for bit.
func TestInferInputFrozenBackbone(t *testing.T) {
	for _, c := range []struct {
		arch string
		size int
	}{
		{"resnet18", 64}, {"mobilenet_v2", 64}, {"efficientnet_b0", 64}, {"convnext_tiny", 64},
		{"densenet121", 64}, {"shufflenet_v2_x0_5", 64}, {"vgg11_bn", 64}, {"vit_b_16", 224}, {"swin_t", 224},
	} {
		t.Run(c.arch, func(t *testing.T) {
			if testing.Short() && (c.arch == "vit_b_16" || c.arch == "swin_t") {
				t.Skip("large model in -short mode")
			}
			spec, err := Lookup(c.arch)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Build(c.arch, Config{})
			if err != nil {
				t.Fatal(err)
			}
			path := strings.TrimSuffix(spec.Classifier, ".weight")
			var head *nn.Linear
			for _, nm := range nn.NamedModules(m) {
				if nm.Name == path {
					head, _ = nm.Module.(*nn.Linear)
				}
			}
			if head == nil {
				t.Fatalf("no Linear classifier at %q", path)
			}
			nn.Freeze(m)
			head.Weight.SetRequiresGrad(true)
			head.Bias.SetRequiresGrad(true)
			x := nn.RandN(2, 3, c.size, c.size)
			labels := []int{3, 7}
			loss := nn.NewCrossEntropyLoss()

			want := m.Forward(x)
			loss.Forward(want, labels).Backward()
			wantGW, wantGB := head.Weight.Grad().Data(), head.Bias.Grad().Data()
			head.Weight.ZeroGrad()
			head.Bias.ZeroGrad()

			feats := nn.InferInput(m, x, head)
			if feats == nil {
				t.Fatal("InferInput did not reach the classifier")
			}
			got := head.Forward(feats)
			loss.Forward(got, labels).Backward()
			same := func(what string, a, b []float32) {
				if len(a) != len(b) {
					t.Fatalf("%s: %d values, want %d", what, len(a), len(b))
				}
				for i := range a {
					if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
						t.Fatalf("%s[%d] = %v, want %v (the model's frozen forward pass)", what, i, a[i], b[i])
					}
				}
			}
			same("logits", got.Data(), want.Data())
			same("weight gradient", head.Weight.Grad().Data(), wantGW)
			same("bias gradient", head.Bias.Grad().Data(), wantGB)
		})
	}
}
