#!/usr/bin/python3
"""Writes JPEG files with Pillow and Pillow's decoding of them, the reference
that data/transforms/internal/jpeg is checked against (testdata/transforms/jpeg/).

For every NAME.jpg, NAME.rgb holds np.asarray(Image.open(NAME.jpg).convert("RGB"))
as raw bytes (height x width x 3, uint8), i.e. what torchvision sees after
libjpeg(-turbo) decodes the file. manifest.json lists the files with their
sizes and the options they were saved with.

Usage: /usr/bin/python3 jpeg_fixtures.py [--out DIR] [--seed N] [--count K]
       /usr/bin/python3 jpeg_fixtures.py --decode FILE.jpg...
Without --count the fixed committed set is written; with --count, K random
images, sizes and encoder options (interop tests). --decode writes FILE.rgb
beside each given JPEG (files the Go tests make, e.g. with restart markers,
which Pillow 9 cannot write).
"""
import argparse, json, os

import numpy as np
from PIL import Image


def make_image(rng, w, h, gray=False):
    # Smooth gradients, noise and hard-edged rectangles: every DCT frequency
    # and some clipping after the inverse DCT.
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        fx, fy, ph = rng.uniform(0.01, 0.4), rng.uniform(0.01, 0.4), rng.uniform(0, 6.3)
        img[..., c] = 127.5 + 120 * np.sin(fx * x + fy * y + ph)
    img += rng.normal(0, rng.uniform(0, 40), img.shape)
    for _ in range(4):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        img[y0:y0 + max(1, h // 4), x0:x0 + max(1, w // 4)] = rng.choice([0, 255], 3)
    im = Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")
    if gray == "CMYK":
        return im.convert("CMYK")
    return im.convert("L") if gray else im


# name, width, height, gray (or "CMYK"), Pillow save options
FIXED = [
    ("base_q50_444", 37, 23, False, dict(quality=50, subsampling=0)),
    ("base_q95_422", 64, 40, False, dict(quality=95, subsampling=1)),
    ("base_q75_420", 53, 35, False, dict(quality=75, subsampling=2)),
    ("base_q100_420", 24, 24, False, dict(quality=100, subsampling=2)),
    ("base_opt_q30_420", 41, 29, False, dict(quality=30, subsampling=2, optimize=True)),
    ("prog_q50_420", 37, 23, False, dict(quality=50, subsampling=2, progressive=True)),
    ("prog_q95_444", 45, 31, False, dict(quality=95, subsampling=0, progressive=True)),
    ("prog_q85_422", 50, 33, False, dict(quality=85, subsampling=1, progressive=True)),
    ("prog_q100_444", 19, 27, False, dict(quality=100, subsampling=0, progressive=True)),
    ("gray_base_q80", 45, 31, True, dict(quality=80)),
    ("gray_prog_q50", 33, 17, True, dict(quality=50, progressive=True)),
    ("base_q90_420_8x8", 8, 8, False, dict(quality=90, subsampling=2)),
    ("prog_q60_420_tall", 9, 70, False, dict(quality=60, subsampling=2, progressive=True)),
    # CMYK (Adobe APP14, every component at full resolution).
    ("cmyk_q90", 21, 13, "CMYK", dict(quality=90)),
    ("cmyk_prog_q40", 30, 19, "CMYK", dict(quality=40, progressive=True)),
]


def random_cases(rng, count):
    cases = []
    for i in range(count):
        gray = rng.random() < 0.2
        opts = dict(quality=int(rng.integers(1, 101)))
        if not gray:
            opts["subsampling"] = int(rng.integers(0, 3))
        if rng.random() < 0.5:
            opts["progressive"] = True
        if rng.random() < 0.3:
            opts["optimize"] = True
        # Widths of 4 or less under horizontal subsampling make libjpeg skip
        # its fancy upsampling (see package transforms); keep them out.
        w, h = int(rng.integers(5, 160)), int(rng.integers(1, 160))
        cases.append((f"rand{i:02d}", w, h, gray, opts))
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "transforms", "jpeg"))
    ap.add_argument("--seed", type=int, default=20261127)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--decode", nargs="+")
    a = ap.parse_args()
    if a.decode:
        for path in a.decode:
            rgb = np.asarray(Image.open(path).convert("RGB"))
            with open(os.path.splitext(path)[0] + ".rgb", "wb") as f:
                f.write(rgb.tobytes())
        return
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    cases = random_cases(rng, a.count) if a.count else FIXED
    manifest = []
    for name, w, h, gray, opts in cases:
        path = os.path.join(a.out, name + ".jpg")
        make_image(rng, w, h, gray).save(path, "JPEG", **opts)
        rgb = np.asarray(Image.open(path).convert("RGB"))
        assert rgb.shape == (h, w, 3), rgb.shape
        with open(os.path.join(a.out, name + ".rgb"), "wb") as f:
            f.write(rgb.tobytes())
        manifest.append(dict(name=name, width=w, height=h, options=opts))
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump({"pillow_decodes": manifest}, f, indent=1)


if __name__ == "__main__":
    main()
