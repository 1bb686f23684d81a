// Package onnximport builds executable nn/graph graphs from ONNX models
// (formats/onnx), with the semantics of each operator by opset version
// (7 to 18 of the default domain): attributes that became inputs (Clip,
// Pad, Resize/Upsample, Split, Squeeze/Unsqueeze, ReduceSum, Slice),
// changed defaults (Softmax's axis), optional inputs and outputs.
//
// Float32 initializers that feed weights become parameters named by their
// initializer names; BatchNormalization's running statistics become
// buffers; the other initializers, and every node whose inputs are all
// constants, are folded into constants at import. Dynamic dimensions are
// resolved when the graph runs.
//
// If, Loop and Scan bodies are imported as graphs of their own (child modules),
// whose extra inputs are the values they capture from enclosing graphs.
//
// Untrusted models are bounded: MaxNodes, MaxValues, MaxSubgraphDepth,
// MaxLoopIterations, and Options.MaxElements on every computed value
// (checked before data-sized allocations); cycles and undefined inputs are
// rejected, and the codec checks tensor sizes against their bytes. A node the importer cannot run
// fails the import with an *UnsupportedError whose message names it:
//
//	onnx: node 17 "Resize_3": Resize (opset 18) with antialias is not supported
//
// Float32 ops record their backward for autograd: the CNN and transformer
// set, RNN/GRU/LSTM (through time), LRN, GridSample, RoiAlign, MaxUnpool,
// Det, DFT, STFT, MeanVarianceNormalization and the reductions among them, each checked
// by finite differences (gradcheck_test.go).
//
// Not supported: Scan's opset-8 form with sequence_lens, sequences, optional types and strings, random ops,
// and a few others listed in the README's conformance section. ReHead, TrainBatchNorm and WriteBack fine-tune an
// imported classifier and store the result back into the ONNX model.
package onnximport
