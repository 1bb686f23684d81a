#!/usr/bin/python3
"""Reference outputs of torchvision architectures for nn/models' parity tests.

For an architecture and a seed: build the torchvision model with random
weights, give every BatchNorm non-trivial statistics (calibrated on a random
batch in training mode, then perturbed, with random affine parameters), switch
to eval mode, run a batch of random inputs, and write
    NAME.pt        torch.save(model.state_dict())
    NAME.io.pt     torch.save({"input": x, "output": y})
    NAME.repr.txt  repr(model)

Usage (with the interpreter that has torch 1.13 and torchvision 0.14):
    models_parity.py --arch resnet18 --seed 1 --out DIR [--batch 2] [--size 224]
    models_parity.py --serve     # JSON requests on stdin, one per line:
                                 # {"arch", "seed", "out", "batch", "size", "kwargs"}
    models_parity.py --fixtures [--out testdata/models]
                                 # the small committed fixtures (seed 0)

--fixtures builds scaled-down models through torchvision's own classes and
block code (ResNet._make_layer, BasicBlock, Bottleneck, DenseNet, make_layers)
with small widths, so the committed files stay a few hundred KB.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torchvision
import torchvision.models as M
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from torchvision.models.vgg import VGG, make_layers

torch.set_num_threads(max(1, int(os.environ.get("CKPT_TORCH_THREADS", "2"))))


def randomize_bn(model, batch_shape, gen):
    """Random affine parameters, then running statistics calibrated on one
    random batch in training mode and perturbed, so eval mode uses
    statistics that are neither trivial (0/1) nor far from the activations."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        return
    with torch.no_grad():
        for m in bns:
            m.weight.uniform_(0.5, 1.5, generator=gen)
            m.bias.normal_(0, 0.2, generator=gen)
            m.momentum = 1.0
        # A residual branch's last BatchNorm gets a small scale, as training
        # leaves it: with unit scales the residual stream of resnet152 grows
        # to several times the output's magnitude, and float32 rounding
        # (torch's own, measured against float64 with --double) approaches the
        # parity bound.
        for m in model.modules():
            if isinstance(m, BasicBlock):
                m.bn2.weight.uniform_(0.1, 0.3, generator=gen)
            elif isinstance(m, Bottleneck):
                m.bn3.weight.uniform_(0.1, 0.3, generator=gen)
        # Auxiliary heads only run in training mode, where inception_v3's
        # needs a 299 input; they are left out of the calibration pass (their
        # statistics are still perturbed below).
        aux = {k: getattr(model, k) for k in ("aux1", "aux2", "AuxLogits") if getattr(model, k, None) is not None}
        for k in aux:
            setattr(model, k, None)
        model.train()
        model(torch.randn(*batch_shape, generator=gen))
        for k, v in aux.items():
            setattr(model, k, v)
        for m in bns:
            c = m.num_features
            m.running_mean.add_(torch.randn(c, generator=gen) * 0.1 * m.running_var.sqrt())
            m.running_var.mul_(torch.empty(c).uniform_(0.7, 1.4, generator=gen))
            m.num_batches_tracked.fill_(int(torch.randint(1, 10000, (1,), generator=gen)))
            m.momentum = 0.1


def build(arch, kwargs):
    kwargs = dict(kwargs or {})
    if arch in ("googlenet", "inception_v3"):
        kwargs.setdefault("init_weights", False)  # True runs a slow trunc_normal
    return getattr(M, arch)(**kwargs)


