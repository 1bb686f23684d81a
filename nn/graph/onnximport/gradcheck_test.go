package onnximport

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/nn/graph"
)

// gradCase is a one-output graph over input "x" whose gradients, for x and
// every parameter, are checked against central finite differences.
type gradCase struct {
	name     string
	opset    int64
	x        []int
	positive bool // x in [0.5, 1.5] (Log, Sqrt, Pow)
	nodes    []*onnx.Node
	inits    func(rng *rand.Rand) []*onnx.TensorProto
}

func single(op string, attrs ...*onnx.Attribute) []*onnx.Node {
	return []*onnx.Node{node(op, []string{"x"}, []string{"y"}, attrs...)}
}

func gradCases() []gradCase {
	no := func(*rand.Rand) []*onnx.TensorProto { return nil }
	return []gradCase{
		{"Conv2d asymmetric pads", 17, []int{1, 2, 5, 5}, false,
			[]*onnx.Node{node("Conv", []string{"x", "w", "b"}, []string{"y"}, ais("pads", 1, 0, 0, 1), ais("strides", 2, 1))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{floatInit("w", r, 3, 2, 3, 3), floatInit("b", r, 3)}
			}},
		{"Conv1d groups", 17, []int{1, 4, 7}, false,
			[]*onnx.Node{node("Conv", []string{"x", "w"}, []string{"y"}, ai("group", 2), ais("dilations", 2))},
			func(r *rand.Rand) []*onnx.TensorProto { return []*onnx.TensorProto{floatInit("w", r, 2, 2, 3)} }},
		{"Conv3d", 17, []int{1, 1, 3, 3, 3}, false,
			[]*onnx.Node{node("Conv", []string{"x", "w"}, []string{"y"}, ais("pads", 1, 1, 1, 1, 1, 1))},
			func(r *rand.Rand) []*onnx.TensorProto { return []*onnx.TensorProto{floatInit("w", r, 2, 1, 2, 2, 2)} }},
		{"ConvTranspose", 17, []int{1, 2, 3, 3}, false,
			[]*onnx.Node{node("ConvTranspose", []string{"x", "w", "b"}, []string{"y"}, ais("strides", 2, 2), ais("pads", 1, 1, 0, 0))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{floatInit("w", r, 2, 3, 3, 3), floatInit("b", r, 3)}
			}},
		{"MaxPool", 17, []int{1, 2, 6, 6}, false, single("MaxPool", ais("kernel_shape", 3, 3), ais("strides", 2, 2), ais("pads", 1, 1, 1, 1)), no},
		{"MaxPool ceil", 17, []int{1, 1, 5, 5}, false, single("MaxPool", ais("kernel_shape", 2, 2), ais("strides", 2, 2), ai("ceil_mode", 1)), no},
		{"AveragePool pads", 17, []int{1, 2, 5, 5}, false, single("AveragePool", ais("kernel_shape", 3, 3), ais("pads", 1, 1, 0, 0), ai("count_include_pad", 1)), no},
		{"GlobalAveragePool", 17, []int{2, 3, 3, 3}, false, single("GlobalAveragePool"), no},
		{"Gemm transB", 17, []int{2, 3}, false, []*onnx.Node{node("Gemm", []string{"x", "w", "b"}, []string{"y"}, ai("transB", 1))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{floatInit("w", r, 4, 3), floatInit("b", r, 4)}
			}},
		{"Gemm transA alpha beta", 17, []int{3, 2}, false, []*onnx.Node{node("Gemm", []string{"x", "w", "c"}, []string{"y"}, ai("transA", 1), af("alpha", 0.5), af("beta", 2))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{floatInit("w", r, 3, 4), floatInit("c", r, 1, 4)}
			}},
		{"MatMul broadcast", 17, []int{2, 1, 3, 4}, false, []*onnx.Node{node("MatMul", []string{"x", "w"}, []string{"y"})},
			func(r *rand.Rand) []*onnx.TensorProto { return []*onnx.TensorProto{floatInit("w", r, 3, 4, 2)} }},
		{"BatchNormalization", 15, []int{2, 3, 2, 2}, false, []*onnx.Node{node("BatchNormalization", []string{"x", "s", "b", "m", "v"}, []string{"y"})},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{floatInit("s", r, 3), floatInit("b", r, 3), floatInit("m", r, 3), positiveInit("v", r, 3)}
			}},
		{"LayerNormalization", 17, []int{2, 3, 4}, false, []*onnx.Node{node("LayerNormalization", []string{"x", "s", "b"}, []string{"y"}, ai("axis", -1))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{floatInit("s", r, 4), floatInit("b", r, 4)}
			}},
		{"InstanceNormalization", 17, []int{2, 3, 4}, false, []*onnx.Node{node("InstanceNormalization", []string{"x", "s", "b"}, []string{"y"})},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{floatInit("s", r, 3), floatInit("b", r, 3)}
			}},
		{"Softmax", 13, []int{2, 3, 4}, false, single("Softmax", ai("axis", 1)), no},
		{"Softmax opset 11", 11, []int{2, 3, 4}, false, single("Softmax", ai("axis", 1)), no},
		{"LogSoftmax", 13, []int{2, 5}, false, single("LogSoftmax"), no},
		{"activations", 17, []int{2, 6}, false, []*onnx.Node{
			node("Sigmoid", []string{"x"}, []string{"a"}), node("Tanh", []string{"a"}, []string{"b"}), node("Erf", []string{"b"}, []string{"c"}),
			node("LeakyRelu", []string{"c"}, []string{"d"}, af("alpha", 0.1)), node("Elu", []string{"d"}, []string{"e"}),
			node("Softplus", []string{"e"}, []string{"f"}), node("HardSwish", []string{"f"}, []string{"g"}), node("Exp", []string{"g"}, []string{"y"})}, no},
		{"HardSigmoid Selu Softsign", 17, []int{2, 6}, false, []*onnx.Node{
			node("HardSigmoid", []string{"x"}, []string{"a"}, af("alpha", 0.3)), node("Selu", []string{"x"}, []string{"b"}),
			node("Softsign", []string{"x"}, []string{"c"}), node("Sum", []string{"a", "b", "c"}, []string{"y"})}, no},
		// The float32 paths: torch's HardSigmoid constants, a constant
		// exponent of 2 (a Constant node, as torch exports it).
		{"HardSigmoid torch Pow 2", 13, []int{2, 6}, false, []*onnx.Node{
			node("HardSigmoid", []string{"x"}, []string{"a"}, af("alpha", 1.0/6)),
			node("Constant", nil, []string{"two"}, &onnx.Attribute{Name: "value", Type: onnx.AttrTensor, T: mustProto("two", FromF(2))}),
			node("Pow", []string{"x", "two"}, []string{"b"}), node("Add", []string{"a", "b"}, []string{"y"})}, no},
		{"Log Sqrt Pow Reciprocal", 17, []int{2, 3}, true, []*onnx.Node{
			node("Log", []string{"x"}, []string{"a"}), node("Sqrt", []string{"x"}, []string{"b"}), node("Pow", []string{"x", "p"}, []string{"c"}),
			node("Reciprocal", []string{"x"}, []string{"d"}), node("Sum", []string{"a", "b", "c", "d"}, []string{"y"})},
			func(r *rand.Rand) []*onnx.TensorProto { return []*onnx.TensorProto{positiveInit("p", r, 3)} }},
		{"arithmetic broadcast", 17, []int{2, 3}, false, []*onnx.Node{
			node("Add", []string{"x", "w"}, []string{"a"}), node("Mul", []string{"a", "x"}, []string{"b"}),
			node("Sub", []string{"b", "w"}, []string{"c"}), node("Div", []string{"c", "d"}, []string{"y"})},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{floatInit("w", r, 3), positiveInit("d", r, 2, 1)}
			}},
		{"PRelu Max Min Clip", 17, []int{2, 3}, false, []*onnx.Node{
			node("PRelu", []string{"x", "slope"}, []string{"a"}), node("Max", []string{"a", "w2"}, []string{"b"}),
			node("Min", []string{"b", "w"}, []string{"c"}), node("Clip", []string{"c", "lo", "hi"}, []string{"y"})},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{floatInit("slope", r, 3), floatInit("w", r, 2, 3), floatInit("w2", r, 3),
					mustProto("lo", FromF(-0.45)), mustProto("hi", FromF(0.7))}
			}},
		{"shape ops", 17, []int{2, 3, 4}, false, []*onnx.Node{
			node("Transpose", []string{"x"}, []string{"a"}, ais("perm", 2, 0, 1)),
			node("Reshape", []string{"a", "shape"}, []string{"b"}),
			node("Slice", []string{"b", "st", "en", "ax", "sp"}, []string{"c"}),
			node("Concat", []string{"c", "c"}, []string{"d"}, ai("axis", 1)),
			node("Gather", []string{"d", "idx"}, []string{"e"}, ai("axis", 1)),
			node("Unsqueeze", []string{"e", "uax"}, []string{"f"}),
			node("Expand", []string{"f", "eshape"}, []string{"g"}),
			node("Tile", []string{"g", "reps"}, []string{"h"}),
			node("Flatten", []string{"h"}, []string{"y"}, ai("axis", 1))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{intInit("shape", []int{2}, 4, 6), intInit("st", []int{1}, 5), intInit("en", []int{1}, 0),
					intInit("ax", []int{1}, 1), intInit("sp", []int{1}, -2), intInit("idx", []int{3}, 0, 5, 2),
					intInit("uax", []int{1}, 1), intInit("eshape", []int{3}, 4, 2, 3), intInit("reps", []int{3}, 1, 1, 2)}
			}},
		{"Split Pad Resize", 17, []int{1, 2, 4, 4}, false, []*onnx.Node{
			node("Split", []string{"x", "split"}, []string{"a", "b"}, ai("axis", 2)),
			node("Pad", []string{"a", "pads"}, []string{"c"}, as("mode", "reflect")),
			node("Resize", []string{"b", "", "scales"}, []string{"d"}, as("mode", "linear")),
			node("Pad", []string{"d", "pads2"}, []string{"e"}, as("mode", "edge")),
			node("Concat", []string{"c", "e"}, []string{"y"}, ai("axis", 3))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{intInit("split", []int{2}, 1, 3), intInit("pads", []int{8}, 0, 0, 1, 1, 0, 0, 1, 1),
					mustProto("scales", FromFs([]int{4}, 1, 1, 1, 2)), intInit("pads2", []int{8}, 0, 0, 0, 0, 0, 0, 0, -2)}
			}},
		{"DepthToSpace Where", 17, []int{1, 4, 2, 2}, false, []*onnx.Node{
			node("DepthToSpace", []string{"x"}, []string{"a"}, ai("blocksize", 2)),
			node("Neg", []string{"a"}, []string{"n"}),
			node("Where", []string{"cond", "a", "n"}, []string{"y"})},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{mustProto("cond", FromB([]int{1, 1, 4, 4}, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 1))}
			}},
		{"reductions", 13, []int{2, 3, 4}, false, []*onnx.Node{
			node("ReduceMean", []string{"x"}, []string{"a"}, ais("axes", 1)),
			node("ReduceMax", []string{"x"}, []string{"b"}, ais("axes", 1)),
			node("ReduceL2", []string{"x"}, []string{"c"}, ais("axes", 1)),
			node("ReduceLogSumExp", []string{"x"}, []string{"d"}, ais("axes", 1)),
			node("ReduceSum", []string{"x", "rax"}, []string{"e"}, ai("keepdims", 1)),
			node("ReduceSumSquare", []string{"x"}, []string{"f"}, ais("axes", 1)),
			node("Sum", []string{"a", "b", "c", "d", "e", "f"}, []string{"y"})},
			func(r *rand.Rand) []*onnx.TensorProto { return []*onnx.TensorProto{intInit("rax", []int{1}, 1)} }},
		{"CumSum", 17, []int{2, 3, 4}, false, []*onnx.Node{node("CumSum", []string{"x", "cax"}, []string{"y"}, ai("reverse", 1))},
			func(r *rand.Rand) []*onnx.TensorProto { return []*onnx.TensorProto{mustProto("cax", graph64(1))} }},
		{"Einsum", 17, []int{2, 3, 4}, false, []*onnx.Node{node("Einsum", []string{"x", "w"}, []string{"y"}, as("equation", "bij,jk->bik"))},
			func(r *rand.Rand) []*onnx.TensorProto { return []*onnx.TensorProto{floatInit("w", r, 4, 5)} }},
		{"LRN", 13, []int{2, 5, 2, 2}, false, single("LRN", ai("size", 4), af("alpha", 0.5), af("beta", 0.75), af("bias", 1.5)), no},
		{"GridSample bilinear", 16, []int{1, 2, 3, 4}, false, []*onnx.Node{node("GridSample", []string{"x", "grid"}, []string{"y"})},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{gridInit(r, 3, 4, false, 0.25, 1, 2, 3, 2)}
			}},
		{"GridSample bilinear border align_corners", 16, []int{1, 2, 3, 4}, false,
			[]*onnx.Node{node("GridSample", []string{"x", "grid"}, []string{"y"}, as("padding_mode", "border"), ai("align_corners", 1))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{gridInit(r, 3, 4, true, 0.25, 1, 2, 2, 2)}
			}},
		{"GridSample bicubic reflection", 16, []int{1, 1, 4, 4}, false,
			[]*onnx.Node{node("GridSample", []string{"x", "grid"}, []string{"y"}, as("mode", "bicubic"), as("padding_mode", "reflection"))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{gridInit(r, 4, 4, false, 0.25, 1, 2, 2, 2)}
			}},
		{"GridSample nearest", 16, []int{1, 2, 3, 3}, false, []*onnx.Node{node("GridSample", []string{"x", "grid"}, []string{"y"}, as("mode", "nearest"))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{gridInit(r, 3, 3, false, -0.25, 1, 2, 2, 2)}
			}},
		{"MeanVarianceNormalization", 13, []int{2, 3, 2, 2}, false, single("MeanVarianceNormalization"), no},
		// Round (zeroGrad like these) jumps at ±0.5, where x may lie.
		{"Floor Ceil Sign Mod", 17, []int{2, 3}, false, []*onnx.Node{
			node("Floor", []string{"x"}, []string{"a"}), node("Ceil", []string{"x"}, []string{"b"}),
			node("Abs", []string{"x"}, []string{"c"}), node("Sign", []string{"x"}, []string{"d"}),
			node("Mod", []string{"x", "m"}, []string{"e"}, ai("fmod", 1)), node("Mod", []string{"x", "m2"}, []string{"f"}),
			node("Sum", []string{"a", "b", "c", "d", "e", "f", "x"}, []string{"y"})},
			func(r *rand.Rand) []*onnx.TensorProto {
				// |x| < 1 < m: fmod and floor mod stay off their jumps (x/m crossing an integer but 0).
				return []*onnx.TensorProto{mustProto("m", FromFs([]int{3}, 1.5, 1.25, 2)), mustProto("m2", FromFs([]int{3}, 1.75, 1.5, 1.25))}
			}},
		{"ScatterND add", 16, []int{4, 3}, false, []*onnx.Node{node("ScatterND", []string{"x", "ind", "u"}, []string{"y"}, as("reduction", "add"))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{intInit("ind", []int{3, 1}, 2, 0, 2), floatInit("u", r, 3, 3)}
			}},
		{"ScatterND mul", 16, []int{4, 3}, false, []*onnx.Node{node("ScatterND", []string{"x", "ind", "u"}, []string{"y"}, as("reduction", "mul"))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{intInit("ind", []int{3, 1}, 2, 0, 2), floatInit("u", r, 3, 3)}
			}},
		{"ScatterElements duplicates", 16, []int{2, 3}, false, []*onnx.Node{node("ScatterElements", []string{"x", "ind", "u"}, []string{"y"}, ai("axis", 1))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{intInit("ind", []int{2, 2}, 1, 1, 0, 2), floatInit("u", r, 2, 2)}
			}},
		{"Resize tf_crop_and_resize", 13, []int{1, 1, 4, 4}, false, []*onnx.Node{node("Resize", []string{"x", "roi", "", "sizes"}, []string{"y"},
			as("mode", "linear"), as("coordinate_transformation_mode", "tf_crop_and_resize"), af("extrapolation_value", 2))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{mustProto("roi", FromFs([]int{8}, 0, 0, -0.2, 0.3, 1, 1, 0.7, 1.3)), intInit("sizes", []int{4}, 1, 1, 3, 3)}
			}},
		{"LayerNormalization Mean InvStdDev", 17, []int{2, 3, 4}, false, []*onnx.Node{
			node("LayerNormalization", []string{"x", "s"}, []string{"a", "m", "i"}, ai("axis", 1)),
			node("Add", []string{"a", "m"}, []string{"b"}), node("Add", []string{"b", "i"}, []string{"y"})},
			func(r *rand.Rand) []*onnx.TensorProto { return []*onnx.TensorProto{floatInit("s", r, 3, 4)} }},
		{"MaxUnpool", 11, []int{1, 2, 2, 2}, false, []*onnx.Node{node("MaxUnpool", []string{"x", "ind"}, []string{"y"}, ais("kernel_shape", 2, 2), ais("strides", 2, 2))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{intInit("ind", []int{1, 2, 2, 2}, 0, 3, 9, 14, 17, 22, 24, 31)}
			}},
		// The boxes are a Constant: like torchvision's roi_align, RoiAlign's
		// gradient reaches the input only.
		{"RoiAlign", 16, []int{1, 2, 5, 5}, false, []*onnx.Node{
			node("Constant", nil, []string{"rois"}, &onnx.Attribute{Name: "value", Type: onnx.AttrTensor,
				T: mustProto("rois", FromFs([]int{2, 4}, 1.3, 0.7, 7.9, 6.1, 0, 2.2, 5.4, 9.6))}),
			node("RoiAlign", []string{"x", "rois", "bi"}, []string{"y"},
				ai("output_height", 2), ai("output_width", 3), ai("sampling_ratio", 2), af("spatial_scale", 0.5))},
			func(r *rand.Rand) []*onnx.TensorProto { return []*onnx.TensorProto{intInit("bi", []int{2}, 0, 0)} }},
		{"Det", 11, []int{2, 3, 3}, false, single("Det"), no},
		{"DFT onesided", 17, []int{2, 5, 1}, false, single("DFT", ai("onesided", 1)), no},
		{"DFT complex inverse", 17, []int{1, 4, 2}, false, single("DFT", ai("inverse", 1)), no},
		{"STFT window", 17, []int{1, 8, 1}, false, []*onnx.Node{node("STFT", []string{"x", "step", "win"}, []string{"y"})},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{intInit("step", []int{}, 2), mustProto("win", FromFs([]int{4}, 0.2, 0.9, 1, 0.5))}
			}},
		{"RNN bidirectional", 14, []int{3, 2, 3}, false,
			[]*onnx.Node{node("RNN", []string{"x", "w", "r", "b", "", "h0"}, []string{"y"}, ai("hidden_size", 2), as("direction", "bidirectional"))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{floatInit("w", r, 2, 2, 3), floatInit("r", r, 2, 2, 2), floatInit("b", r, 2, 4), floatInit("h0", r, 2, 2, 2)}
			}},
		{"GRU Y_h", 14, []int{3, 2, 3}, false,
			[]*onnx.Node{node("GRU", []string{"x", "w", "r", "b"}, []string{"", "y"}, ai("hidden_size", 2))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{floatInit("w", r, 1, 6, 3), floatInit("r", r, 1, 6, 2), floatInit("b", r, 1, 12)}
			}},
		{"GRU linear_before_reset reverse", 14, []int{3, 2, 3}, false,
			[]*onnx.Node{node("GRU", []string{"x", "w", "r", "b"}, []string{"y"}, ai("hidden_size", 2), ai("linear_before_reset", 1), as("direction", "reverse"))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{floatInit("w", r, 1, 6, 3), floatInit("r", r, 1, 6, 2), floatInit("b", r, 1, 12)}
			}},
		{"LSTM peepholes sequence_lens", 14, []int{3, 2, 3}, false,
			[]*onnx.Node{node("LSTM", []string{"x", "w", "r", "b", "lens", "h0", "c0", "p"}, []string{"y"}, ai("hidden_size", 2))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{floatInit("w", r, 1, 8, 3), floatInit("r", r, 1, 8, 2), floatInit("b", r, 1, 16),
					mustProto("lens", graph.FromInt64s(graph.Int32, []int{2}, []int64{3, 2})),
					floatInit("h0", r, 1, 2, 2), floatInit("c0", r, 1, 2, 2), floatInit("p", r, 1, 6)}
			}},
		{"LSTM Y_c layout 1", 14, []int{2, 3, 3}, false,
			[]*onnx.Node{node("LSTM", []string{"x", "w", "r"}, []string{"", "", "y"}, ai("hidden_size", 2), ai("layout", 1))},
			func(r *rand.Rand) []*onnx.TensorProto {
				return []*onnx.TensorProto{floatInit("w", r, 1, 8, 3), floatInit("r", r, 1, 8, 2)}
			}},
		{"TopK", 17, []int{2, 3, 4}, false, []*onnx.Node{node("TopK", []string{"x", "k"}, []string{"y", "yi"})},
			func(r *rand.Rand) []*onnx.TensorProto { return []*onnx.TensorProto{intInit("k", []int{1}, 2)} }},
	}
}

