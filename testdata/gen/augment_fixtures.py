#!/usr/bin/python3
"""Writes images and torchvision 0.14's ColorJitter and TrivialAugmentWide
operations applied to them as PIL images (Pillow 9.4), the reference that
package data/transforms' color.go and trivial.go are checked against
(testdata/augment/).

Each case is one deterministic operation with its sampled parameters, the
part of the random transforms that decides the pixels:
  ColorJitter's four adjustments through torchvision.transforms.functional
  (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue, and
  adjust_sharpness, which TrivialAugmentWide also uses), and a "jitter" case
  applying all four in a given order as ColorJitter.forward does;
  TrivialAugmentWide's 14 operations through torchvision's own
  autoaugment._apply_op (nearest interpolation, fill None) with magnitudes
  taken from TrivialAugmentWide()._augmentation_space(31): bins 1, 15, 20 (90
  degrees for Rotate) and 30, each signed both ways where the operation is signed.

manifest.json: {"images": [file names], "space": {op: {"magnitudes", "signed"}}
(TrivialAugmentWide's 31-bin augmentation space), "cases": [{"image", "op", "args",
"out": base64 of the HWC uint8 result}]}.

Usage: /usr/bin/python3 augment_fixtures.py [--out DIR] [--seed N] [--count K]
With --count, K more random images (and ColorJitter factors) are added, for
interop tests.
"""
import argparse, base64, json, os, random

import numpy as np
import torch
from PIL import Image
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms.autoaugment import TrivialAugmentWide, _apply_op


def make_image(rng, w, h):
    # Gradients, noise, flat patches and saturated corners: every branch of
    # the HSV conversion, clipping in the blends, empty histogram ends.
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.float64)
    img[..., 0] = 255 * x / max(1, w - 1)
    img[..., 1] = 255 * y / max(1, h - 1)
    img[..., 2] = 128 + 100 * np.sin(x * 0.9 + y * 0.4)
    img += rng.normal(0, 25, img.shape)
    img[: h // 3, : w // 3] = rng.integers(0, 256, 3)
    img[-2:, -2:] = [255, 255, 255]
    img[0, -1] = [0, 0, 0]
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def cases_for(name, img, rng, extra):
    out = []

    def add(op, args, res):
        assert res.mode == "RGB" and res.size == img.size
        out.append({"image": name, "op": op, "args": args,
                    "out": base64.b64encode(np.asarray(res).tobytes()).decode()})

    bright = [0.3, 0.77, 1.0, 1.45]
    contrast = [0.2, 0.8, 1.6]
    sat = [0.0, 0.6, 1.9]
    hue = [-0.5, -0.23, -0.01, 0.07, 0.31, 0.5]
    sharp = [0.1, 1.8]
    if extra:
        bright, contrast, sat = [float(rng.uniform(0, 2))], [float(rng.uniform(0, 2))], [float(rng.uniform(0, 2))]
        hue, sharp = [float(rng.uniform(-0.5, 0.5))], [float(rng.uniform(0, 2))]
    for f in bright:
        add("brightness", [f], F.adjust_brightness(img, f))
    for f in contrast:
        add("contrast", [f], F.adjust_contrast(img, f))
    for f in sat:
        add("saturation", [f], F.adjust_saturation(img, f))
    for f in hue:
        add("hue", [f], F.adjust_hue(img, f))
    for f in sharp:
        add("sharpness", [f], F.adjust_sharpness(img, f))
    # ColorJitter.forward with fn_idx and factors as get_params drew them.
    order = [int(i) for i in torch.randperm(4, generator=torch.Generator().manual_seed(int(rng.integers(1 << 30))))]
    fac = [float(rng.uniform(0.6, 1.4)), float(rng.uniform(0.6, 1.4)), float(rng.uniform(0.6, 1.4)), float(rng.uniform(-0.2, 0.2))]
    r = img
    for i in order:
        r = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue][i](r, fac[i])
    add("jitter", order + fac, r)
    space = TrivialAugmentWide()._augmentation_space(31)
    for op, (mags, signed) in space.items():
        if mags.ndim == 0:
            vals = [float(mags.item())]
        else:
            vals = [float(mags[b].item()) for b in ([1, 15, 20, 30] if not extra else [int(rng.integers(31))])]
        for v in vals:
            for m in ([v, -v] if signed and v != 0 else [v]):
                add("trivial:" + op, [m], _apply_op(img, op, m, interpolation=InterpolationMode.NEAREST, fill=None))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "augment"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--count", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    images, cases = [], []
    sizes = [(13, 11, False), (12, 12, False)] + [(int(rng.integers(3, 40)), int(rng.integers(3, 40)), True) for _ in range(a.count)]
    for k, (w, h, extra) in enumerate(sizes):
        name = f"img{k}.png"
        img = make_image(rng, w, h)
        img.save(os.path.join(a.out, name))
        images.append(name)
        cases += cases_for(name, img, rng, extra)
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        space = {op: {"magnitudes": [float(v) for v in m.reshape(-1)], "signed": sg}
                 for op, (m, sg) in TrivialAugmentWide()._augmentation_space(31).items()}
        json.dump({"seed": a.seed, "images": images, "space": space, "cases": cases}, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
