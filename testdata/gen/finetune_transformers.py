#!/usr/bin/python3
""""Pretrained" vision-transformer weights saved by torch, for package
train's transformer fine-tuning test.

Usage: /usr/bin/python3 testdata/gen/finetune_transformers.py ARCH OUT [--image-size S] [--seed N]

Builds torchvision's ARCH(num_classes=1000) with torch's own random
initialisation (ViTs with image_size=S, so that a small crop has a matching
position embedding; Swin and MaxViT take S as given at run time), and saves
its state_dict with torch.save in float16 (half the bytes; ckpt reads the
values as float32 exactly).
"""
import argparse
import torch
import torchvision


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("arch")
    ap.add_argument("out")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    kw = {"image_size": a.image_size} if a.arch.startswith("vit_") else {}
    model = getattr(torchvision.models, a.arch)(num_classes=1000, **kw)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, a.out)


if __name__ == "__main__":
    main()
