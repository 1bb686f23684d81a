#!/usr/bin/python3
"""Writes images and torchvision's preprocessing of them, the reference that
package data/transforms is checked against (testdata/transforms/).

For every image file and preset, torchvision's ImageClassification transform
(the one classification weights ship with) runs on PIL.Image.open(f).convert("RGB")
and the manifest records:
  crop_u8_sha256   SHA-256 of the uint8 CHW image after resize and center crop
  sha256           SHA-256 of the normalized float32 CHW tensor, little-endian
  values           the normalized values (small presets on lossy formats only)
  decoded_sha256   SHA-256 of PIL's decoded RGB pixels (HWC uint8)

Usage: /usr/bin/python3 transforms_fixtures.py [--out DIR] [--seed N] [--count K]
With --count, K extra random images and presets are written (interop tests).
"""
import argparse, hashlib, json, os, random, sys

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms._presets import ImageClassification
import torchvision.transforms.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pillow_decode_fixtures import encode_png  # noqa: E402  (16-bit PNG writer)


def make_image(rng, w, h):
    # Smooth gradients plus noise and a few hard edges: resampling filters see
    # both low and high frequencies.
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        fx, fy, ph = rng.uniform(0.01, 0.2), rng.uniform(0.01, 0.2), rng.uniform(0, 6.3)
        img[..., c] = 127.5 + 100 * np.sin(fx * x + fy * y + ph)
    img += rng.normal(0, 20, img.shape)
    for _ in range(4):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        img[y0:y0 + h // 5, x0:x0 + w // 5] = rng.integers(0, 256, 3)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def preset(resize, crop, interp):
    mode = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}[interp]
    return ImageClassification(crop_size=crop, resize_size=resize, interpolation=mode)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def case(path, name, resize, crop, interp, keep_values):
    img = Image.open(path).convert("RGB")
    t = preset(resize, crop, interp)
    resized = F.resize(img, [resize], interpolation=t.interpolation)
    cropped = F.pil_to_tensor(F.center_crop(resized, [crop]))
    out = t(img)
    assert out.dtype == torch.float32 and tuple(out.shape) == (3, crop, crop)
    c = {
        "image": name, "resize": resize, "crop": crop, "interpolation": interp,
        "mean": [float(m) for m in t.mean], "std": [float(s) for s in t.std],
        "resized": [resized.size[0], resized.size[1]],
        "crop_u8_sha256": sha(cropped.numpy().tobytes()),
        "sha256": sha(out.numpy().astype("<f4").tobytes()),
        "decoded_sha256": sha(np.asarray(img).tobytes()),
    }
    if keep_values:
        c["values"] = [float(v) for v in out.numpy().ravel()]
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "transforms"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    cases = []

    def write(name, arr, **kw):
        Image.fromarray(arr).save(os.path.join(a.out, name), **kw)
        return os.path.join(a.out, name)

    if a.count == 0:
        files = [
            ("wide.png", make_image(rng, 300, 200), {}),
            ("tall_odd.png", make_image(rng, 157, 311), {}),
            ("small_upscale.png", make_image(rng, 40, 52), {}),
            ("photo.jpg", make_image(rng, 120, 90), {"quality": 90}),
            ("photo.webp", make_image(rng, 96, 80), {"lossless": True}),
        ]
        for name, arr, kw in files:
            write(name, arr, **kw)
        gray = Image.fromarray(make_image(rng, 90, 70)[..., 0], mode="L")
        gray.save(os.path.join(a.out, "gray.png"))
        rgba = np.concatenate([make_image(rng, 70, 90), rng.integers(0, 256, (90, 70, 1), dtype=np.uint8)], axis=2)
        Image.fromarray(rgba, mode="RGBA").save(os.path.join(a.out, "rgba.png"))
        # Lossy WebP (libwebp's upsampling and colour conversion) and 16-bit
        # PNG (Pillow keeps the high byte of colour, clips 16-bit gray).
        write("lossy.webp", make_image(rng, 97, 75), quality=80)
        la = np.concatenate([make_image(rng, 83, 61), rng.integers(0, 256, (61, 83, 1), dtype=np.uint8)], axis=2)
        Image.fromarray(la, mode="RGBA").save(os.path.join(a.out, "lossy_alpha.webp"), quality=70)
        deep = make_image(rng, 77, 58).astype(np.int64) * 257 + rng.integers(-128, 128, (58, 77, 3))
        deep = np.dstack([np.clip(deep, 0, 65535), rng.integers(0, 65536, (58, 77, 1))])
        with open(os.path.join(a.out, "rgba16.png"), "wb") as f:
            f.write(encode_png(deep, 16, 6, rng))
        g16 = np.clip(make_image(rng, 61, 47)[..., :1].astype(np.int64) * 3, 0, 65535)
        with open(os.path.join(a.out, "gray16.png"), "wb") as f:
            f.write(encode_png(g16, 16, 0, rng, interlace=True))
        plan = [
            ("wide.png", 256, 224, "bilinear"), ("wide.png", 232, 224, "bicubic"),
            ("tall_odd.png", 256, 224, "bilinear"), ("tall_odd.png", 342, 299, "bilinear"),
            ("tall_odd.png", 64, 57, "bicubic"), ("small_upscale.png", 256, 224, "bilinear"),
            ("small_upscale.png", 100, 100, "bicubic"), ("gray.png", 48, 40, "bilinear"),
            ("rgba.png", 48, 40, "bicubic"), ("photo.webp", 64, 56, "bilinear"),
            ("photo.jpg", 64, 56, "bilinear"), ("photo.jpg", 40, 32, "bicubic"),
            ("lossy.webp", 64, 56, "bilinear"), ("lossy.webp", 40, 32, "bicubic"),
            ("lossy_alpha.webp", 48, 40, "bicubic"), ("rgba16.png", 48, 40, "bilinear"),
            ("gray16.png", 40, 32, "bilinear"),
        ]
        for name, resize, crop, interp in plan:
            cases.append(case(os.path.join(a.out, name), name, resize, crop, interp, name.endswith(".jpg")))
    else:
        for i in range(a.count):
            w, h = int(rng.integers(8, 400)), int(rng.integers(8, 400))
            if i % 3 == 2:
                name = f"random{i}.webp"
                write(name, make_image(rng, w, h), quality=int(rng.integers(0, 101)))
            else:
                name = f"random{i}.png"
                write(name, make_image(rng, w, h))
            resize = int(rng.integers(8, 300))
            crop = int(rng.integers(4, resize + 20))
            interp = ["bilinear", "bicubic"][i % 2]
            cases.append(case(os.path.join(a.out, name), name, resize, crop, interp, False))
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump({"torchvision": __import__("torchvision").__version__,
                   "pillow": Image.__version__, "seed": a.seed, "cases": cases}, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
