#!/usr/bin/python3
"""Exports torchvision classification architectures with torch.onnx.export, for
nn/graph/onnximport's TestTorchvisionExportsMatchORT (generated on demand into a temporary
directory, never committed: a model is up to 2.5 GB).

Serves requests: one architecture name per line on stdin; for each it builds the model with
weights=None (seeded random weights, nothing is downloaded), gives every BatchNorm random affine
parameters and running statistics measured layer by layer in eval mode, then perturbed a little (as
after training: at initialization they are 1 and 0, and statistics drawn blind let activations
explode; see calibrate_bn), and exports it in eval mode, default options (BatchNorm folded into the
convolutions), input "input" and output "logits" with a dynamic batch axis ("batch"), traced at
batch 1, at opsets 13 and 17 (aten::zero, which swin_v2 needs, exported by zero_symbolic):

    OUTDIR/ARCH_op13/model.onnx, OUTDIR/ARCH_op17/model.onnx

Each model has its own directory because torch writes a model over protobuf's 2 GB limit
(vit_h_14, regnet_y_128gf) as external data: one file per initializer beside model.onnx.
OUTDIR/ARCH.input.bin is a float32 input of batch 2 (little-endian, NCHW), run through the
dynamic axis; OUTDIR/ARCH.torch.bin is torch's output for it. The answer is one JSON line per request:
    {"arch", "size", "shape", "dirs": [op13, op17], "input", "torch", "export_s", "export_cpu_s"}
(wall-clock and CPU seconds of building and exporting; "phases_cpu_s": CPU seconds of building the
model, calibrating its BatchNorms, torch's reference forward and each opset's export)
or {"arch", "error"}.

The input size is the smallest the architecture exports at: 64x64 where global pooling ends the
network; VGG and AlexNet need 224 (their adaptive average pooling to 7x7 / 6x6 exports only when
the feature map is a multiple of it); ViT, Swin and MaxViT are built for 224 (the position
embedding and the windows/partitions fix the size); Inception v3 at 160.

Usage: /usr/bin/python3 testdata/gen/onnx_torchvision.py OUTDIR < names
"""
import json
import os
import sys
import time
import warnings

import torch
import torchvision
from torch.onnx import _type_utils

warnings.filterwarnings("ignore")

OPSETS = (13, 17)

# Images the BatchNorm statistics are measured on, by input size: enough samples per channel at
# the last feature maps (2x2 at 64 px) that no channel's variance is badly underestimated.
CALIB_BATCH = {64: 32}


def zero_symbolic(g, self):
    """aten::zero(self), the out-of-place form of Tensor.zero_: a tensor of self's shape and dtype
    filled with 0, as ConstantOfShape(Shape(self)). torch 1.13's exporter has no symbolic for it,
    and swin_v2's shifted_window_attention zeroes the key third of (a clone of) qkv_bias in place,
    so without this every swin_v2_* export fails with UnsupportedOperatorError. torchvision's
    function itself is left unchanged: the export computes what it computes."""
    dtype = torch.float32
    name = self.type().scalarType() if self.type().kind() == "TensorType" else None
    if name is not None:
        dtype = _type_utils.JitScalarType.from_name(name).dtype()
    return g.op("ConstantOfShape", g.op("Shape", self), value_t=torch.tensor([0], dtype=dtype))


def input_size(arch):
    if arch.startswith(("vgg", "alexnet", "vit_", "swin_", "maxvit")):
        return 224
    if arch == "inception_v3":
        # As nn/models' interop test (at least 75; at 96 the last blocks are 1x1).
        return 160
    return 64


