#!/usr/bin/python3
"""Writes .npy arrays with numpy.save, and a manifest of what NumPy reports for
each: dtype, shape and the SHA-256 of the C-ordered little-endian bytes
(testdata/npy/, read by package formats/npy).

Usage: /usr/bin/python3 npy_fixtures.py [--out DIR] [--seed N]
"""
import argparse, hashlib, json, os

import numpy as np

NAMES = {"float32": "float32", "float64": "float64", "float16": "float16", "int8": "int8",
         "int16": "int16", "int32": "int32", "int64": "int64", "uint8": "uint8", "bool": "bool"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "npy"))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    arrays = {
        "f32_2x5": rng.standard_normal((2, 5)).astype(np.float32),
        "f32_fortran": np.asfortranarray(rng.standard_normal((3, 4, 2)).astype(np.float32)),
        "f64_big_endian": rng.standard_normal((4, 3)).astype(">f8"),
        "f16": rng.standard_normal((7,)).astype(np.float16),
        "i64_0d": np.array(rng.integers(-1000, 1000), dtype=np.int64),
        "i32_empty": np.zeros((0, 3), dtype=np.int32),
        "i16_big_endian": rng.integers(-30000, 30000, (5,)).astype(">i2"),
        "i8": rng.integers(-128, 128, (3, 3)).astype(np.int8),
        "u8_image": rng.integers(0, 256, (2, 3, 4, 4)).astype(np.uint8),
        "bool": rng.integers(0, 2, (6,)).astype(bool),
    }
    manifest = {}
    for name, arr in arrays.items():
        path = os.path.join(a.out, name + ".npy")
        np.save(path, arr)
        c = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<")))
        manifest[name] = {"dtype": NAMES[arr.dtype.name], "shape": list(arr.shape),
                          "sha256": hashlib.sha256(c.tobytes()).hexdigest()}
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump({"numpy": np.__version__, "arrays": manifest}, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
