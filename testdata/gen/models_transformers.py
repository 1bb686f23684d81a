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
"""
import argparse
import math
import os
import sys

import torch
import torch.nn as nn
import torchvision.models as M

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


def generate(model, name, seed, out, batch, size, gen, double=False):
    x = torch.randn(batch, 3, size, size, generator=gen)
    randomize(model, x, gen)
    model.eval()
    with torch.no_grad():
        y = model(x)
    os.makedirs(out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(out, name + ".pt"))
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


# models_parity.serve() looks one up in its module.
models_parity.one = one


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--double", action="store_true")
    ap.add_argument("--serve", action="store_true")
    args = ap.parse_args()
    if args.serve:
        models_parity.serve()
    elif args.arch and args.out:
        one(args.arch, args.seed, args.out, args.batch, args.size, double=args.double)
    else:
        ap.error("--serve, or --arch with --out, is required")


if __name__ == "__main__":
    main()
