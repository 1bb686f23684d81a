#!/usr/bin/python3
"""Exports torchvision's ResNet-18 as freshly initialized (instance A, seed 0; nothing is downloaded)
to OUTDIR/resnet18.onnx with torch.onnx.export (opset 13, BatchNorm kept as its own node so
initializer names are state_dict keys). Because A's BatchNorm parameters are all equal at
initialization, the exporter keeps one initializer for each set of equal values and turns the others
into Identity nodes.

Also writes the state_dict of a second instance B (seed 1, BatchNorm parameters and statistics
randomised, as after training) to OUTDIR/resnet18_b.bin + .json (little-endian contiguous bytes of
each tensor back to back; name, dtype, shape, offset, nbytes and numpy's SHA-256 for each), a float32
input [1,3,64,64] to OUTDIR/input.bin and PyTorch's logits [1,1000] for A and B to OUTDIR/a_output.bin
and OUTDIR/b_output.bin.

Used on demand by formats/onnx's TestResNet18 (about 90 MB, not committed):
    /usr/bin/python3 testdata/gen/onnx_resnet18.py OUTDIR
"""
import hashlib
import json
import os
import sys

import torch
import torchvision


def randomise_bn(model, seed):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.num_batches_tracked.fill_(100)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    a = torchvision.models.resnet18(weights=None).eval()
    torch.manual_seed(1)
    b = torchvision.models.resnet18(weights=None).eval()
    randomise_bn(b, 2)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    torch.onnx.export(a, x, os.path.join(out, "resnet18.onnx"), opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    with torch.no_grad():
        for name, data in (("input.bin", x), ("a_output.bin", a(x)), ("b_output.bin", b(x))):
            with open(os.path.join(out, name), "wb") as f:
                f.write(data.numpy().astype("<f4").tobytes())
    entries, offset = [], 0
    with open(os.path.join(out, "resnet18_b.bin"), "wb") as f:
        for name, t in b.state_dict().items():
            arr = t.contiguous().numpy()
            raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
            entries.append({"name": name, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
                            "offset": offset, "nbytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()})
            f.write(raw)
            offset += len(raw)
    with open(os.path.join(out, "resnet18_b.json"), "w") as f:
        json.dump(entries, f, indent=1)


if __name__ == "__main__":
    main()
