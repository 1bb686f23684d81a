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
// uninterrupted run did. checkpoint.pt holds {epoch, model, optimizer,
// scheduler} as a PyTorch training loop saves them, for resuming in torch.
// Evaluation uses nn.NoGrad, which applies to the calling goroutine only.
//
// Training augmentation is torchvision's RandomResizedCrop and
// RandomHorizontalFlip, optionally followed by ColorJitter
// (Config.ColorJitter) and TrivialAugmentWide (Config.TrivialAugment), each
// drawn from the sample's seed and applied as torchvision 0.14 applies it to
// a PIL image (package data and data/transforms).
package train
