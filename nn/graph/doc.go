// Package graph is an executable graph of named values over nn's ops: the
// form an imported model (nn/graph/onnximport) takes to run, train and be
// edited in Go.
//
// A Graph is an nn.Module. Its values are typed (Value: float32 as
// *nn.Tensor, so autograd flows through every float op; float64, float16,
// bfloat16, the integer types and bool as data for shape arithmetic,
// indices and masks). Its float weights are parameters registered under
// their source names (dots make the module path, as in a torch
// state_dict), so NamedParameters, StateDict, LoadStateDict and nn/optim
// work on it as on any module. Nodes run in order; a node whose outputs
// depend only on the input shapes (Shape -> Gather -> Concat -> Reshape
// chains) runs once per distinct input shape and is reused from a cache.
//
// In an inference call (eval mode, no gradients recorded: nn.Infer of the
// graph, or RunOrdered inside nn.NoGrad, which runs as an nn.InferCall) the
// executor gets what nn's zoo models get from nn.Prepare: a Conv node and
// the BatchNormalization, Add and Relu/Clip/HardSwish nodes after it that
// nothing else reads run as one nn.Conv2dFusedFn (the batch norm folded
// into packed weights, bias, residual and activation in the GEMM
// epilogue), intermediate values come from the call's arena and give their
// memory back after their last reader, and an activation or Add left
// unfused overwrites an input that dies at it. Nodes say what they compute
// through Node.Fuse (set by the importer); everything else runs node by
// node, as do training-mode calls and calls that record gradients. Prepare's
// invalidation rule (nn.MarkModified, replaced parameters) covers the
// packed weights of a graph as of any module.
//
// A kernel that panics (a shape error, an index a malformed model put out
// of range) fails the call with an error naming the node; nothing is
// partially returned. Graph does not know any file format; onnximport
// builds graphs from ONNX models and holds the operator semantics.
package graph
