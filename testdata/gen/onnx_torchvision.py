#!/usr/bin/python3
"""Exports torchvision classification architectures with torch.onnx.export, for
nn/graph/onnximport's TestTorchvisionExportsMatchORT (generated on demand into a temporary
directory, never committed: a model is up to 2.5 GB).

Serves requests: one architecture name per line on stdin; for each it builds the model with
weights=None (seeded random weights, nothing is downloaded), randomises every BatchNorm's
parameters and running statistics (as after training: at initialization they are 1 and 0 and a
deep network's logits shrink towards zero), and exports it in eval mode, default options
(BatchNorm folded into the convolutions), input "input" and output "logits" with a dynamic batch
axis ("batch"), traced at batch 1, at opsets 13 and 17:

    OUTDIR/ARCH_op13/model.onnx, OUTDIR/ARCH_op17/model.onnx

Each model has its own directory because torch writes a model over protobuf's 2 GB limit
(vit_h_14, regnet_y_128gf) as external data: one file per initializer beside model.onnx.
OUTDIR/ARCH.input.bin is a float32 input of batch 2 (little-endian, NCHW), run through the
dynamic axis. The answer is one JSON line per request:
    {"arch", "size", "shape", "dirs": [op13, op17], "input", "export_s", "export_cpu_s"}
(wall-clock and CPU seconds of building and exporting)
or {"arch", "error"}.

The input size is the smallest the architecture exports at: 64x64 where global pooling ends the
network; VGG and AlexNet need 224 (their adaptive average pooling to 7x7 / 6x6 exports only when
the feature map is a multiple of it); ViT, Swin and MaxViT are built for 224 (the position
embedding and the windows/partitions fix the size); Inception v3 needs at least 75 (96).

Usage: /usr/bin/python3 testdata/gen/onnx_torchvision.py OUTDIR < names
"""
import json
import os
import sys
import time
import warnings

import torch
import torchvision

warnings.filterwarnings("ignore")

OPSETS = (13, 17)


def input_size(arch):
    if arch.startswith(("vgg", "alexnet", "vit_", "swin_", "maxvit")):
        return 224
    if arch == "inception_v3":
        return 96
    return 64


def randomise_bn(model, seed):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)


def export(out, arch):
    start, cpu = time.time(), time.process_time()
    size = input_size(arch)
    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, weights=None)
    randomise_bn(model, 1)
    model.eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(3))
    inp = os.path.join(out, arch + ".input.bin")
    with open(inp, "wb") as f:
        f.write(x.numpy().astype("<f4").tobytes())
    dirs = []
    for opset in OPSETS:
        d = os.path.join(out, "%s_op%d" % (arch, opset))
        os.makedirs(d, exist_ok=True)
        # Not under torch.no_grad(): there nn.MultiheadAttention (ViT) takes its fast path,
        # aten::_native_multi_head_attention, which has no ONNX export.
        torch.onnx.export(model, x[:1], os.path.join(d, "model.onnx"), opset_version=opset,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        dirs.append(d)
    return {"arch": arch, "size": size, "shape": list(x.shape), "dirs": dirs, "input": inp,
            "export_s": round(time.time() - start, 2), "export_cpu_s": round(time.process_time() - cpu, 2)}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    for line in sys.stdin:
        arch = line.strip()
        if not arch:
            continue
        try:
            resp = export(out, arch)
        except Exception as e:  # reported to the test, which fails that architecture
            resp = {"arch": arch, "error": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(resp) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
