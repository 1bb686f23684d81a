#!/usr/bin/python3
"""Resume a ckpt finetune run's checkpoint.pt in torch, for package train's
interop test (checkpoint.pt must be a training checkpoint PyTorch resumes).

Usage: finetune_checkpoint_check.py RUN

torch.load(RUN/checkpoint.pt) must give {"epoch", "model", "optimizer",
"scheduler"}. Builds torchvision's ARCH(num_classes=N) from RUN/config.json
and loads "model" strictly; builds SGD over the classifier's parameters (the
head strategy's optimizer) and the run's cosine schedule (no warm-up), and
loads "optimizer" and "scheduler" into them. Prints {"epoch", "keys",
"lr", "momentum_buffers", "last_epoch", "last_lr"} as JSON.
"""
import json, os, sys
import torch
import torchvision


def main():
    run = sys.argv[1]
    cfg = json.load(open(os.path.join(run, "config.json")))
    ck = torch.load(os.path.join(run, "checkpoint.pt"))
    if sorted(ck) != ["epoch", "model", "optimizer", "scheduler"]:
        raise SystemExit("checkpoint.pt keys: %s" % sorted(ck))
    model = getattr(torchvision.models, cfg["arch"])(num_classes=len(cfg["classes"]))
    model.load_state_dict(ck["model"], strict=True)
    head = model.fc if hasattr(model, "fc") else model.classifier
    opt = torch.optim.SGD(head.parameters(), lr=cfg["lr"], momentum=cfg["momentum"])
    opt.load_state_dict(ck["optimizer"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg["epochs"] - cfg["warmup_epochs"]))
    sched.load_state_dict(ck["scheduler"])
    bufs = sum(1 for s in opt.state.values() if "momentum_buffer" in s)
    print(json.dumps({"epoch": ck["epoch"], "keys": len(ck["model"]), "lr": opt.param_groups[0]["lr"],
                      "momentum_buffers": bufs, "last_epoch": sched.last_epoch, "last_lr": sched.get_last_lr()[0]}))


if __name__ == "__main__":
    main()
