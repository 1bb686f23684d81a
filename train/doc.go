// Package train fine-tunes torchvision architectures to new image datasets:
// the transfer-learning strategies ([Head], [Partial], [Full], [Scratch] and
// [Auto], which picks one from the data with [Choose]), a [Trainer] whose
// callbacks record metrics, keep checkpoints and stop early, feature caching
// for frozen backbones ([Model.Extract], [LoadCache], [SaveCache]), the
// validation [Metrics] of metrics.json, and [Finetune], which runs a whole
// [Config] and writes the run directory `ckpt finetune` documents.
//
// A frozen part of a model is frozen as [nn.Freeze] freezes it: no gradient
// is computed for its parameters and its BatchNorms stay in eval mode when
// the model trains. With the Head strategy the frozen backbone runs once per
// image (or once per cached augmented view) and only the classifier trains,
// on the cached features, every epoch; the result is the same as running
// the frozen backbone on every batch, since a frozen backbone computes the
// same features each time.
//
// Runs are deterministic for a seed: the split, the shuffling, the
// augmentation and the new classifier's initialisation come from it, and a
// run resumed from its checkpoint repeats the interrupted epoch as the
// uninterrupted run did. Evaluation uses nn.NoGrad, which is process-wide:
// do not train in one goroutine while evaluating in another until nn's grad
// mode is per call.
//
// What it does not do: write a single torch-loadable checkpoint.pt holding
// {epoch, model, optimizer, scheduler} (the run directory has last.pt and
// optimizer.pt for torch, checkpoint.safetensors for ckpt), ColorJitter or
// TrivialAugmentWide augmentation, or import ONNX backbones.
package train
