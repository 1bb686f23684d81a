#!/usr/bin/python3
"""Reference outputs of torch's elementwise activations for package
nn/internal/vec: exp, relu, relu6, silu, sigmoid, hardswish, hardsigmoid and
gelu (approximate='none') of float32 inputs that cover the edge values (NaN, +-Inf, +-0, subnormals,
float32's extremes, the thresholds where exp overflows and underflows, the
clamps' corners) and random values at several scales.

Usage:
  /usr/bin/python3 testdata/gen/vec_activations.py                  # writes nn/internal/vec/testdata/torch_activations.bin (seed 0)
  /usr/bin/python3 testdata/gen/vec_activations.py --seed 7 --out F  # interop test

Layout: little-endian float32 columns of n values each, one after the other:
the inputs x, then exp(x), relu(x), relu6(x), silu(x), sigmoid(x),
hardswish(x), hardsigmoid(x), gelu(x), all computed by torch on the CPU in
float32. n is the file size over 36 bytes.
"""
import argparse

import numpy as np
import torch
import torch.nn.functional as F


def inputs(seed):
    f32 = np.finfo(np.float32)
    edges = [float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1.0, -1.0,
             float(f32.max), -float(f32.max), float(f32.tiny), -float(f32.tiny),
             1e-45, -1e-45, 1e-40, -1e-40, 1e-30, -1e-30,
             3.0, -3.0, 6.0, -6.0, 2.9999998, -2.9999998, 3.0000002, -3.0000002, 6.0000005, 5.9999995,
             88.0, 88.5, 88.72, 88.7228, 88.72284, 88.7229, 88.73, 89.0, 89.5, 100.0, 1000.0, 1e10,
             -87.0, -87.33, -87.3365, -87.34, -88.0, -88.72, -88.73, -89.0, -95.0, -100.0,
             -103.0, -103.9, -103.97, -103.98, -104.0, -104.5, -110.0, -1000.0, -1e10,
             0.5, -0.5, 0.34657359, -0.34657359, 0.6931472, -0.6931472, 1e-4, -1e-4, 15.0, -15.0, 17.0, -17.0]
    g = torch.Generator().manual_seed(seed)
    parts = [torch.tensor(edges, dtype=torch.float32),
             torch.empty(640).uniform_(-8, 8, generator=g),
             torch.empty(384).uniform_(-110, 110, generator=g),
             # magnitudes spread over 2^-30 .. 2^7 with both signs
             torch.exp2(torch.empty(384).uniform_(-30, 7, generator=g)) *
             torch.where(torch.rand(384, generator=g) < 0.5, -1.0, 1.0)]
    return torch.cat(parts).to(torch.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="nn/internal/vec/testdata/torch_activations.bin")
    a = ap.parse_args()
    x = inputs(a.seed)
    cols = [x, torch.exp(x), F.relu(x), F.relu6(x), F.silu(x), torch.sigmoid(x),
            F.hardswish(x), F.hardsigmoid(x), F.gelu(x)]
    with open(a.out, "wb") as f:
        for c in cols:
            c = c.contiguous().numpy().astype("<f4")
            f.write(c.tobytes())


if __name__ == "__main__":
    main()
