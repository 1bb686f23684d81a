// Package data reads labelled image datasets and feeds them to training in
// batches: torchvision's ImageFolder layouts and CSV lists ([Open]), a
// seeded split stratified by class ([Dataset.Split]), and a [Loader] that
// decodes and preprocesses images in parallel with prefetch, the same batches
// for the same seed whatever the number of workers. The transforms are
// torchvision's: [RandomResizedCrop] and horizontal flips for training
// ([TrainTransform]) and the architecture's resize, center crop and
// normalization for evaluation ([EvalTransform]); decoding and the exact
// Pillow pixel operations are package data/transforms.
//
// Images become RGB as Pillow's convert("RGB") does (transforms.ToRGB). An
// image that cannot be read is an error naming the file, or, with
// [Loader.SkipBad], left out of its batch and counted ([Loader.Bad]).
//
// The random augmentations draw from Go's PCG generator seeded per sample
// and epoch, not from torch's generator: augmented batches are reproducible
// in ckpt, not equal to torchvision's. With augmentation off every pixel is
// torchvision's.
package data
