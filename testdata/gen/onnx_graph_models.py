#!/usr/bin/python3
"""Exports the models nn/graph/onnximport's interop tests import, with freshly initialized random
weights and randomised BatchNorm statistics (nothing is downloaded), into OUTDIR (tens of MB, generated on demand, not committed):

  resnet18_op13.onnx, resnet18_op17.onnx, mobilenet_v2_op13.onnx, mobilenet_v2_op17.onnx:
      torchvision models, default torch.onnx.export (BatchNorm folded into the convolutions),
      dynamic batch ("batch"), input "input" [2,3,64,64] float32, output "logits";
  squeezenet1_1_op17.onnx, mobilenet_v3_small_op17.onnx, efficientnet_b0_op17.onnx,
  shufflenet_v2_x0_5_op17.onnx, densenet121_op17.onnx: the same for more architectures, opset 17 only;
  mlp_op13.onnx, mlp_op17.onnx: Linear -> LayerNorm -> GELU -> Linear, input [4,16];
  unet_op13.onnx, unet_op17.onnx: a small UNet (ConvTranspose, bilinear and nearest Resize, skip
      concatenations), input [2,3,16,16];
  attention_op13.onnx, attention_op17.onnx: a pre-norm self-attention block
      (LayerNorm, nn.MultiheadAttention, residual, MLP with GELU), input [2,5,16];
  resnet18_train.onnx, mlp_train.onnx: the same architectures exported with
      training=TrainingMode.PRESERVE and no constant folding, so BatchNormalization stays a node
      and every initializer is named by its state_dict key.

ARCH.pt and ARCH_io.pt: the torchvision models' state_dicts, and {"input": x, "output": model(x)}.

For every model NAME: NAME.input.bin (the float32 input, little-endian), NAME.torch.bin (PyTorch's
output), and for the *_train models NAME.grads.bin + NAME.grads.json: the gradients of
loss = sum(output * R) with R = NAME.seed.bin (a fixed random tensor of the output's shape), one entry
per parameter (name, shape, offset in float32 elements), as loss.backward() computes them in eval mode.

Usage: /usr/bin/python3 testdata/gen/onnx_graph_models.py OUTDIR
"""
import json
import os
import sys
import warnings

import torch
import torchvision

warnings.filterwarnings("ignore")


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(16, 32)
        self.norm = torch.nn.LayerNorm(32)
        self.act = torch.nn.GELU()
        self.fc2 = torch.nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(self.act(self.norm(self.fc1(x))))


class Attention(torch.nn.Module):
    def __init__(self, d=16, heads=2):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(d)
        self.attn = torch.nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm2 = torch.nn.LayerNorm(d)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(d, 2 * d), torch.nn.GELU(), torch.nn.Linear(2 * d, d))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class UNet(torch.nn.Module):
    """A two-level UNet: strided convolutions down, ConvTranspose and bilinear/nearest Resize up."""

    def __init__(self):
        super().__init__()
        self.inc = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
        self.down = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU())
        self.down2 = torch.nn.Sequential(torch.nn.Conv2d(16, 16, 3, stride=2, padding=1), torch.nn.ReLU())
        self.up = torch.nn.ConvTranspose2d(16, 16, 2, stride=2)
        self.fuse = torch.nn.Conv2d(32, 8, 3, padding=1)
        self.out = torch.nn.Conv2d(16, 2, 1)

    def forward(self, x):
        a = self.inc(x)
        b = self.down(a)
        c = self.down2(b)
        u = torch.relu(self.fuse(torch.cat([self.up(c), b], 1)))
        u = torch.nn.functional.interpolate(u, scale_factor=2.0, mode="bilinear", align_corners=False)
        n = torch.nn.functional.interpolate(a, size=u.shape[-2:], mode="nearest")
        return self.out(torch.cat([u, n], 1))


def randomise_bn(model, seed):
    """BatchNorm parameters and statistics as after training (at initialization they are 1 and 0,
    and a deep network's logits shrink to ~1e-9)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)


def perturb(model, seed):
    """Moves every parameter off its initial value: the exporter merges initializers of equal
    values (LayerNorm's ones, zero biases) into one, which would tie their gradients."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


def save(path, t):
    with open(path, "wb") as f:
        f.write(t.detach().contiguous().numpy().astype("<f4").tobytes())


def export(model, x, out, name, opset, train=False):
    model.eval()
    kwargs = dict(opset_version=opset, input_names=["input"], output_names=["logits"],
                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    if train:
        kwargs.update(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    torch.onnx.export(model, x, os.path.join(out, name + ".onnx"), **kwargs)
    save(os.path.join(out, name + ".input.bin"), x)
    y = model(x)
    save(os.path.join(out, name + ".torch.bin"), y)
    if train:
        r = torch.randn(y.shape, generator=torch.Generator().manual_seed(7))
        save(os.path.join(out, name + ".seed.bin"), r)
        model.zero_grad()
        (model(x) * r).sum().backward()
        entries, offset = [], 0
        with open(os.path.join(out, name + ".grads.bin"), "wb") as f:
            for pname, p in model.named_parameters():
                g = p.grad.detach().contiguous()
                f.write(g.numpy().astype("<f4").tobytes())
                entries.append({"name": pname, "shape": list(g.shape), "offset": offset})
                offset += g.numel()
        with open(os.path.join(out, name + ".grads.json"), "w") as f:
            json.dump(entries, f)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    img = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    for arch in ("resnet18", "mobilenet_v2"):
        torch.manual_seed(0)
        m = getattr(torchvision.models, arch)(weights=None)
        randomise_bn(m, 1)
        for opset in (13, 17):
            export(m, img, out, "%s_op%d" % (arch, opset), opset)
        torch.save(m.state_dict(), os.path.join(out, arch + ".pt"))
        with torch.no_grad():
            torch.save({"input": img, "output": m(img)}, os.path.join(out, arch + "_io.pt"))
    for arch in ("squeezenet1_1", "mobilenet_v3_small", "efficientnet_b0", "shufflenet_v2_x0_5", "densenet121"):
        torch.manual_seed(0)
        m = getattr(torchvision.models, arch)(weights=None)
        randomise_bn(m, 1)
        export(m, img, out, "%s_op17" % arch, 17)
    torch.manual_seed(0)
    r18 = torchvision.models.resnet18(weights=None)
    randomise_bn(r18, 1)
    export(r18, img[:1], out, "resnet18_train", 13, train=True)
    torch.manual_seed(1)
    mlp = MLP()
    perturb(mlp, 6)
    x = torch.randn(4, 16, generator=torch.Generator().manual_seed(4))
    for opset in (13, 17):
        export(mlp, x, out, "mlp_op%d" % opset, opset)
    export(mlp, x, out, "mlp_train", 17, train=True)
    torch.manual_seed(3)
    unet = UNet()
    randomise_bn(unet, 4)
    xu = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    for opset in (13, 17):
        export(unet, xu, out, "unet_op%d" % opset, opset)
    torch.manual_seed(2)
    att = Attention()
    perturb(att, 8)
    xa = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(5))
    for opset in (13, 17):
        export(att, xa, out, "attention_op%d" % opset, opset)
    export(att, xa, out, "attention_train", 17, train=True)


if __name__ == "__main__":
    main()
