#!/usr/bin/python3
"""Parity fixtures for nn/models' mobile and modern families: mobilenet_v2,
mobilenet_v3, mnasnet, shufflenet_v2, efficientnet (v1 and v2), regnet and
convnext.

Like models_parity.py (whose helpers it uses), it builds models through
torchvision 0.14's own classes with random weights, non-trivial BatchNorm
statistics, random LayerNorm affine parameters, convolution and linear
biases and ConvNeXt layer scales, and writes NAME.pt (state_dict),
NAME.io.pt ({"input", "output"}, eval mode) and NAME.repr.txt. Unlike
models_parity.randomize_bn it keeps each BatchNorm's momentum, which
mobilenet_v3, mnasnet and efficientnet_b5..b7 print in their repr, and it
calibrates the statistics on the input itself with a smaller perturbation,
which keeps the deep EfficientNets' outputs in a range where float32 is
accurate to the tolerance (see randomize).

Usage (with the interpreter that has torch 1.13 and torchvision 0.14):
    models_fixtures_mobile.py --fixtures [--out testdata/models]
                      # the small committed fixtures (seed 0), <family>_small.*
    models_fixtures_mobile.py --arch efficientnet_b0 --seed 1 --out DIR [--batch 2] [--size 224]
    models_fixtures_mobile.py --serve
                      # JSON requests on stdin as models_parity.py --serve
"""
import argparse
import json
import os
import sys

import torch
import torch.nn as nn
import torchvision
import torchvision.models as M
from torchvision.models.convnext import CNBlockConfig, ConvNeXt
from torchvision.models.efficientnet import EfficientNet, FusedMBConvConfig, MBConvConfig
from torchvision.models import mnasnet
from torchvision.models.mnasnet import MNASNet
from torchvision.models.mobilenetv2 import MobileNetV2
from torchvision.models.mobilenetv3 import InvertedResidualConfig, MobileNetV3
from torchvision.models.regnet import BlockParams, RegNet
from torchvision.models.shufflenetv2 import ShuffleNetV2
from torchvision.ops import StochasticDepth
from torchvision.ops.misc import Conv2dNormActivation
from functools import partial

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models_parity  # noqa: E402

# Relative size of the perturbation of the calibrated running mean (in
# standard deviations) and variance.
PERT_M, PERT_V = 0.01, 0.02


