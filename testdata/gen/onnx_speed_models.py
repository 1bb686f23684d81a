#!/usr/bin/python3
"""Exports the models nn/graph's speed benchmark (BenchmarkGraphVsNative) and prepared-graph
parity test time and check, with freshly initialized random weights and randomised BatchNorm
statistics (nothing is downloaded), into OUTDIR (about 120 MB, generated on demand, not committed):

  ARCH.onnx: torchvision's ARCH (resnet18, mobilenet_v2), default torch.onnx.export at opset 13
      (BatchNorm folded into the convolutions), dynamic batch, input "input" [N,3,224,224],
      output "logits";
  ARCH_bn.onnx: the same model exported with training=TrainingMode.PRESERVE in eval mode and no
      constant folding, so every BatchNormalization stays a node (eval-mode statistics);
  ARCH.pt: the model's state_dict, for the native --arch path on the same weights;
  ARCH.input.bin, ARCH.torch.bin: a [2,3,224,224] float32 input and PyTorch's output for it
      (little-endian float32).

Usage: /usr/bin/python3 testdata/gen/onnx_speed_models.py OUTDIR [ARCH,...]
"""
import os
import sys
import warnings

import torch
import torchvision

warnings.filterwarnings("ignore")


def randomise_bn(model, seed):
    """BatchNorm parameters and statistics as after training (at initialization they are 1 and 0)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)


def save(path, t):
    with open(path, "wb") as f:
        f.write(t.detach().contiguous().numpy().astype("<f4").tobytes())


def main():
    out = sys.argv[1]
    archs = sys.argv[2].split(",") if len(sys.argv) > 2 else ["resnet18", "mobilenet_v2"]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    for arch in archs:
        torch.manual_seed(0)
        m = getattr(torchvision.models, arch)(weights=None)
        randomise_bn(m, 1)
        m.eval()
        kw = dict(opset_version=13, input_names=["input"], output_names=["logits"],
                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        torch.onnx.export(m, x, os.path.join(out, arch + ".onnx"), **kw)
        torch.onnx.export(m, x, os.path.join(out, arch + "_bn.onnx"),
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False, **kw)
        torch.save(m.state_dict(), os.path.join(out, arch + ".pt"))
        save(os.path.join(out, arch + ".input.bin"), x)
        with torch.no_grad():
            save(os.path.join(out, arch + ".torch.bin"), m(x))


if __name__ == "__main__":
    main()
