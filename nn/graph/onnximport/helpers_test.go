package onnximport

import (
	"github.com/ckptkit/ckpt/nn"
	"math/rand/v2"

	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/nn/graph"
)

// Builders for small ONNX models in tests.

func node(op string, ins, outs []string, attrs ...*onnx.Attribute) *onnx.Node {
	return &onnx.Node{OpType: op, Input: ins, Output: outs, Name: op + "_0", Attribute: attrs}
}

func ai(name string, v int64) *onnx.Attribute {
	return &onnx.Attribute{Name: name, Type: onnx.AttrInt, I: v}
}

func ais(name string, v ...int64) *onnx.Attribute {
	return &onnx.Attribute{Name: name, Type: onnx.AttrInts, Ints: v}
}

func af(name string, v float32) *onnx.Attribute {
	return &onnx.Attribute{Name: name, Type: onnx.AttrFloat, F: v}
}

func as(name, v string) *onnx.Attribute {
	return &onnx.Attribute{Name: name, Type: onnx.AttrString, S: []byte(v)}
}

// vi describes a tensor value; a negative dim is dynamic ("batch").
var vi = onnx.TensorValue

func model(opset int64, nodes []*onnx.Node, inits []*onnx.TensorProto, inputs, outputs []*onnx.ValueInfo) *onnx.Model {
	return &onnx.Model{IRVersion: 8, OpsetImport: []*onnx.OperatorSetID{{Version: opset}},
		Graph: &onnx.Graph{Name: "g", Node: nodes, Initializer: inits, Input: inputs, Output: outputs}}
}

func mustProto(name string, v *graph.Value) *onnx.TensorProto {
	t, err := ProtoFromValue(name, v)
	if err != nil {
		panic(err)
	}
	return t
}

func floatInit(name string, rng *rand.Rand, shape ...int) *onnx.TensorProto {
	d := make([]float64, numel(shape))
	for k := range d {
		d[k] = rng.Float64()*2 - 1
	}
	return mustProto(name, graph.FromFloat64s(graph.Float32, shape, d))
}

func positiveInit(name string, rng *rand.Rand, shape ...int) *onnx.TensorProto {
	d := make([]float64, numel(shape))
	for k := range d {
		d[k] = 0.5 + rng.Float64()
	}
	return mustProto(name, graph.FromFloat64s(graph.Float32, shape, d))
}

func intInit(name string, shape []int, v ...int64) *onnx.TensorProto {
	return mustProto(name, graph.FromInt64s(graph.Int64, shape, v))
}

// FromF is a 0-d float32 value.
func FromF(v float64) *graph.Value { return graph.FromFloat64s(graph.Float32, []int{}, []float64{v}) }

// FromFs is a float32 value of the given shape.
func FromFs(shape []int, v ...float64) *graph.Value {
	return graph.FromFloat64s(graph.Float32, shape, v)
}

// FromB is a bool value.
func FromB(shape []int, v ...int64) *graph.Value { return graph.FromInt64s(graph.Bool, shape, v) }

func graph64(v int64) *graph.Value          { return graph.Scalar64(v) }
func FromTensorV(x *nn.Tensor) *graph.Value { return graph.FromTensor(x) }
