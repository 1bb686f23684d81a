#!/usr/bin/python3
"""Pooling reference for nn's TestPoolTorchBits (torch 1.13).

Reads an input tensor (float32 bits, hex) and pooling geometries as JSON on
stdin, and prints torch's max_pool2d outputs, as float32 bits in hex,
computed without and with a graph (the kernel that records indices), and for
geometries without dilation avg_pool2d's with count_include_pad true and
false.
"""
import json, sys, torch
import torch.nn.functional as F
req = json.load(sys.stdin)
def tensor(h):
    return torch.frombuffer(bytearray.fromhex(h), dtype=torch.float32).reshape(req["shape"])
x, xf = tensor(req["x"]), tensor(req["xf"])
res = []
for c in req["cases"]:
    args = dict(kernel_size=c["k"], stride=c["s"], padding=c["p"], dilation=c["d"], ceil_mode=c["ceil"])
    with torch.no_grad():
        y0 = F.max_pool2d(x, **args)
    xg = x.clone().requires_grad_(True)
    y1 = F.max_pool2d(xg, **args)
    r = [y0.numpy().tobytes().hex(), y1.detach().numpy().tobytes().hex()]
    if c["d"] == [1, 1]:
        for incl in (True, False):
            with torch.no_grad():
                y = F.avg_pool2d(xf, c["k"], c["s"], c["p"], c["ceil"], count_include_pad=incl)
            r.append(y.numpy().tobytes().hex())
    res.append(r)
json.dump(res, sys.stdout)
