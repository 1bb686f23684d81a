#!/usr/bin/python3
"""Diagnose a `full` fidelity miss of package train's TestTorchFidelity.

Reads the directory finetune_fidelity.py wrote (resnet18 only) and replays
torch's `full` run (SGD, momentum 0.9) for STEPS steps in float64 and
float32:

  ties   for every step, the max-pool windows after the stem's ReLU whose two
         largest values are closest (relative gap below --gap): a window
         whose top two values are within float32 rounding of each other can
         pick a different argmax in another float32 implementation, which
         sends one element of the gradient to a neighbouring pixel.
  nudge  adds --eps to one stem activation (N,C,H,W given by --at) at step
         --step (1-based) before the max pool, which flips such a near tie
         without otherwise changing the forward pass beyond --eps, and
         prints every step's loss, to set beside ckpt's.

Usage:
  /usr/bin/python3 testdata/gen/finetune_fidelity_diag.py ties DIR [--steps 12] [--gap 1e-5]
  /usr/bin/python3 testdata/gen/finetune_fidelity_diag.py nudge DIR --step 3 --at 11,30,5,13 [--eps 1e-6] [--steps 14]
"""
import argparse, json
import torch
import torch.nn.functional as F
import torchvision


def replay(d, dtype, steps, lr, classes, hook):
    init = torch.load(d + "/initial.pt")
    b = torch.load(d + "/batches.pt")
    x, y = b["x"], b["y"]
    m = torchvision.models.resnet18(num_classes=classes).to(dtype)
    m.load_state_dict(init)
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9)
    crit = torch.nn.CrossEntropyLoss()
    state = {"step": 0}
    m.relu.register_forward_hook(lambda mod, i, o: hook(state["step"], o))
    losses = []
    for s in range(steps):
        state["step"] = s + 1
        opt.zero_grad()
        loss = crit(m(x[s % x.shape[0]].to(dtype)), y[s % x.shape[0]])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["ties", "nudge"])
    ap.add_argument("dir")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--gap", type=float, default=1e-5)
    ap.add_argument("--step", type=int, default=1)
    ap.add_argument("--at", default="0,0,0,0")
    ap.add_argument("--eps", type=float, default=1e-6)
    a = ap.parse_args()
    meta = json.load(open(a.dir + "/losses.json"))
    assert meta["arch"] == "resnet18", "only resnet18 (stem ReLU then max pool)"
    out = {}
    for dtype, tag in [(torch.float64, "float64"), (torch.float32, "float32")]:
        if a.mode == "ties":
            def hook(step, o):
                n, c, h, w = o.shape
                p = F.pad(o.detach(), (1, 1, 1, 1), value=float("-inf"))
                u = F.unfold(p.reshape(n * c, 1, h + 2, w + 2), 3, stride=2)  # torch's max pool: k3 s2 p1
                top = u.topk(2, dim=1).values
                gap = (top[:, 0] - top[:, 1]) / top[:, 0].abs().clamp_min(1e-30)
                gap = torch.where(top[:, 0] > 0, gap, torch.ones_like(gap))  # all-zero windows route to a dead ReLU
                ow = (w + 2 - 3) // 2 + 1
                for r, l in (gap < a.gap).nonzero().tolist():
                    i, ch, oy, ox = r // c, r % c, l // ow, l % ow
                    print("%s step %d: image %d channel %d window (%d,%d): relative gap %.2g" % (tag, step, i, ch, oy, ox, gap[r, l].item()))
            replay(a.dir, dtype, a.steps, meta["lr"], meta["classes"], hook)
        else:
            at = [int(v) for v in a.at.split(",")]

            def hook(step, o):
                if step == a.step:
                    o = o.clone()
                    o[tuple(at)] += a.eps
                    return o
            out[tag] = replay(a.dir, dtype, a.steps, meta["lr"], meta["classes"], hook)
    if out:
        ref = meta["losses"].get("full", [])
        for s in range(a.steps):
            print("step %d: torch float32 %s, nudged float64 %.7f, nudged float32 %.7f" % (
                s + 1, "%.7f" % ref[s] if s < len(ref) else "-", out["float64"][s], out["float32"][s]))


if __name__ == "__main__":
    main()
