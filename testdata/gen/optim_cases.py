#!/usr/bin/python3
"""Reference runs of torch.optim for package nn/optim.

Usage:
  /usr/bin/python3 testdata/gen/optim_cases.py                        # writes testdata/optim/ (seed 0)
  /usr/bin/python3 testdata/gen/optim_cases.py --seed 7 --out-dir D   # interop test

Writes into the output directory:
  cases.json    for every optimizer / option / group / scheduler combination:
                the initial parameters, the gradient of every parameter at
                every step (null: the parameter has no grad at that step),
                the learning rates after each scheduler step, and the
                parameters and the state_dict's tensors after the last step.
  sgd_state.pt, adam_state.pt
                optimizer.state_dict() after a few steps of SGD with momentum
                and of Adam (AMSGrad, two groups, a scheduler's initial_lr),
                saved by torch.save;
  resume.json   for each: the parameters at the time of saving, the hyper-
                parameters to rebuild the optimizer, gradients for the next
                steps, and the parameters and state after torch continued.
  sched_*.pt    torch.save({"optimizer": ..., "scheduler": sched.state_dict()})
                after a few epochs of StepLR, CosineAnnealingLR, LinearLR and
                SequentialLR (warm-up then cosine) on SGD with two groups;
  sched_resume.json
                for each: the scheduler's arguments and the learning rates
                torch's get_last_lr() gives over the next epochs.

Tensors are {"shape": [...], "data": "v v v"} (numpy's shortest float32
repr), so Go parses torch's exact values.
"""
import argparse, json, os, random
import numpy as np
import torch
import torch.optim as optim
from torch.optim import lr_scheduler as lrs


def enc(t):
    t = t.detach().to(torch.float32).contiguous()
    return {"shape": list(t.shape), "data": " ".join(str(np.float32(v)) for v in t.reshape(-1).tolist())}


SHAPES = [(3, 4), (3,), (5,)]

