// Package nn is ckpt's compute half: float32 tensors with reverse-mode
// automatic differentiation, PyTorch's module model, and the layers that
// torchvision's image classifiers are built from.
//
// # Tensors and autograd
//
// A [Tensor] is dense, contiguous, row-major float32 data with a shape
// ([New], [Zeros], [Ones], [Full], [Scalar], [RandN]; [Tensor.Shape],
// [Tensor.Data], [Tensor.Item], [Tensor.Reshape]/[Tensor.View]). Ops are
// methods ([Tensor.Add], [Tensor.Mul], [Tensor.MatMul], [Tensor.Sum],
// [Tensor.Permute], [Tensor.ReLU], ...) or functions ([Cat], [Conv2dFn],
// [LinearFn], [BatchNormFn]) that return new tensors (Reshape, View and
// Flatten return views sharing data, as torch's do). Nothing is modified in
// place, except by activation modules built with inplace=True under NoGrad,
// which overwrite their input as torch's do.
//
// Autograd is define-by-run with no tape: an op records a backward node on
// its output only when grad mode is on and one of its inputs requires grad,
// so frozen parameters and plain inputs cost no graph, gradient memory or
// time. [Tensor.Backward] from a scalar adds gradients into the leaves'
// [Tensor.Grad] (they accumulate until [Tensor.ZeroGrad]) and releases the
// graph. [NoGrad] turns recording off for inference: no nodes, no retained
// activations. [Infer] runs a module's forward pass that way and draws its
// intermediate results from memory kept from the previous call, so a model
// served call after call allocates almost nothing. [Record] lets other
// packages (losses, custom layers) define differentiable ops.
//
// # Grad mode
//
// Grad mode belongs to a call, not to the process, so an evaluation can run
// beside training without switching its gradients off. It is decided in two
// ways, either of which turns recording off for an op:
//
//   - per goroutine: [NoGrad] marks the calling goroutine (by id, with a
//     nesting depth) until f returns, as torch.no_grad marks a thread; ops
//     run by other goroutines, including ones f starts, record as usual.
//     [GradEnabled] reports the calling goroutine's mode. While no goroutine
//     is inside NoGrad, asking costs one atomic load; otherwise a lookup of
//     the goroutine's id (about a microsecond, once per op, not per element).
//   - per call, by data flow: the tensors of an [Infer] call carry the call's
//     arena, marked as inference, and every op's result inherits it, so an
//     op on them records nothing whichever goroutine runs it.
//
// The in-place forms of the activations, and the in-place fusions of
// nn/models, follow the same rule: they overwrite their input only where
// no graph can be recorded.
//
// # Training memory and speed
//
// A graph node holds its inputs' nodes, not their tensors, so an
// intermediate result that no backward function keeps is collected during
// the forward pass, and each node's activations are released as soon as its
// backward function has run. Backward takes over the fresh slices backward
// functions return instead of copying them, and recycles a non-leaf's
// gradient, once read, for the next gradient of that length (within a
// Backward; the pool is emptied when the last one returns). Nothing is
// computed for frozen parameters: an op whose inputs do not require grad
// records nothing, so a frozen prefix builds no graph, Backward stops at
// the first trainable layer, and a frozen layer's weight gradient is never
// formed; [BatchNorm2d.ForwardInPlace] lets a frozen conv-bn(-relu) in
// training mode normalise in place. Convolution backward runs on the packed
// GEMM (the weight gradient as one product over the batch with the image
// columns packed from the images, a stride-1 input gradient as a forward
// convolution by the flipped weights), split over threads. A training
// loop runs its steps through a [TrainArena]: the activations live in
// memory kept from the step before (outside the Go heap on Linux, so the
// collector's goal does not grow with them), and as Backward passes each
// op's result it lends that buffer to the gradients that follow, so a
// step's memory is about its activations' and nothing is zeroed afresh or
// left as garbage.
//
// # Modules
//
// A [Module] embeds [Base], which keeps ordered registrations of parameters
// ([Base.RegisterParameter]), buffers ([Base.RegisterBuffer],
// [Base.RegisterInt64Buffer]) and children ([Base.RegisterModule] takes a
// pointer to the field, so assigning a new head later needs no
// re-registration). From these, as in PyTorch: [Base.NamedParameters],
// [Base.Parameters], [Base.NamedBuffers], [Base.NamedChildren], [NamedModules],
// [Modules], [Apply], [Base.Train], [Base.Eval], [Base.RequiresGrad],
// [Base.ZeroGrad], [Freeze] and [FreezeMatching] (frozen parameters, and BatchNorm
// held in eval mode across Train), [Base.StateDict], [Base.LoadStateDict] and [Repr], which
// prints the module tree exactly as torch's repr does. A parameter is a leaf
// *Tensor registered on a module ([Parameter] marks one); it requires grad
// until frozen.
//
// # Layers
//
// Each layer is a Module with PyTorch's field names, parameter shapes and
// printed form: [Conv2d], [Linear], [BatchNorm2d], [LayerNorm], [GroupNorm],
// [Dropout], [MaxPool2d], [AvgPool2d], [AdaptiveAvgPool2d],
// [AdaptiveMaxPool2d], [Flatten], [Identity], [Sequential], [ModuleList],
// [ChannelShuffle], [StochasticDepth], and the activations [ReLU], [ReLU6],
// [LeakyReLU], [Sigmoid], [Tanh], [SiLU], [GELU], [Hardswish], [Hardsigmoid],
// [Softmax], [LogSoftmax], and for transformers [MultiheadAttention] (torch's
// packed in_proj_weight layout) over [ScaledDotProductAttention] and
// [BatchedMatMul] (transposed operands read in place), with the window ops
// [Tensor.Roll], [Tensor.Pad], [WindowPartition], [WindowReverse] and
// [RelativePositionBias] (indexed by an [Int64Tensor] buffer such as
// relative_position_index). Constructors take a *[Builder] first (nil for
// torch's default initialisation) and torch's keyword arguments as options:
//
//	nn.NewConv2d(b.Sub("conv1"), 3, 64, 7, nn.Stride(2), nn.Padding(3), nn.NoBias())
//	nn.NewBatchNorm2d(b.Sub("bn1"), 64, nn.Eps(1e-3), nn.Momentum(0.01))
//	nn.NewMaxPool2d(3, nn.Stride(2), nn.Padding(1), nn.CeilMode())
//
// Conv2d multiplies its weights by the image's im2col columns through
// gemm.SgemmSource, which packs them straight from the image, so the column
// matrix is never stored (a 1×1 stride-1 convolution multiplies the input
// directly, a depthwise one runs a direct loop). An eval-mode forward under
// NoGrad allocates only its output, and through [Infer] its output comes
// from the call's arena. Concurrent eval-mode Forward calls on one module,
// on distinct inputs, are safe; training mode updates BatchNorm's running
// statistics and is not. Large elementwise, pooling and depthwise loops split
// across GOMAXPROCS goroutines.
//
// # Weights
//
// State dicts are lists of stored tensors from package
// github.com/ckptkit/ckpt/tensor ([StateDict], [Named]). Anything with
// Names() []string and Tensor(name) *tensor.Tensor is a [Source]: a
// [StateDict], a [TensorMap], or a checkpoint opened by package formats (with
// a two-line Names adapter, shown in the transfer-learning example).
// Loading goes either through [Base.LoadStateDict] into a built module, or
// through a [Builder] (candle's VarBuilder) handed to layer constructors,
// which asks the source for "weight" under the builder's dotted path
// (b.Sub("layer1").Sub("0")). float16 and bfloat16 weights are widened
// exactly ([FromStored]).
//
// For inference, [FoldBatchNorm] folds an eval-mode BatchNorm2d into the
// preceding Conv2d, and [Guard] turns a shape mismatch caused by a user's
// input into an error.
//
// # Losses and initialisers
//
// The losses follow torch 1.13's formulas and take torch's options:
// [CrossEntropyLoss] (class weights, ignore_index, label_smoothing, class
// index or probability targets), [NLLLoss], [MSELoss] and [BCEWithLogitsLoss],
// each with a [Reduction]. The initialisers are torchvision's:
// [KaimingNormal], [KaimingUniform], [XavierNormal], [XavierUniform],
// [InitTruncNormal], [InitNormal], [InitUniform], [InitConstant], [InitZeros],
// [InitOnes], drawing from a seedable [Generator] (nil: the package's, see
// [ManualSeed]). Optimizers, learning-rate schedulers and optimizer state
// dicts in torch's layout are in package nn/optim.
//
// # Not done here
//
// Tensors are float32 only, CPU only, always contiguous (Permute and Narrow
// copy). There is no double backward, and no retain_graph: a graph serves
// one Backward.
// Shape errors in ops are programmer errors and panic with *[ShapeError];
// errors from files are returned.
package nn