// gridInit is a GridSample grid "grid" of the given shape over an h x w
// input whose source coordinates lie in [k+frac, k+frac+0.5] for integers k
// from -1 to the size: frac 0.25 keeps bilinear and bicubic sampling away
// from their kinks at integer coordinates, -0.25 nearest's at half-integers,
// which a finite difference must not straddle.
func gridInit(r *rand.Rand, h, w int, align bool, frac float64, shape ...int) *onnx.TensorProto {
	d := make([]float64, numel(shape))
	for k := range d {
		size := w
		if k%2 == 1 {
			size = h
		}
		c := float64(r.IntN(size+1)-1) + frac + 0.5*r.Float64()
		if align {
			d[k] = 2*c/float64(size-1) - 1
		} else {
			d[k] = (2*c+1)/float64(size) - 1
		}
	}
	return mustProto("grid", graph.FromFloat64s(graph.Float32, shape, d))
}

func TestGradientsFiniteDifferences(t *testing.T) {
	for _, tc := range gradCases() {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(len(tc.name))))
			m := model(tc.opset, tc.nodes, tc.inits(rng), []*onnx.ValueInfo{vi("x", onnx.Float)}, []*onnx.ValueInfo{vi("y", onnx.Float)})
			m.Graph.Input[0].Type.Tensor.Shape = nil
			g, err := Import(m, Options{})
			if err != nil {
				t.Fatal(err)
			}
			// Distinct values at least 2/n apart and none near 0, so that
			// finite differences do not straddle a kink (ReLU-like ops at 0,
			// ties of max and sort).
			xd := make([]float32, numel(tc.x))
			for k, p := range rng.Perm(len(xd)) {
				v := -1 + (float64(p)+0.5)*2/float64(len(xd))
				if math.Abs(v) < 0.03 {
					v += 0.06
				}
				if tc.positive {
					v = 1 + v/2
				}
				xd[k] = float32(v)
			}
			x := nn.New(xd, tc.x...).SetRequiresGrad(true)
			y := g.Forward(x)
			rd := make([]float32, y.Numel())
			for k := range rd {
				rd[k] = float32(rng.Float64()*2 - 1)
			}
			r := nn.New(rd, y.Shape()...)
			loss := func() float64 {
				var out *nn.Tensor
				nn.NoGrad(func() { out = g.Forward(x) })
				s := 0.0
				for k, v := range out.Data() {
					s += float64(v) * float64(rd[k])
				}
				return s
			}
			// The recorded forward computes what inference does.
			var plain *nn.Tensor
			nn.NoGrad(func() { plain = g.Forward(x) })
			for k, v := range plain.Data() {
				if d := math.Abs(float64(y.Data()[k] - v)); d > 1e-5*math.Max(1, math.Abs(float64(v))) {
					t.Fatalf("output %d: got %g with autograd, %g without", k, y.Data()[k], v)
				}
			}
			y.Mul(r).Sum(false).Backward()
			check := func(name string, p *nn.Tensor) {
				if p.Grad() == nil {
					t.Errorf("%s: no gradient", name)
					return
				}
				const eps = 1e-2
				for k := range p.Data() {
					old := p.Data()[k]
					p.Data()[k] = old + eps
					up := loss()
					p.Data()[k] = old - eps
					down := loss()
					p.Data()[k] = old
					num := (up - down) / (2 * eps)
					got := float64(p.Grad().Data()[k])
					// Central differences of float32 outputs: O(eps²) truncation and
					// ~1e-7·|loss|/eps rounding, well inside 2e-2.
					if math.Abs(got-num) > 2e-2*math.Max(1, math.Abs(num)) {
						t.Errorf("%s[%d]: got gradient %.5g, finite differences %.5g (up %g down %g, grad %v)", name, k, got, num, up, down, p.Grad())
						return
					}
				}
			}
			check("x", x)
			for _, p := range g.NamedParameters() {
				check(p.Name, p.Tensor)
			}
			// Every float initializer but configuration (Clip's bounds, Resize's
			// scales) is a parameter whose gradient was checked.
			params := map[string]bool{}
			for _, p := range g.NamedParameters() {
				params[p.Name] = true
			}
			for _, p := range g.NamedBuffers() {
				params[p.Name] = true
			}
			for _, in := range m.Graph.Initializer {
				if in.DataType == onnx.Float && !params[in.Name] && in.Name != "scales" && in.Name != "lo" && in.Name != "hi" && in.Name != "m" && in.Name != "m2" && in.Name != "roi" {
					t.Errorf("initializer %q did not become a parameter", in.Name)
				}
			}
		})
	}
}
