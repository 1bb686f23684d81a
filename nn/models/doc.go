// Package models builds torchvision's image classifiers in Go, with
// torchvision 0.14's exact module structure: the same state_dict keys in the
// same order, the same printed module tree (nn.Repr equals torch's repr), and
// the same eval-mode forward pass.
//
// Architectures are registered by torchvision builder name ("resnet50",
// "inception_v3"). [Build] constructs one with fresh weights; [Load] and
// [LoadFile] construct one directly from a checkpoint's tensors, finding the
// state_dict inside training checkpoints, stripping DataParallel's "module."
// prefix and taking the number of classes from the weights. Each
// architecture carries the preprocessing its torchvision weights expect, and
// [ImageNetClasses] gives the 1000 class names; both come from a table that
// testdata/gen/models_meta.py generates from torchvision itself.
//
// Each architecture is an exported struct whose fields are its children
// (ResNet.FC, VGG.Classifier), so a new head can be assigned for
// fine-tuning. Build returns a model in training mode, as torchvision does;
// Load returns it in evaluation mode. Run inference with nn.Infer(m, x). Under
// nn.NoGrad (which Infer implies) in evaluation mode,
// Forward applies BatchNorm's running statistics and the following ReLU in
// place on each convolution's output (one pass instead of three tensors);
// with gradients recorded it runs the layers one by one, as torch does.
//
// The vision transformers (ViT, Swin, Swin V2, MaxViT) are built from nn's
// attention layers; ViT's image size is a builder option ([Config].ImageSize)
// that Load reads from the weights' position embedding.
//
// Parity with torchvision is tested by building each architecture in torch
// with random weights and non-trivial BatchNorm statistics
// (testdata/gen/models_parity.py) and comparing outputs, module trees and
// state_dict keys.
//
// The package does not download weights, and covers ImageNet classifiers only
// (no detection, segmentation, video or quantized models).
package models
