package onnximport

import (
	"math"

	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
)

// fusion describes node n to the graph executor's fusion pass (see
// graph.Fusion), nil when n is nothing it can fuse: a 2-D Conv, an eval-mode
// BatchNormalization, an Add, and the activations nn fuses into a
// convolution's epilogue (Relu, Clip to [0, 6] or [0, inf) with constant
// bounds, HardSwish, Sigmoid, torch's HardSigmoid), and Mul, which makes
// x * Sigmoid(x) and x * HardSigmoid(x) (torch's SiLU and Hardswish) one
// activation. Each description computes what the node's own kernel
// computes for float32 4-D values; anything else falls back to the kernel.
func (im *importer) fusion(n *onnx.Node, consts map[string]*graph.Value) *graph.Fusion {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return nil
	}
	c := &nodeCtx{n: n, opset: im.opset, opts: &im.opts, attrs: map[string]*onnx.Attribute{}, consts: consts, im: im}
	for _, a := range n.Attribute {
		c.attrs[a.Name] = a
	}
	switch n.OpType {
	case "Conv":
		return &graph.Fusion{Conv: convFusion(c)}
	case "BatchNormalization":
		if im.opset < 9 || c.int("training_mode", 0) != 0 {
			return nil
		}
		return &graph.Fusion{BatchNorm: true, Eps: float64(c.float("epsilon", 1e-5))}
	case "Add":
		return &graph.Fusion{Add: true}
	case "Relu":
		return &graph.Fusion{Act: &nn.ReLU{}}
	case "HardSwish":
		return &graph.Fusion{Act: &nn.Hardswish{}}
	case "Sigmoid":
		return &graph.Fusion{Act: &nn.Sigmoid{}}
	case "HardSigmoid":
		// torch's hardsigmoid, relu6(x + 3) / 6, as it exports it.
		if a, b := c.float("alpha", 0.2), c.float("beta", 0.5); a == float32(1.0/6) && b == 0.5 {
			return &graph.Fusion{Act: &nn.Hardsigmoid{}}
		}
	case "Mul":
		return &graph.Fusion{Mul: true}
	case "Clip":
		lo, hi := float64(c.float("min", float32(math.Inf(-1)))), float64(c.float("max", float32(math.Inf(1))))
		if im.opset >= 11 {
			lo, hi = math.Inf(-1), math.Inf(1)
			for k, p := range []*float64{&lo, &hi} {
				if len(n.Input) > k+1 && n.Input[k+1] != "" {
					v := c.constInput(k + 1)
					if v == nil || v.Numel() != 1 {
						return nil
					}
					*p = v.Float64s()[0]
				}
			}
		}
		switch {
		case lo == 0 && hi == 6:
			return &graph.Fusion{Act: &nn.ReLU6{}}
		case lo == 0 && math.IsInf(hi, 1):
			return &graph.Fusion{Act: &nn.ReLU{}}
		}
	}
	return nil
}

// convFusion returns the graph.Fusion.Conv of a Conv node: the parameters
// its kernel (buildConv) passes to nn.Conv2dFn for 4-D inputs, after the
// same checks.
func convFusion(c *nodeCtx) func(x, w *graph.Value) (nn.ConvParams, bool) {
	limit := c.opts.MaxElements
	groups := int(c.int("group", 1))
	kattr := c.ints("kernel_shape", nil)
	return func(x, w *graph.Value) (nn.ConvParams, bool) {
		if x.Rank() != 4 || w.Rank() != 4 || x.DType() != graph.Float32 || w.DType() != graph.Float32 {
			return nn.ConvParams{}, false
		}
		kernel := w.Shape()[2:]
		if kattr != nil && !sameShape(toInts(kattr), kernel) {
			return nn.ConvParams{}, false
		}
		g, err := windowAttrs(c, kernel, x.Shape()[2:], false)
		if err != nil || checkWork(x, g, limit) != nil || !g.symmetric() {
			return nn.ConvParams{}, false
		}
		if groups <= 0 || x.Shape()[1] != w.Shape()[1]*groups || w.Shape()[0]%groups != 0 {
			return nn.ConvParams{}, false
		}
		return nn.ConvParams{Stride: [2]int{g.s[0], g.s[1]}, Padding: [2]int{g.pb[0], g.pb[1]},
			Dilation: [2]int{g.d[0], g.d[1]}, Groups: groups}, true
	}
}
