#!/usr/bin/python3
"""Reference values for the losses of package nn (nn/loss.go), computed by
PyTorch: for every option combination, the inputs, the loss and the gradients
of the input (and of a float target) under a random upstream gradient.

Usage:
  /usr/bin/python3 testdata/gen/loss_cases.py                   # writes testdata/loss/losses.json (seed 0)
  /usr/bin/python3 testdata/gen/loss_cases.py --seed 7 --out F  # interop test

Tensors are {"shape": [...], "data": "v v v"}, each v numpy's shortest repr of
the float32 value, so Go's ParseFloat(v, 32) recovers torch's float32 exactly.
Class-index targets are lists of ints.
"""
import argparse, json, random
import numpy as np
import torch
import torch.nn as nn


def enc(t):
    t = t.detach().to(torch.float32).contiguous()
    return {"shape": list(t.shape), "data": " ".join(str(np.float32(v)) for v in t.reshape(-1).tolist())}


def case(name, loss, kwargs, x, target, float_target=False, weight=None, pos_weight=None):
    kw = dict(kwargs)
    if weight is not None:
        kw["weight"] = weight
    if pos_weight is not None:
        kw["pos_weight"] = pos_weight
    m = getattr(nn, loss)(**kw)
    x = x.clone().requires_grad_(True)
    if float_target:
        target = target.clone().requires_grad_(True)
    y = m(x, target)
    g = torch.randn_like(y) if y.dim() > 0 else torch.tensor(1.0)
    y.backward(g)
    out = {
        "name": name, "loss": loss, "kwargs": kwargs, "input": enc(x), "output": enc(y),
        "grad_output": enc(g), "input_grad": enc(x.grad),
    }
    if float_target:
        out["target"] = enc(target)
        out["target_grad"] = enc(target.grad)
    else:
        out["target_index"] = target.reshape(-1).tolist()
    if weight is not None:
        out["weight"] = enc(weight)
    if pos_weight is not None:
        out["pos_weight"] = enc(pos_weight)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="testdata/loss/losses.json")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    rnd = random.Random(a.seed)
    cases = []
    R = ["mean", "sum", "none"]
    N, C = rnd.randint(3, 6), rnd.randint(3, 5)
    for red in R:
        for w in (False, True):
            for ls in (0.0, 0.15):
                for ign in (False, True):
                    x = torch.randn(N, C) * 2
                    t = torch.randint(0, C, (N,))
                    kw = {"reduction": red, "label_smoothing": ls}
                    if ign:
                        ii = rnd.randrange(C)
                        t[0] = ii
                        t[N - 1] = ii
                        kw["ignore_index"] = ii
                    wt = torch.rand(C) + 0.2 if w else None
                    cases.append(case(f"ce/{red}/w={w}/ls={ls}/ignore={ign}", "CrossEntropyLoss", kw, x, t, weight=wt))
        # spatial: [N, C, H, W] with [N, H, W] targets
        x = torch.randn(2, C, 3, 2)
        t = torch.randint(0, C, (2, 3, 2))
        t[0, 0, 0] = -100
        cases.append(case(f"ce/spatial/{red}", "CrossEntropyLoss", {"reduction": red, "label_smoothing": 0.1}, x, t,
                          weight=torch.rand(C) + 0.5))
        # unbatched [C] input with a scalar target
        cases.append(case(f"ce/unbatched/{red}", "CrossEntropyLoss", {"reduction": red}, torch.randn(C), torch.tensor(rnd.randrange(C))))
        # probability targets
        for w in (False, True):
            for ls in (0.0, 0.2):
                x = torch.randn(N, C)
                p = torch.softmax(torch.randn(N, C), 1)
                cases.append(case(f"ce/probs/{red}/w={w}/ls={ls}", "CrossEntropyLoss", {"reduction": red, "label_smoothing": ls},
                                  x, p, float_target=True, weight=torch.rand(C) + 0.2 if w else None))
        for w in (False, True):
            for ign in (False, True):
                x = torch.log_softmax(torch.randn(N, C), 1)
                t = torch.randint(0, C, (N,))
                kw = {"reduction": red}
                if ign:
                    kw["ignore_index"] = int(t[1])
                cases.append(case(f"nll/{red}/w={w}/ignore={ign}", "NLLLoss", kw, x, t, weight=torch.rand(C) + 0.2 if w else None))
        cases.append(case(f"nll/spatial/{red}", "NLLLoss", {"reduction": red}, torch.randn(2, C, 2, 3), torch.randint(0, C, (2, 2, 3))))
        cases.append(case(f"mse/{red}", "MSELoss", {"reduction": red}, torch.randn(N, C, 2), torch.randn(N, C, 2), float_target=True))
        for pw in (False, True):
            for w in ("none", "full", "row"):
                x = torch.randn(N, C) * 3
                y = torch.rand(N, C)
                wt = {"none": None, "full": torch.rand(N, C) + 0.2, "row": torch.rand(C) + 0.2}[w]
                cases.append(case(f"bce/{red}/pos_weight={pw}/weight={w}", "BCEWithLogitsLoss", {"reduction": red}, x, y,
                                  float_target=True, weight=wt, pos_weight=torch.rand(C) * 3 if pw else None))
    with open(a.out, "w") as f:
        f.write('{"torch": %s, "seed": %d, "cases": [\n' % (json.dumps(torch.__version__), a.seed))
        f.write(",\n".join(json.dumps(c, separators=(",", ":")) for c in cases))
        f.write("\n]}\n")


if __name__ == "__main__":
    main()