def randomize(model, x, gen):
    """Random BatchNorm affine parameters and running statistics calibrated
    in training mode, as models_parity.randomize_bn, but fitted to the deep
    EfficientNets, whose 100-odd BatchNorms in sequence turn any systematic
    mismatch between statistics and activations into outputs in the tens of
    thousands, where torch's own float32 result is off from float64 by more
    than the tolerance (efficientnet_b6 at 96 px: 1.2e4 of 5.9e4). So the
    statistics are calibrated on the input x itself (biased variance, which
    is what training mode normalises with) and then perturbed by one or two
    percent at random (PERT_M, PERT_V), stochastic depth is off in that pass, and each
    BatchNorm keeps its momentum (mobilenet_v3, mnasnet and
    efficientnet_b5..b7 print it). LayerNorm parameters, convolution and
    linear biases and ConvNeXt layer scales get random values too:
    torchvision initialises them to constants, which would hide a wrong
    formula."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layer_scale"):
                p.uniform_(0.2, 1.0, generator=gen)
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0, 0.2, generator=gen)
            elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.normal_(0, 0.1, generator=gen)
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        if not bns:
            return
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.weight.uniform_(0.5, 1.5, generator=gen)
            m.bias.normal_(0, 0.2, generator=gen)
            m.momentum = 1.0
        depth = {m: m.p for m in model.modules() if isinstance(m, StochasticDepth)}
        for m in depth:
            m.p = 0.0
        # Record each BatchNorm's biased batch variance on x.
        # Small inputs (the fixtures end at 1x1 maps) add images to x up to
        # 16, or two values per channel would make near-zero variances.
        size = x.shape[-1]
        n = max(x.shape[0], min(16, 4 * 64 * 64 // (size * size)))
        cal = x
        if n > x.shape[0]:
            cal = torch.cat([x, torch.randn(n - x.shape[0], *x.shape[1:], generator=gen)])
        hooks = [m.register_forward_hook(_keep_biased_var) for m in bns]
        model.train()
        model(cal)
        for h in hooks:
            h.remove()
        for m, v in zip(bns, momenta):
            c = m.num_features
            m.running_var.copy_(m._biased_var)
            del m._biased_var
            m.running_mean.add_(torch.randn(c, generator=gen) * PERT_M * m.running_var.sqrt())
            m.running_var.mul_(torch.empty(c).uniform_(1-PERT_V, 1+PERT_V, generator=gen))
            m.momentum = v
            m.num_batches_tracked.fill_(int(torch.randint(1, 10000, (1,), generator=gen)))
        for m, v in depth.items():
            m.p = v


def _keep_biased_var(m, inp, out):
    m._biased_var = inp[0].var(dim=(0, 2, 3), unbiased=False)


def shared_storage(sd):
    """sd with every tensor a view into one storage per dtype, so that
    torch.save writes one record per dtype instead of one per tensor (about
    400 bytes of zip overhead each, half of a small fixture's size)."""
    flat = {}
    for v in sd.values():
        flat.setdefault(v.dtype, []).append(v.reshape(-1))
    flat = {dt: torch.cat(vs) for dt, vs in flat.items()}
    offset = {dt: 0 for dt in flat}
    out = type(sd)()
    for k, v in sd.items():
        n = v.numel()
        o = offset[v.dtype]
        out[k] = flat[v.dtype][o:o + n].view(v.shape)
        offset[v.dtype] = o + n
    return out


def generate(model, name, seed, out, batch, size, gen, double=False, compact=False):
    """models_parity.generate with the statistics calibrated on the input;
    compact saves the state_dict's tensors in shared storages."""
    x = torch.randn(batch, 3, size, size, generator=gen)
    randomize(model, x, gen)
    model.eval()
    with torch.no_grad():
        y = model(x)
    os.makedirs(out, exist_ok=True)
    torch.save(shared_storage(model.state_dict()) if compact else model.state_dict(), os.path.join(out, name + ".pt"))
    io = {"input": x, "output": y}
    if double:
        with torch.no_grad():
            io["output64"] = model.double()(x.double())
    torch.save(io, os.path.join(out, name + ".io.pt"))
    with open(os.path.join(out, name + ".repr.txt"), "w") as f:
        f.write(repr(model) + "\n")
    return y


# models_parity.one() and serve() look generate up in their module.
models_parity.generate = generate


def v3_conf(*args):
    return InvertedResidualConfig(*args, width_mult=1.0)


def small_mobilenet_v2():
    """MobileNetV2 with a short setting and a 32-channel last layer in place
    of the 1280 its constructor fixes."""
    m = MobileNetV2(num_classes=10, inverted_residual_setting=[[1, 8, 1, 1], [6, 8, 2, 2], [6, 16, 1, 2]])
    m.features[-1] = Conv2dNormActivation(16, 32, kernel_size=1, norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU6)
    m.last_channel = 32
    m.classifier[1] = nn.Linear(32, 10)
    return m


def small_mnasnet():
    """MNASNet's __init__ with depths of 8 and 16, shorter stacks and a
    32-channel head in place of 1280."""
    m = MNASNet.__new__(MNASNet)
    nn.Module.__init__(m)
    m.alpha, m.num_classes = 0.5, 10
    mom = mnasnet._BN_MOMENTUM
    d = [8, 8, 8, 16, 16, 16, 16, 16]
    m.layers = nn.Sequential(
        nn.Conv2d(3, d[0], 3, padding=1, stride=2, bias=False),
        nn.BatchNorm2d(d[0], momentum=mom),
        nn.ReLU(inplace=True),
        nn.Conv2d(d[0], d[0], 3, padding=1, stride=1, groups=d[0], bias=False),
        nn.BatchNorm2d(d[0], momentum=mom),
        nn.ReLU(inplace=True),
        nn.Conv2d(d[0], d[1], 1, padding=0, stride=1, bias=False),
        nn.BatchNorm2d(d[1], momentum=mom),
        mnasnet._stack(d[1], d[2], 3, 2, 3, 2, mom),
        mnasnet._stack(d[2], d[3], 5, 2, 3, 1, mom),
        mnasnet._stack(d[3], d[4], 5, 2, 2, 1, mom),
        mnasnet._stack(d[4], d[5], 3, 1, 2, 2, mom),
        mnasnet._stack(d[5], d[6], 5, 2, 2, 1, mom),
        mnasnet._stack(d[6], d[7], 3, 1, 2, 1, mom),
        nn.Conv2d(d[7], 32, 1, padding=0, stride=1, bias=False),
        nn.BatchNorm2d(32, momentum=mom),
        nn.ReLU(inplace=True),
    )
    m.classifier = nn.Sequential(nn.Dropout(p=0.2, inplace=True), nn.Linear(32, 10))
    return m


def small_regnet(se_ratio=None):
    params = BlockParams.from_init_params(depth=5, w_0=8, w_a=6.0, w_m=2.0, group_width=4, se_ratio=se_ratio)
    return RegNet(params, num_classes=10, stem_width=8, norm_layer=partial(nn.BatchNorm2d, eps=1e-05, momentum=0.1))


FIXTURES = {
    # name: (constructor, input size); mobile_test.go mirrors these configurations.
    "mobilenetv2_small": (small_mobilenet_v2, 16),
    "mobilenetv3_small": (lambda: MobileNetV3([
        v3_conf(8, 3, 8, 8, True, "RE", 2, 1),
        v3_conf(8, 3, 24, 16, False, "RE", 2, 1),
        v3_conf(16, 3, 32, 16, False, "HS", 1, 1),
        v3_conf(16, 5, 32, 16, True, "HS", 2, 1),
        v3_conf(16, 5, 32, 16, True, "HS", 1, 2),
    ], last_channel=16, num_classes=10), 16),
    "mnasnet_small": (small_mnasnet, 16),
    "shufflenet_small": (lambda: ShuffleNetV2([2, 1, 2], [8, 16, 32, 48, 64], num_classes=10), 16),
    "efficientnet_small": (lambda: EfficientNet([
        MBConvConfig(1, 3, 1, 16, 8, 1, 0.5, 1.0),
        MBConvConfig(6, 3, 2, 8, 16, 2, 0.5, 1.0),
        MBConvConfig(4, 5, 2, 16, 16, 2, 0.5, 1.0),
    ], dropout=0.2, stochastic_depth_prob=0.2, num_classes=10, last_channel=32,
        norm_layer=partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)), 16),
    "efficientnetv2_small": (lambda: EfficientNet([
        FusedMBConvConfig(1, 3, 1, 8, 8, 2),
        FusedMBConvConfig(4, 3, 2, 8, 16, 1),
        MBConvConfig(4, 3, 2, 16, 16, 2),
    ], dropout=0.2, stochastic_depth_prob=0.2, num_classes=10, last_channel=32,
        norm_layer=partial(nn.BatchNorm2d, eps=1e-03)), 16),
    "regnetx_small": (lambda: small_regnet(), 16),
    "regnety_small": (lambda: small_regnet(0.25), 16),
    "convnext_small": (lambda: ConvNeXt([CNBlockConfig(8, 16, 2), CNBlockConfig(16, None, 2)],
                                        stochastic_depth_prob=0.1, num_classes=10), 16),
}


def fixtures(out):
    manifest = {"generator": "testdata/gen/models_fixtures_mobile.py --fixtures", "torch": torch.__version__,
                "torchvision": torchvision.__version__, "seed": 0, "fixtures": {}}
    for name, (ctor, size) in FIXTURES.items():
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(0)
        y = generate(ctor(), name, 0, out, 2, size, gen, compact=True)
        manifest["fixtures"][name] = {"input_size": size, "output_shape": list(y.shape)}
    with open(os.path.join(out, "manifest_mobile.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(here, "..", "models"))
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--fixtures", action="store_true")
    args = ap.parse_args()
    if args.serve:
        models_parity.serve()
    elif args.fixtures:
        fixtures(args.out)
    elif args.arch:
        models_parity.one(args.arch, args.seed, args.out, args.batch, args.size)
    else:
        ap.error("one of --arch, --serve or --fixtures is required")


if __name__ == "__main__":
    main()
