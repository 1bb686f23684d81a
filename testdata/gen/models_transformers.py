#!/usr/bin/python3
"""Parity references for nn/models' vision transformers: vit_*, swin_*,
swin_v2_* and maxvit_t.

Like models_fixtures_mobile.py (whose randomize it uses for BatchNorm,
LayerNorm and biases) it builds the models through torchvision 0.14's own
builders and writes NAME.pt (state_dict), NAME.io.pt ({"input", "output"},
eval mode) and NAME.repr.txt. torchvision initialises several transformer
parameters to constants that would hide a wrong formula, so they get random
values too: ViT's class token and classification head (zeros), its position
embedding (std 0.02, raised to 0.1), MultiheadAttention's in_proj_bias
(zeros), the relative position bias tables (std 0.02, raised to 0.5), Swin
V2's logit scales (log 10; drawn from [1, 5], so some exceed the clamp at
log 100) and the key part of its qkv bias (zeroed by torchvision, and
ignored by its forward: a non-zero value checks that the Go side ignores it
too).

Usage (with the interpreter that has torch 1.13 and torchvision 0.14):
    models_transformers.py --arch swin_t --seed 1 --out DIR [--batch 2] [--size 224]
    models_transformers.py --serve
                      # JSON requests on stdin as models_parity.py --serve;
                      # "size" also sets ViT's image_size and MaxViT's input_size
    models_transformers.py --fixtures [--out testdata/models]
                      # the small committed fixtures (seed 0), <family>_small.*
    models_transformers.py --train {head,full} --arch vit_b_32 --size 64 --out DIR [--classes 5]
                      # one training step's loss and gradients (see train_step)
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torchvision
import torchvision.models as M
from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformerBlockV2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models_parity  # noqa: E402
import models_fixtures_mobile  # noqa: E402


def randomize(model, x, gen):
    models_fixtures_mobile.randomize(model, x, gen)
    with torch.no_grad():
        for name, p in model.named_parameters():
            last = name.rsplit(".", 1)[-1]
            if last == "class_token":
                p.normal_(0, 0.5, generator=gen)
            elif last == "pos_embedding":
                p.normal_(0, 0.1, generator=gen)
            elif last == "in_proj_bias":
                p.normal_(0, 0.1, generator=gen)
            elif last == "relative_position_bias_table":
                p.normal_(0, 0.5, generator=gen)
            elif last == "logit_scale":
                p.uniform_(1.0, 5.0, generator=gen)
            elif name.startswith("heads.head.") or name == "head.weight":
                if p.dim() == 2:
                    p.normal_(0, 1 / math.sqrt(p.shape[1]), generator=gen)
                else:
                    p.normal_(0, 0.1, generator=gen)


def generate(model, name, seed, out, batch, size, gen, double=False, compact=False):
    x = torch.randn(batch, 3, size, size, generator=gen)
    randomize(model, x, gen)
    model.eval()
    with torch.no_grad():
        y = model(x)
    os.makedirs(out, exist_ok=True)
    sd = model.state_dict()
    torch.save(models_fixtures_mobile.shared_storage(sd) if compact else sd, os.path.join(out, name + ".pt"))
    io = {"input": x, "output": y}
    if double:
        with torch.no_grad():
            io["output64"] = model.double()(x.double())
    torch.save(io, os.path.join(out, name + ".io.pt"))
    with open(os.path.join(out, name + ".repr.txt"), "w") as f:
        f.write(repr(model) + "\n")
    return y


_size = {}


def build(arch, kwargs):
    kwargs = dict(kwargs or {})
    size = _size.get("size", 224)
    if arch.startswith("vit_"):
        kwargs.setdefault("image_size", size)
    elif arch.startswith("maxvit_"):
        kwargs.setdefault("input_size", (size, size))
    return getattr(M, arch)(**kwargs)


def one(arch, seed, out, batch=2, size=224, kwargs=None, name=None, double=False):
    _size["size"] = size
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    return generate(build(arch, kwargs), name or arch, seed, out, batch, size, gen, double)


def new_head(model, arch, classes):
    """Re-head model with a fresh Linear of classes outputs; returns its
    state_dict key prefix."""
    if arch.startswith("vit_"):
        model.heads.head = nn.Linear(model.heads.head.in_features, classes)
        return "heads.head."
    if arch.startswith("swin_"):
        model.head = nn.Linear(model.head.in_features, classes)
        return "head."
    model.classifier[5] = nn.Linear(model.classifier[5].in_features, classes, bias=False)
    return "classifier.5."


def train_step(arch, seed, out, mode, size, batch, classes):
    """One training step of arch after re-heading, as nn/models'
    TestTransformerTrainInterop repeats it: the randomized model's state_dict
    (with its torchvision head) in backbone.pt; in step.pt the new head's
    tensors ("head.weight", "head.bias"), the input, the labels, the
    cross-entropy loss in training mode and the gradient of every trainable
    parameter ("grad.NAME"). Stochastic depth is switched off (its draws are
    torch's); BatchNorm uses batch statistics. mode "head" trains the new
    head only, "full" every parameter."""
    _size["size"] = size
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build(arch, None)
    x = torch.randn(batch, 3, size, size, generator=gen)
    randomize(model, x, gen)
    os.makedirs(out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(out, "backbone.pt"))
    prefix = new_head(model, arch, classes)
    from torchvision.ops import StochasticDepth
    for m in model.modules():
        if isinstance(m, StochasticDepth):
            m.p = 0.0
    if mode == "head":
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith(prefix))
    model.train()
    labels = torch.randint(0, classes, (batch,), generator=gen)
    step = {k[len(prefix):]: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(prefix)}
    step = {"head." + k: v for k, v in step.items()}
    loss = nn.functional.cross_entropy(model(x), labels)
    loss.backward()
    step.update({"input": x, "labels": labels, "loss": loss.detach().reshape(1)})
    for name, p in model.named_parameters():
        if p.requires_grad:
            step["grad." + name] = p.grad
    torch.save(step, os.path.join(out, "step.pt"))


FIXTURES = {
    # name: (constructor, input size); transformers_test.go mirrors these configurations.
    "vit_small": (lambda: M.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                              hidden_dim=16, mlp_dim=32, num_classes=10), 32),
    # A 3x3 window does not tile the 8x8 and 4x4 maps: padding, shifted and unshifted windows.
    "swin_small": (lambda: M.SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[2, 2], num_heads=[1, 2],
                                             window_size=[3, 3], stochastic_depth_prob=0.1, num_classes=10), 32),
    "swinv2_small": (lambda: M.SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[2, 2], num_heads=[1, 2],
                                               window_size=[3, 3], stochastic_depth_prob=0.1, num_classes=10,
                                               block=SwinTransformerBlockV2, downsample_layer=PatchMergingV2), 32),
    "maxvit_small": (lambda: M.MaxVit(input_size=(28, 28), stem_channels=8, partition_size=7, block_channels=[16],
                                      block_layers=[2], head_dim=8, stochastic_depth_prob=0.2, num_classes=10), 28),
}


def fixtures(out):
    manifest = {"generator": "testdata/gen/models_transformers.py --fixtures", "torch": torch.__version__,
                "torchvision": torchvision.__version__, "seed": 0, "fixtures": {}}
    for name, (ctor, size) in FIXTURES.items():
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(0)
        y = generate(ctor(), name, 0, out, 2, size, gen, compact=True)
        manifest["fixtures"][name] = {"input_size": size, "output_shape": list(y.shape)}
    with open(os.path.join(out, "manifest_transformers.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


# models_parity.serve() looks one up in its module.
models_parity.one = one


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out")
    ap.add_argument("--fixtures", action="store_true")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--double", action="store_true")
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--train", choices=["head", "full"])
    ap.add_argument("--classes", type=int, default=5)
    args = ap.parse_args()
    if args.train and args.arch and args.out:
        train_step(args.arch, args.seed, args.out, args.train, args.size, args.batch, args.classes)
    elif args.fixtures:
        fixtures(args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
    elif args.serve:
        models_parity.serve()
    elif args.arch and args.out:
        one(args.arch, args.seed, args.out, args.batch, args.size, double=args.double)
    else:
        ap.error("--serve, or --arch with --out, is required")


if __name__ == "__main__":
    main()
