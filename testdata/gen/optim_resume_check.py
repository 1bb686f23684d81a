#!/usr/bin/python3
"""Resume in PyTorch from an optimizer state that Go wrote (nn/optim's
WriteTorch), for the interop test TestWriteTorchResumesInTorch.

Usage:
  /usr/bin/python3 testdata/gen/optim_resume_check.py --state S.pt --spec spec.json --out out.json

spec.json (written by the Go test) gives the algorithm, the hyper-parameters
and parameter groups (as in optim_cases.py) and the parameters' values. The
state is loaded with torch.load(weights_only=True) into a fresh optimizer,
which then takes --steps steps with random gradients; out.json holds those
gradients, the parameters and the state_dict tensors afterwards, and the
loaded param_groups.
"""
import argparse, json, os, sys
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from optim_cases import build, enc, jsonable  # noqa: E402


def dec(d):
    return torch.tensor([float(v) for v in d["data"].split()], dtype=torch.float32).reshape(d["shape"])


def check_layout(sd, spec, params):
    """The Go-written state dict has the layout torch's own has: the same
    keys, Python types and tensor dtypes and shapes."""
    ref_params = [p.detach().clone().requires_grad_(True) for p in params]
    ref = build(spec["alg"], spec["defaults"], spec.get("group2"), ref_params)
    for p in ref_params:
        p.grad = torch.ones_like(p)
    ref.step()
    want = ref.state_dict()
    assert set(sd) == set(want), (set(sd), set(want))
    assert len(sd["param_groups"]) == len(want["param_groups"])
    for g, w in zip(sd["param_groups"], want["param_groups"]):
        missing = set(w) - set(g) - {"initial_lr"}
        assert not missing, f"param group lacks {missing}"
        for k in w:
            if k in g and w[k] is not None and not isinstance(w[k], (int, float)):
                assert type(g[k]) is type(w[k]), (k, type(g[k]), type(w[k]))
        assert g["params"] == w["params"], (g["params"], w["params"])
    for i, st in want["state"].items():
        got = sd["state"][i]
        assert set(got) == set(st), (i, set(got), set(st))
        for k, v in st.items():
            if torch.is_tensor(v):
                assert got[k].dtype == v.dtype and got[k].shape == v.shape, (i, k, got[k].dtype, got[k].shape, v.dtype, v.shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", required=True)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    spec = json.load(open(a.spec))
    params = [dec(p).requires_grad_(True) for p in spec["params"]]
    g2 = spec.get("group2")
    if g2 and "betas" in g2:
        g2["betas"] = tuple(g2["betas"])
    d = spec["defaults"]
    if "betas" in d:
        d["betas"] = tuple(d["betas"])
    opt = build(spec["alg"], d, g2, params)
    # torch 1.13's weights_only unpickler has no BINFLOAT opcode, so it
    # refuses every optimizer state dict (its own too: a float lr); load as
    # torch users of 1.13 do.
    sd = torch.load(a.state)
    check_layout(sd, spec, params)
    opt.load_state_dict(sd)
    loaded = [jsonable({k: v for k, v in g.items() if k != "params"}) for g in opt.param_groups]
    grads = []
    for _ in range(a.steps):
        row = []
        for p in params:
            p.grad = torch.randn_like(p)
            row.append(enc(p.grad))
        grads.append(row)
        opt.step()
    out = opt.state_dict()
    state = {f"state.{i}.{k}": enc(v) for i, st in out["state"].items() for k, v in st.items() if torch.is_tensor(v)}
    with open(a.out, "w") as f:
        json.dump({"param_groups": loaded, "grads": grads, "final": [enc(p) for p in params], "state": state}, f)


if __name__ == "__main__":
    main()
