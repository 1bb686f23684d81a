#!/usr/bin/python3
"""Writes JPEG files with Pillow and Pillow's decoding of them, the reference
that data/transforms/internal/jpeg is checked against (testdata/transforms/jpeg/).

For every NAME.jpg, NAME.rgb holds np.asarray(Image.open(NAME.jpg).convert("RGB"))
as raw bytes (height x width x 3, uint8), i.e. what torchvision sees after
libjpeg(-turbo) decodes the file. For a CMYK file (four components),
NAME.cmyk also holds np.asarray(Image.open(NAME.jpg)), Pillow's CMYK samples
before conversion, which the conversion to RGB can hide one-level errors of
where K is dark. manifest.json lists the files with their
sizes and the options they were saved with.

Pillow cannot write YCCK or subsampled CMYK, so those inputs (the ENCODED
list, and a quarter of the random cases) come from the small baseline
encoder of jpeg_encoder.py: four components with chosen sampling factors,
an Adobe APP14 marker with a chosen transform and restart intervals. Their
reference is still Pillow's decoding of the file.

Usage: /usr/bin/python3 jpeg_fixtures.py [--out DIR] [--seed N] [--count K]
       /usr/bin/python3 jpeg_fixtures.py --decode FILE.jpg...
Without --count the fixed committed set is written; with --count, K random
images, sizes and encoder options (interop tests). --decode writes FILE.rgb
beside each given JPEG (files the Go tests make, e.g. with restart markers,
which Pillow 9 cannot write).
"""
import argparse, json, os

import numpy as np
import PIL
from PIL import Image, features

from jpeg_encoder import encode


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


# Four-component files Pillow cannot write, made by jpeg_encoder.py: name,
# width, height, sampling factors of the four components, Adobe transform
# (0 CMYK; libjpeg-turbo takes 2, and any other non-zero value, for YCCK),
# restart interval, quality.
PHOTOSHOP = [(2, 2), (1, 1), (1, 1), (2, 2)]  # Photoshop's YCCK layout
ENCODED = [
    ("ycck_444", 21, 13, [(1, 1)] * 4, 2, 0, 85),
    ("ycck_ps", 37, 23, PHOTOSHOP, 2, 3, 80),
    # h2v2, h2v1 and h1v2 upsampling at once; transform 1 is YCCK too.
    ("ycck_t1_mixed", 27, 19, [(2, 2), (2, 1), (1, 2), (1, 1)], 1, 0, 75),
    ("cmyk_h2v1", 29, 17, [(2, 1), (1, 1), (2, 1), (1, 1)], 0, 0, 90),
    # Ratios of 3 and 3x2: replication (int_upsample).
    ("cmyk_int31", 31, 11, [(3, 1), (1, 1), (3, 1), (1, 2)], 0, 2, 85),
    # Chroma 1, 2 and 3 samples wide: replicated, then filtered.
    ("ycck_ps_1x5", 1, 5, PHOTOSHOP, 2, 0, 85),
    ("ycck_ps_3x9", 3, 9, PHOTOSHOP, 2, 1, 85),
    ("cmyk_h2v1_4x6", 4, 6, [(2, 1), (1, 1), (1, 1), (2, 1)], 0, 1, 85),
    ("ycck_ps_5x7", 5, 7, PHOTOSHOP, 2, 0, 85),
]


def make_planes(rng, w, h, ycck):
    """Four uint8 planes: an image's R, G, B (as YCbCr for YCCK, where
    Adobe codes 255-C, 255-M, 255-Y as RGB) and a grey image for K, mostly
    high: Pillow reads K inverted, and a dark K would hide C, M and Y in the
    RGB reference."""
    im = make_image(rng, w, h)
    three = np.asarray(im.convert("YCbCr") if ycck else im)
    k = 255 - np.asarray(make_image(rng, w, h, gray=True)) // 4
    return [three[..., i] for i in range(3)] + [k]


