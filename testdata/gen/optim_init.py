#!/usr/bin/python3
"""Reference values for the initialisers of package nn (nn/init.go).

Usage:
  /usr/bin/python3 testdata/gen/optim_init.py          # writes testdata/optim/init.json

For weight shapes of Linear and Conv2d layers: torch's fan_in and fan_out
(torch.nn.init._calculate_fan_in_and_fan_out), calculate_gain for every
nonlinearity, and for each initialiser call the distribution it draws from
(uniform low/high, normal mean/std, truncated normal mean/std/a/b), computed
from torch's own fan and gain functions as torch.nn.init does. Each
distribution is checked here against a large sample drawn by torch itself,
so the Go test compares its samples with what torch really draws.
"""
import json, math
import torch
import torch.nn.init as init

SHAPES = [[10, 20], [64, 3, 7, 7], [128, 64, 3, 3], [32, 1, 3, 3], [1000, 512], [6, 4, 5], [256, 128, 1, 1]]
GAINS = [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
         ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)), ("selu", None)]


def dist_of(name, shape, kw):
    w = torch.empty(shape)
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(w)
    if name in ("kaiming_uniform_", "kaiming_normal_"):
        fan = init._calculate_correct_fan(w, kw["mode"])
        std = init.calculate_gain(kw["nonlinearity"], kw["a"]) / math.sqrt(fan)
        if name == "kaiming_uniform_":
            return {"kind": "uniform", "low": -math.sqrt(3) * std, "high": math.sqrt(3) * std}
        return {"kind": "normal", "mean": 0.0, "std": std}
    if name == "xavier_uniform_":
        b = kw["gain"] * math.sqrt(6.0 / (fan_in + fan_out))
        return {"kind": "uniform", "low": -b, "high": b}
    if name == "xavier_normal_":
        return {"kind": "normal", "mean": 0.0, "std": kw["gain"] * math.sqrt(2.0 / (fan_in + fan_out))}
    if name == "uniform_":
        return {"kind": "uniform", "low": kw["a"], "high": kw["b"]}
    if name == "normal_":
        return {"kind": "normal", "mean": kw["mean"], "std": kw["std"]}
    if name == "trunc_normal_":
        return {"kind": "trunc_normal", **kw}
    raise ValueError(name)


def check_torch(name, shape, kw, d):
    """The distribution above is what torch draws from: a 200k-element sample
    of torch's own initialiser has its bounds and moments."""
    n = 200000
    w = torch.empty(shape)
    reps = max(1, n // w.numel())
    xs = []
    for _ in range(reps):
        getattr(init, name)(w, **kw)
        xs.append(w.flatten().clone())
    x = torch.cat(xs).double()
    if d["kind"] == "uniform":
        assert x.min() >= d["low"] - 1e-6 and x.max() <= d["high"] + 1e-6, (name, kw)
        assert abs(x.std() - (d["high"] - d["low"]) / math.sqrt(12)) < 0.02 * (d["high"] - d["low"]), (name, kw)
    elif d["kind"] == "normal":
        assert abs(x.std() - d["std"]) < 0.02 * d["std"], (name, kw, x.std(), d)
    else:
        assert x.min() >= d["a"] and x.max() <= d["b"], (name, kw)


def main():
    cases = []
    for shape in SHAPES:
        w = torch.empty(shape)
        fi, fo = init._calculate_fan_in_and_fan_out(w)
        inits = []
        for mode in ("fan_in", "fan_out"):
            for nl, a in (("relu", 0), ("leaky_relu", 0), ("leaky_relu", math.sqrt(5)), ("leaky_relu", 0.1)):
                for name in ("kaiming_uniform_", "kaiming_normal_"):
                    inits.append((name, {"a": a, "mode": mode, "nonlinearity": nl}))
        for gain in (1.0, init.calculate_gain("relu")):
            inits.append(("xavier_uniform_", {"gain": gain}))
            inits.append(("xavier_normal_", {"gain": gain}))
        inits += [("uniform_", {"a": -0.3, "b": 0.7}), ("normal_", {"mean": 0.5, "std": 0.01}),
                  ("trunc_normal_", {"mean": 0.0, "std": 0.02, "a": -2.0, "b": 2.0}),
                  ("trunc_normal_", {"mean": 0.0, "std": 1.0, "a": -2.0, "b": 2.0}),
                  ("trunc_normal_", {"mean": 0.5, "std": 1.0, "a": -0.5, "b": 1.0})]
        out = []
        for name, kw in inits:
            d = dist_of(name, shape, kw)
            check_torch(name, shape, kw, d)
            out.append({"fn": name, "kwargs": kw, "dist": d})
        cases.append({"shape": shape, "fan_in": fi, "fan_out": fo, "inits": out})
    gains = [{"nonlinearity": nl, "param": p, "gain": init.calculate_gain(nl, p)} for nl, p in GAINS]
    with open("testdata/optim/init.json", "w") as f:
        json.dump({"torch": torch.__version__, "gains": gains, "shapes": cases}, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