CASES = [
    ("sgd/plain", "SGD", {"lr": 0.1}, None, None),
    ("sgd/momentum", "SGD", {"lr": 0.05, "momentum": 0.9}, None, None),
    ("sgd/dampening", "SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3}, None, None),
    ("sgd/nesterov", "SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}, None, None),
    ("sgd/weight_decay", "SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}, None, None),
    ("sgd/maximize", "SGD", {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1, "maximize": True}, None, None),
    ("sgd/groups", "SGD", {"lr": 0.1, "momentum": 0.9}, {"lr": 0.01, "momentum": 0.5, "nesterov": True}, None),
    ("adam/default", "Adam", {}, None, None),
    ("adam/lr", "Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6}, None, None),
    ("adam/weight_decay", "Adam", {"lr": 0.01, "weight_decay": 0.1}, None, None),
    ("adam/amsgrad", "Adam", {"lr": 0.01, "amsgrad": True}, None, None),
    ("adam/maximize", "Adam", {"lr": 0.01, "maximize": True, "weight_decay": 0.05}, None, None),
    ("adam/groups", "Adam", {"lr": 0.01}, {"lr": 0.1, "betas": (0.5, 0.9), "amsgrad": True}, None),
    ("adamw/default", "AdamW", {"lr": 0.01}, None, None),
    ("adamw/amsgrad", "AdamW", {"lr": 0.01, "weight_decay": 0.3, "amsgrad": True}, None, None),
    ("adamw/groups", "AdamW", {"lr": 0.01}, {"lr": 0.05, "weight_decay": 0.0}, None),
    ("sched/step", "SGD", {"lr": 0.1, "momentum": 0.9}, {"lr": 0.02}, ("StepLR", {"step_size": 3, "gamma": 0.5})),
    ("sched/multistep", "SGD", {"lr": 0.1, "momentum": 0.9}, None, ("MultiStepLR", {"milestones": [2, 5, 5], "gamma": 0.3})),
    ("sched/cosine", "SGD", {"lr": 0.1, "momentum": 0.9}, {"lr": 0.05}, ("CosineAnnealingLR", {"T_max": 4, "eta_min": 0.001})),
    ("sched/linear", "Adam", {"lr": 0.01}, None, ("LinearLR", {"start_factor": 0.2, "end_factor": 1.0, "total_iters": 4})),
    ("sched/warmup_cosine", "SGD", {"lr": 0.1, "momentum": 0.9}, {"lr": 0.03},
     ("SequentialLR", {"warmup": {"start_factor": 0.1, "end_factor": 1.0, "total_iters": 3}, "T_max": 6, "eta_min": 0.0, "milestones": [3]})),
    ("sched/warmup_cosine_adamw", "AdamW", {"lr": 0.01}, None,
     ("SequentialLR", {"warmup": {"start_factor": 0.25, "end_factor": 1.0, "total_iters": 2}, "T_max": 5, "eta_min": 1e-4, "milestones": [2]})),
]


def make_sched(opt, spec):
    if spec is None:
        return None
    kind, kw = spec
    if kind == "SequentialLR":
        warm = lrs.LinearLR(opt, **kw["warmup"])
        cos = lrs.CosineAnnealingLR(opt, T_max=kw["T_max"], eta_min=kw["eta_min"])
        return lrs.SequentialLR(opt, [warm, cos], milestones=kw["milestones"])
    return getattr(lrs, kind)(opt, **kw)


def build(alg, defaults, group2, params):
    if group2 is None:
        groups = [{"params": params}]
    else:
        groups = [{"params": params[:2]}, dict(group2, params=params[2:])]
    return getattr(optim, alg)(groups, **defaults)


def jsonable(d):
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def run(name, alg, defaults, group2, sched, steps, rnd):
    params = [torch.randn(*s, requires_grad=True) for s in SHAPES]
    init = [enc(p) for p in params]
    opt = build(alg, defaults, group2, params)
    sch = make_sched(opt, sched)
    lrs_seen = [[g["lr"] for g in opt.param_groups]]
    grads = []
    for k in range(steps):
        row = []
        for i, p in enumerate(params):
            if i == 2 and k == 3:
                p.grad = None  # no gradient this step: torch skips the parameter
                row.append(None)
                continue
            g = torch.randn_like(p)
            p.grad = g
            row.append(enc(g))
        grads.append(row)
        opt.step()
        if sch is not None:
            sch.step()
            lrs_seen.append(list(sch.get_last_lr()))
    sd = opt.state_dict()
    state = {f"state.{i}.{k}": enc(v) for i, st in sd["state"].items() for k, v in st.items() if torch.is_tensor(v)}
    return {
        "name": name, "alg": alg, "defaults": jsonable(defaults), "group2": None if group2 is None else jsonable(group2),
        "sched": None if sched is None else {"type": sched[0], "kwargs": sched[1]},
        "init": init, "grads": grads, "lrs": lrs_seen if sch is not None else None,
        "final": [enc(p) for p in params], "state": state,
    }


def resume_case(name, alg, defaults, group2, sched, before, after, out_dir):
    params = [torch.randn(*s, requires_grad=True) for s in SHAPES]
    opt = build(alg, defaults, group2, params)
    sch = make_sched(opt, sched)
    for k in range(before):
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
        if sch is not None:
            sch.step()
    path = os.path.join(out_dir, f"{name}_state.pt")
    torch.save(opt.state_dict(), path)
    saved = [enc(p) for p in params]
    grads = []
    for k in range(after):
        row = []
        for p in params:
            p.grad = torch.randn_like(p)
            row.append(enc(p.grad))
        grads.append(row)
        opt.step()  # the scheduler is not continued: the saved LRs apply
    sd = opt.state_dict()
    state = {f"state.{i}.{k}": enc(v) for i, st in sd["state"].items() for k, v in st.items() if torch.is_tensor(v)}
    return {
        "name": name, "file": os.path.basename(path), "alg": alg, "defaults": jsonable(defaults),
        "group2": None if group2 is None else jsonable(group2), "params": saved, "grads": grads,
        "final": [enc(p) for p in params], "state": state,
        "param_groups": [jsonable({k: v for k, v in g.items() if k != "params"}) for g in sd["param_groups"]],
    }


SCHED_RESUME = [
    ("step", ("StepLR", {"step_size": 2, "gamma": 0.5})),
    ("cosine", ("CosineAnnealingLR", {"T_max": 3, "eta_min": 0.001})),
    ("linear", ("LinearLR", {"start_factor": 0.2, "end_factor": 0.9, "total_iters": 6})),
    ("warmup_cosine", ("SequentialLR", {"warmup": {"start_factor": 0.1, "end_factor": 1.0, "total_iters": 3},
                                        "T_max": 6, "eta_min": 0.0, "milestones": [3]})),
]


def sched_resume(name, spec, before, after, out_dir):
    params = [torch.randn(*s, requires_grad=True) for s in SHAPES]
    opt = build("SGD", {"lr": 0.1, "momentum": 0.9}, {"lr": 0.03}, params)
    sch = make_sched(opt, spec)
    for _ in range(before):
        opt.step()
        sch.step()
    fname = f"sched_{name}.pt"
    torch.save({"optimizer": opt.state_dict(), "scheduler": sch.state_dict()}, os.path.join(out_dir, fname))
    lrs = []
    for _ in range(after):
        opt.step()
        sch.step()
        lrs.append(list(sch.get_last_lr()))
    return {"name": name, "file": fname, "sched": {"type": spec[0], "kwargs": spec[1]}, "lrs": lrs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", default="testdata/optim")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    rnd = random.Random(a.seed)
    steps = 8 if a.seed == 0 else rnd.randint(6, 12)
    cases = [run(*c, steps, rnd) for c in CASES]
    with open(os.path.join(a.out_dir, "cases.json"), "w") as f:
        f.write('{"torch": %s, "seed": %d, "cases": [\n' % (json.dumps(torch.__version__), a.seed))
        f.write(",\n".join(json.dumps(c, separators=(",", ":")) for c in cases))
        f.write("\n]}\n")
    res = [
        resume_case("sgd", "SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3}, None, None, 3, 4, a.out_dir),
        resume_case("adam", "Adam", {"lr": 0.01, "amsgrad": True}, {"lr": 0.02, "betas": (0.8, 0.95)},
                    ("StepLR", {"step_size": 2, "gamma": 0.5}), 3, 4, a.out_dir),
    ]
    sres = [sched_resume(n, sp, 4, 7, a.out_dir) for n, sp in SCHED_RESUME]
    with open(os.path.join(a.out_dir, "sched_resume.json"), "w") as f:
        f.write('{"torch": %s, "seed": %d, "cases": [\n' % (json.dumps(torch.__version__), a.seed))
        f.write(",\n".join(json.dumps(c, separators=(",", ":")) for c in sres))
        f.write("\n]}\n")
    with open(os.path.join(a.out_dir, "resume.json"), "w") as f:
        f.write('{"torch": %s, "seed": %d, "cases": [\n' % (json.dumps(torch.__version__), a.seed))
        f.write(",\n".join(json.dumps(c, separators=(",", ":")) for c in res))
        f.write("\n]}\n")


if __name__ == "__main__":
    main()