def write_encoded(rng, path, w, h, factors, transform, interval, quality):
    planes = make_planes(rng, w, h, transform != 0)
    data = encode(planes, factors, quality=quality, tables=[0, 1, 1, 0],
                  adobe_transform=transform, restart_interval=interval)
    with open(path, "wb") as f:
        f.write(data)
    return dict(encoder="jpeg_encoder.py", factors=factors, adobe_transform=transform,
                restart_interval=interval, quality=quality)


def random_factors(rng):
    """Sampling factors of four components that libjpeg accepts: each
    divides the largest, at most 10 blocks an MCU."""
    while True:
        f = [(int(rng.choice([1, 1, 2, 2, 3, 4])), int(rng.choice([1, 1, 2, 2, 3, 4]))) for _ in range(4)]
        hmax, vmax = max(h for h, _ in f), max(v for _, v in f)
        if sum(h * v for h, v in f) <= 10 and all(hmax % h == 0 and vmax % v == 0 for h, v in f):
            return f


def random_cases(rng, count):
    cases = []
    for i in range(count):
        if rng.random() < 0.25:
            # Four components from jpeg_encoder.py, any width.
            w, h = int(rng.integers(1, 80)), int(rng.integers(1, 80))
            cases.append((f"rand{i:02d}", w, h, "encoded",
                          dict(factors=random_factors(rng), transform=int(rng.choice([0, 2, 2, 1])),
                               interval=int(rng.choice([0, 0, 1, 3])), quality=int(rng.integers(30, 96)))))
            continue
        gray = rng.random() < 0.2
        opts = dict(quality=int(rng.integers(1, 101)))
        if not gray:
            opts["subsampling"] = int(rng.integers(0, 3))
        if rng.random() < 0.5:
            opts["progressive"] = True
        if rng.random() < 0.3:
            opts["optimize"] = True
        # Widths of 4 or less under horizontal subsampling make libjpeg
        # replicate chroma instead of filtering it (jpeg.Upsample).
        w, h = int(rng.integers(1, 160)), int(rng.integers(1, 160))
        cases.append((f"rand{i:02d}", w, h, gray, opts))
    return cases


def write_reference(path):
    """Writes Pillow's decoding of the JPEG at path beside it (.rgb, and
    .cmyk for CMYK) and returns the RGB array."""
    im = Image.open(path)
    base = os.path.splitext(path)[0]
    if im.mode == "CMYK":
        with open(base + ".cmyk", "wb") as f:
            f.write(np.asarray(im).tobytes())
    rgb = np.asarray(im.convert("RGB"))
    with open(base + ".rgb", "wb") as f:
        f.write(rgb.tobytes())
    return rgb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "transforms", "jpeg"))
    ap.add_argument("--seed", type=int, default=20261127)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--decode", nargs="+")
    a = ap.parse_args()
    if a.decode:
        for path in a.decode:
            write_reference(path)
        return
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    cases = random_cases(rng, a.count) if a.count else FIXED
    if not a.count:
        # A generator of their own, so the Pillow-written fixtures above
        # stay as they were.
        erng = np.random.default_rng(a.seed + 1)
        cases = cases + [(name, w, h, "encoded", dict(factors=f, transform=t, interval=ri, quality=q))
                         for name, w, h, f, t, ri, q in ENCODED]
    manifest = []
    for name, w, h, gray, opts in cases:
        path = os.path.join(a.out, name + ".jpg")
        if gray == "encoded":
            opts = write_encoded(rng if a.count else erng, path, w, h, **opts)
        else:
            make_image(rng, w, h, gray).save(path, "JPEG", **opts)
        rgb = write_reference(path)
        assert rgb.shape == (h, w, 3), rgb.shape
        manifest.append(dict(name=name, width=w, height=h, options=opts))
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump({"pillow": PIL.__version__, "libjpeg_turbo": features.version_feature("libjpeg_turbo"),
                   "pillow_decodes": manifest}, f, indent=1)


if __name__ == "__main__":
    main()
