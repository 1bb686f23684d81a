#!/usr/bin/python3
"""A small "pretrained" ONNX classifier exported by torch, for package
train's ONNX-backbone fine-tuning test.

Usage: /usr/bin/python3 testdata/gen/finetune_onnx_backbone.py OUT.onnx [--arch resnet18] [--size 32] [--seed N] [--keep-bn]

torchvision's ARCH(num_classes=1000) with seeded random weights and
non-trivial BatchNorm statistics (and, with --keep-bn, affine parameters), exported in eval mode by torch.onnx.export
(opset 13, input "input" [N, 3, SIZE, SIZE] with a dynamic batch axis,
output "logits"): the BatchNorms folded into the convolutions and the
classifier a Gemm with transB=1, as a default export gives them. With
--keep-bn the export keeps its BatchNormalization nodes (training=
TrainingMode.PRESERVE, do_constant_folding=False; the model still in eval
mode), so that fine-tuning can train them.
"""
import argparse
import torch
import torchvision


def build(arch, seed, keep_bn):
    """The seeded "pretrained" model, in eval mode."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)(num_classes=1000)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape))
                if keep_bn:  # distinct values: the export merges equal initializers into one
                    m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape))
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape))
    return model.eval()


def export(model, out, size, keep_bn):
    x = torch.randn(1, 3, size, size)
    extra = {}
    if keep_bn:
        extra = dict(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    torch.onnx.export(model, x, out, opset_version=13, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, **extra)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-bn", action="store_true")
    a = ap.parse_args()
    export(build(a.arch, a.seed, a.keep_bn), a.out, a.size, a.keep_bn)


if __name__ == "__main__":
    main()