def generate(model, name, seed, out, batch, size, gen, double=False):
    # Statistics are calibrated on a smaller input (cheaper for the full-size
    # models) that still leaves the last stages several pixels: at 1x1 the
    # batch statistics of a batch of two are degenerate, and eval mode at the
    # full size then divides by a near-zero deviation.
    calib = min(size, max(160, size // 2))
    randomize_bn(model, (2, 3, calib, calib), gen)
    model.eval()
    x = torch.randn(batch, 3, size, size, generator=gen)
    with torch.no_grad():
        y = model(x)
    os.makedirs(out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(out, name + ".pt"))
    io = {"input": x, "output": y}
    if double:
        # The same model in float64: how far torch's own float32 result is
        # from exact, to judge the Go result's error against.
        with torch.no_grad():
            io["output64"] = model.double()(x.double())
    torch.save(io, os.path.join(out, name + ".io.pt"))
    with open(os.path.join(out, name + ".repr.txt"), "w") as f:
        f.write(repr(model) + "\n")
    return y


def one(arch, seed, out, batch=2, size=224, kwargs=None, name=None, double=False):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build(arch, kwargs)
    return generate(model, name or arch, seed, out, batch, size, gen, double)


# Scaled-down models for the committed fixtures.

def small_resnet(block, layers, widths, groups=1, width_per_group=64, num_classes=10):
    """torchvision's ResNet with stem and stage widths other than 64..512:
    the attributes ResNet.__init__ sets, with its own _make_layer."""
    m = ResNet.__new__(ResNet)
    nn.Module.__init__(m)
    m._norm_layer = nn.BatchNorm2d
    m.inplanes = widths[0]
    m.dilation = 1
    m.groups = groups
    m.base_width = width_per_group
    m.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
    m.bn1 = nn.BatchNorm2d(widths[0])
    m.relu = nn.ReLU(inplace=True)
    m.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    m.layer1 = m._make_layer(block, widths[1], layers[0])
    m.layer2 = m._make_layer(block, widths[2], layers[1], stride=2)
    m.layer3 = m._make_layer(block, widths[3], layers[2], stride=2)
    m.layer4 = m._make_layer(block, widths[4], layers[3], stride=2)
    m.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    m.fc = nn.Linear(widths[4] * block.expansion, num_classes)
    return m


def small_vgg(cfg, batch_norm, hidden, num_classes=10):
    """torchvision's VGG with make_layers(cfg) and a narrower classifier."""
    m = VGG.__new__(VGG)
    nn.Module.__init__(m)
    m.features = make_layers(cfg, batch_norm=batch_norm)
    m.avgpool = nn.AdaptiveAvgPool2d((7, 7))
    last = [v for v in cfg if v != "M"][-1]
    m.classifier = nn.Sequential(
        nn.Linear(last * 7 * 7, hidden), nn.ReLU(True), nn.Dropout(p=0.5),
        nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(p=0.5),
        nn.Linear(hidden, num_classes))
    return m


def small_alexnet(convs, hidden, num_classes=10):
    """torchvision's AlexNet (its forward) with narrower layers in the same
    Sequential layout as AlexNet.__init__."""
    m = M.AlexNet.__new__(M.AlexNet)
    nn.Module.__init__(m)
    c = convs
    m.features = nn.Sequential(
        nn.Conv2d(3, c[0], kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(c[0], c[1], kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(c[1], c[2], kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(c[2], c[3], kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(c[3], c[4], kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2))
    m.avgpool = nn.AdaptiveAvgPool2d((6, 6))
    m.classifier = nn.Sequential(
        nn.Dropout(p=0.5), nn.Linear(c[4] * 6 * 6, hidden), nn.ReLU(inplace=True),
        nn.Dropout(p=0.5), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, num_classes))
    return m


def small_squeezenet(num_classes=10):
    """torchvision's SqueezeNet (its forward and Fire) with a short, narrow
    feature stack in SqueezeNet.__init__'s layout."""
    from torchvision.models.squeezenet import Fire, SqueezeNet
    m = SqueezeNet.__new__(SqueezeNet)
    nn.Module.__init__(m)
    m.num_classes = num_classes
    m.features = nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=3, stride=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(8, 4, 8, 8), Fire(16, 4, 8, 8),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(16, 4, 12, 12))
    m.classifier = nn.Sequential(
        nn.Dropout(p=0.5), nn.Conv2d(24, num_classes, kernel_size=1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d((1, 1)))
    return m


SMALL_GOOGLENET = [3, 6, 8], [
    (8, 2, 2, 4, 2, 2, 2), (10, 2, 2, 4, 2, 2, 2), (10, 4, 2, 4, 2, 2, 2), (12, 4, 2, 4, 2, 2, 2),
    (12, 4, 2, 4, 2, 2, 2), (12, 4, 2, 4, 2, 2, 2), (12, 4, 2, 4, 2, 2, 2), (12, 4, 2, 4, 2, 2, 2),
    (12, 4, 2, 4, 2, 2, 4)]


def small_googlenet(num_classes=10):
    """torchvision's GoogLeNet (its forward, BasicConv2d and Inception) with
    narrow stem and inception widths in GoogLeNet.__init__'s layout, without
    the auxiliary heads (their widths are fixed) and with transform_input."""
    from torchvision.models.googlenet import BasicConv2d, GoogLeNet, Inception
    stem, inc = SMALL_GOOGLENET
    m = GoogLeNet.__new__(GoogLeNet)
    nn.Module.__init__(m)
    m.aux_logits = False
    m.transform_input = True
    m.conv1 = BasicConv2d(3, stem[0], kernel_size=7, stride=2, padding=3)
    m.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
    m.conv2 = BasicConv2d(stem[0], stem[1], kernel_size=1)
    m.conv3 = BasicConv2d(stem[1], stem[2], kernel_size=3, padding=1)
    m.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
    m.inception3a = Inception(*inc[0])
    m.inception3b = Inception(*inc[1])
    m.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
    m.inception4a = Inception(*inc[2])
    m.inception4b = Inception(*inc[3])
    m.inception4c = Inception(*inc[4])
    m.inception4d = Inception(*inc[5])
    m.inception4e = Inception(*inc[6])
    m.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
    m.inception5a = Inception(*inc[7])
    m.inception5b = Inception(*inc[8])
    m.aux1 = None
    m.aux2 = None
    m.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    m.dropout = nn.Dropout(p=0.2)
    last = inc[8]
    m.fc = nn.Linear(last[1] + last[3] + last[5] + last[6], num_classes)
    return m


FIXTURES = {
    # name: (constructor, input size); the Go test mirrors these configurations.
    "resnet_basic": (lambda: small_resnet(BasicBlock, [1, 1, 2, 1], [4, 4, 8, 16, 32]), 32),
    "resnext_bottleneck": (lambda: small_resnet(Bottleneck, [1, 2, 1, 1], [4, 4, 8, 16, 32], groups=2, width_per_group=16), 32),
    "densenet_small": (lambda: M.DenseNet(growth_rate=4, block_config=(2, 3, 2, 2), num_init_features=8, bn_size=2, num_classes=10), 32),
    "vgg_bn_small": (lambda: small_vgg([8, "M", 16, "M", 16, 16, "M"], True, 32), 32),
    "vgg_small": (lambda: small_vgg([8, "M", 16, 16, "M"], False, 16), 32),
    "alexnet_small": (lambda: small_alexnet([8, 16, 16, 16, 16], 32), 67),
    "squeezenet_small": (small_squeezenet, 33),
    "googlenet_small": (small_googlenet, 37),
}


def fixtures(out):
    manifest = {"generator": "testdata/gen/models_parity.py --fixtures", "torch": torch.__version__,
                "torchvision": torchvision.__version__, "seed": 0, "fixtures": {}}
    for name, (ctor, size) in FIXTURES.items():
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(0)
        y = generate(ctor(), name, 0, out, 2, size, gen)
        manifest["fixtures"][name] = {"input_size": size, "output_shape": list(y.shape)}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


def preprocess(arch):
    """The transform of arch's IMAGENET1K_V1 weights, as torchvision builds it."""
    enum = M.get_model_weights(arch)
    w = enum["IMAGENET1K_V1"] if "IMAGENET1K_V1" in enum.__members__ else enum.DEFAULT
    t = w.transforms()
    return {"resize_size": t.resize_size[0], "crop_size": t.crop_size[0],
            "interpolation": t.interpolation.value, "mean": list(t.mean), "std": list(t.std)}


def serve():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        t0 = time.time()
        try:
            one(req["arch"], req.get("seed", 0), req["out"], req.get("batch", 2), req.get("size", 224),
                req.get("kwargs"), req.get("name"), req.get("double", False))
            resp = {"ok": True, "seconds": time.time() - t0, "preprocess": preprocess(req["arch"])}
        except Exception as e:  # reported to the Go test, which fails
            resp = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(resp) + "\n")
        sys.stdout.flush()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(here, "..", "models"))
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--kwargs", default="{}", help="builder keyword arguments as JSON")
    ap.add_argument("--double", action="store_true", help="also save the float64 model's output")
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--fixtures", action="store_true")
    args = ap.parse_args()
    if args.serve:
        serve()
    elif args.fixtures:
        fixtures(args.out)
    elif args.arch:
        one(args.arch, args.seed, args.out, args.batch, args.size, json.loads(args.kwargs), double=args.double)
    else:
        ap.error("one of --arch, --serve or --fixtures is required")


if __name__ == "__main__":
    main()
