#!/usr/bin/python3
"""Writes testdata/pickle/multisteplr_state.pt: the state_dict of a torch
MultiStepLR scheduler, whose milestones torch keeps in a collections.Counter
(package pickle reads it as a dict of counts).

Usage: /usr/bin/python3 pickle_counter.py [--out DIR]
"""
import argparse, os

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "pickle"))
    a = ap.parse_args()
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[3, 7, 7], gamma=0.5)
    for _ in range(4):
        opt.step()
        sched.step()
    torch.save(sched.state_dict(), os.path.join(a.out, "multisteplr_state.pt"))


if __name__ == "__main__":
    main()