def calibrate_bn(model, size, gen):
    """BatchNorm parameters as after training, so that torch's float32 output is a reference
    (within a few ulps of its float64 output): random scales of 0.25-0.75 (trained networks mostly
    have them below 1) and shifts, and running statistics measured in eval mode, layer by layer: a
    forward pre-hook sets each BatchNorm's statistics from the input it sees once every BatchNorm
    before it uses its own, then perturbs them a little per channel, so that no layer is an exact
    normalisation. The measuring batch (CALIB_BATCH) must be large enough for the last, 2x2 feature
    maps: a channel whose variance it underestimates multiplies its deviations on other inputs.
    Statistics drawn without looking at the activations let a deep plain network's activations grow
    layer after layer (inception_v3's logits reached 1e11). Statistics measured in one
    training-mode pass of 4 images, then perturbed by 10% of a standard deviation, with scales of
    0.5-1.5 (this generator's earlier recipe), left efficientnet_v2_l's logits at 3e4 with torch's
    own float32 output 2e4 from its float64 output, and the other efficientnets and the deep
    ResNets at 1.1-500x the test's tolerance from float64 torch.
    BatchNorms that eval mode does not run (auxiliary heads) keep the default statistics."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for m in bns:
        n = m.num_features
        m.reset_running_stats()
        m.weight.data.copy_(torch.rand(n, generator=gen) * 0.5 + 0.25)
        m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)
    # The last BatchNorm of a ResNet block's residual branch: 5x smaller (0.05-0.15), as in trained
    # ResNets and as torchvision's zero_init_residual option starts them (at 0). With the others' at
    # 0.25-0.75, 33-50 blocks whose branches are as large as the stream amplify float32 rounding
    # (resnet152: torch's float32 logits 4.4x the tolerance from its float64 ones; see
    # nn/graph/onnximport's TestTorchvisionExportsMatchORT).
    for m in model.modules():
        last = {torchvision.models.resnet.BasicBlock: "bn2", torchvision.models.resnet.Bottleneck: "bn3"}.get(type(m))
        if last:
            getattr(m, last).weight.data.mul_(0.2)

    def measure(m, args):
        x = args[0].double()
        dims = [0] + list(range(2, x.dim()))
        n = m.num_features
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        # Perturbed in float64 then stored: 5% of a standard deviation on the mean, 0.8-1.25x on
        # the variance (its reciprocal square root is within 0.9-1.12x).
        mean = mean + torch.randn(n, generator=gen, dtype=torch.float64) * 0.05 * var.sqrt()
        var = var * torch.exp(torch.empty(n, dtype=torch.float64).uniform_(-0.223, 0.223, generator=gen))
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)

    hooks = [m.register_forward_pre_hook(measure) for m in bns]
    model.eval()
    try:
        with torch.no_grad():
            model(torch.randn(CALIB_BATCH.get(size, 8), 3, size, size, generator=gen))
    finally:
        for h in hooks:
            h.remove()


def export(out, arch):
    start, cpu = time.time(), time.process_time()
    phases = {}
    mark = [cpu]

    def phase(name):
        now = time.process_time()
        phases[name] = round(now - mark[0], 2)
        mark[0] = now

    size = input_size(arch)
    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, weights=None)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        # ViT's builder zeroes its head: the logits would be 0 whatever the body computes.
        for m in model.modules():
            if isinstance(m, torch.nn.Linear) and not m.weight.any():
                m.weight.normal_(0, 0.02, generator=gen)
    phase("build")
    calibrate_bn(model, size, gen)
    phase("calibrate")
    model.eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(3))
    inp = os.path.join(out, arch + ".input.bin")
    with open(inp, "wb") as f:
        f.write(x.numpy().astype("<f4").tobytes())
    with torch.no_grad():
        y = model(x)
    ref = os.path.join(out, arch + ".torch.bin")
    with open(ref, "wb") as f:
        f.write(y.numpy().astype("<f4").tobytes())
    phase("reference")
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
        phase("export_op%d" % opset)
    return {"arch": arch, "size": size, "shape": list(x.shape), "dirs": dirs, "input": inp, "torch": ref,
            "export_s": round(time.time() - start, 2), "export_cpu_s": round(time.process_time() - cpu, 2),
            "phases_cpu_s": phases}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    for opset in OPSETS:
        torch.onnx.register_custom_op_symbolic("aten::zero", zero_symbolic, opset)
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
