package nn

import (
	"os"
	"runtime"
	"runtime/debug"
)

// TrainingGCPercent is the garbage collector's target percentage (GOGC)
// that [SetTrainingGC] sets for a training process.
//
// Between two collections Go lets the heap grow by GOGC percent of what
// the last one found live. In a training step what is live is the model's
// weights (and a frozen backbone's prepared copies, and the optimizer's
// state), which stay for the whole run, plus the activations kept for the
// backward pass; at the default of 100 the heap of a step therefore peaks
// near twice that, where PyTorch frees each tensor when its last reference
// goes. At 50 it peaks near one and a half times. The price is more
// collections, which are cheap here: the heap is almost all pointer-free
// float32 slices, which the collector does not scan; what they cost is
// the pages the runtime gives back to the OS between collections and
// faults in again. Measured with `ckpt bench --train` at batch 8, 2
// threads, on a loaded machine (PyTorch's peak from the last idle run in
// brackets): resnet18 head 497 -> 377-385 MiB peak RSS (404), CPU per step
// level; resnet18 full 672-677 -> 549-559 MiB (687), CPU level within the
// noise (+0-4%); resnet50 full 1894 -> 1424 MiB (1526), CPU +2.5% (2437 ->
// 2498 ms, the same build with GOGC=100 and 50, 30% more page faults).
//
// Since a [TrainArena] keeps a step's activations and most of its
// gradients off the heap, what the heap holds live is the weights, their
// gradients and the optimizer's state, and the garbage between collections
// is mostly the gradients of the step before; 25 lets that grow by a
// quarter. Measured side by side with 50 (`ckpt bench --train`, batch 8,
// idle machine): convnext_tiny 1513 -> 1465 MiB peak, resnet18 full 578 ->
// 529, resnet50 1408 -> 1378, time within the noise on every row
// (mobilenet_v2, efficientnet_b0 and resnet18 head included).
const TrainingGCPercent = 25

// SetTrainingGC sets the garbage collector's target to
// [TrainingGCPercent] unless the environment sets GOGC or GOMEMLIMIT (the
// user's choice wins), and returns the target in force afterwards. It is
// process-wide: a program calls it once, before training, as `ckpt bench
// --train` does.
func SetTrainingGC() int {
	if v, ok := os.LookupEnv("GOGC"); ok && v != "" || os.Getenv("GOMEMLIMIT") != "" {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	debug.SetGCPercent(TrainingGCPercent)
	// Collect now, so that the next goal is set from what is live (the
	// model) rather than from a heap that grew at the default target while
	// the model was read and built: without this, resnet18's head step
	// peaked at 436 MiB instead of 376 (the same as with the training
	// target from the start).
	runtime.GC()
	return TrainingGCPercent
}
