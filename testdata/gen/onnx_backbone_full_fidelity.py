#!/usr/bin/python3
"""Reference for package train's TestONNXBackboneFullFidelity: torch trains
the BatchNorm-preserving export of finetune_onnx_backbone.py --keep-bn with
the full strategy, on the batches and from the new classifier it writes.

Usage: /usr/bin/python3 testdata/gen/onnx_backbone_full_fidelity.py --out-dir DIR [--seed N] [--steps 5]
    [--batch 8] [--size 32] [--classes 3] [--lr 0.01] [--backbone-lr-mult 0.1]

Writes DIR/backbone.onnx (the export ckpt fine-tunes), DIR/batches.pt
({"x": [STEPS, BATCH, 3, SIZE, SIZE], "y": [STEPS, BATCH] labels as float, "head.weight", "head.bias":
the new classifier, torch.nn.Linear's init}), DIR/final.pt (the state_dict
after the last step, fc being the classifier), DIR/final_float64.pt (the
float64 run's, rounded to float32) and DIR/losses.json
({"losses": every step's loss, "losses_float64": the same run in float64
from the same float32 weights, and the hyperparameters}). Training is
ckpt finetune's for full: model.train() (BatchNorm on batch statistics,
running statistics updated with momentum 0.1), SGD with momentum 0.9, the
backbone at lr x backbone-lr-mult, the classifier at lr, cross-entropy.
"""
import argparse
import copy
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from finetune_onnx_backbone import build, export  # noqa: E402


def train(model, xs, ys, lr, mult, dtype):
    model = copy.deepcopy(model).to(dtype)
    model.train()
    head = list(model.fc.parameters())
    ids = {id(p) for p in head}
    backbone = [p for p in model.parameters() if id(p) not in ids]
    opt = torch.optim.SGD([{"params": backbone, "lr": lr * mult}, {"params": head, "lr": lr}], lr=lr, momentum=0.9)
    losses = []
    for x, y in zip(xs, ys):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x.to(dtype)), y.long())
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model, losses


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--backbone-lr-mult", type=float, default=0.1)
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    model = build("resnet18", a.seed, True)
    export(model, os.path.join(a.out_dir, "backbone.onnx"), a.size, True)
    torch.manual_seed(a.seed + 1)
    model.fc = torch.nn.Linear(model.fc.in_features, a.classes)
    xs = torch.randn(a.steps, a.batch, 3, a.size, a.size)
    ys = torch.randint(0, a.classes, (a.steps, a.batch)).float()
    torch.save({"x": xs, "y": ys, "head.weight": model.fc.weight.detach().clone(), "head.bias": model.fc.bias.detach().clone()},
               os.path.join(a.out_dir, "batches.pt"))
    m32, l32 = train(model, xs, ys, a.lr, a.backbone_lr_mult, torch.float32)
    m64, l64 = train(model, xs, ys, a.lr, a.backbone_lr_mult, torch.float64)
    torch.save(m32.state_dict(), os.path.join(a.out_dir, "final.pt"))
    torch.save({k: v.float() if v.is_floating_point() else v for k, v in m64.state_dict().items()},
               os.path.join(a.out_dir, "final_float64.pt"))
    with open(os.path.join(a.out_dir, "losses.json"), "w") as f:
        json.dump({"losses": l32, "losses_float64": l64, "lr": a.lr, "backbone_lr_mult": a.backbone_lr_mult,
                   "classes": a.classes, "momentum": 0.9}, f)


if __name__ == "__main__":
    main()
