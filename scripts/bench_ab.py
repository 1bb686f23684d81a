#!/usr/bin/env python3
"""Times two ckpt binaries against each other with `ckpt bench`, taking turns.

Usage:
  python3 scripts/bench_ab.py --base OLD_CKPT --new NEW_CKPT [--cases resnet18:1,resnet18:8]
      [--rounds 6] [--iters 10] [--train full|head]

For each ARCH:BATCH case, each round runs `ckpt bench --json` once per binary
(order alternating between rounds, so neither always runs right after the
other) and the medians of the rounds' medians are compared: new / base below
1 means the new binary is faster. Every round's figure is printed too: on a
shared host a run's wall time moves by tens of percent, and the spread says
how far to trust the ratio. bench_reference.py --baseline does the same
beside PyTorch and ONNX Runtime with fewer rounds.
"""
import argparse
import json
import statistics
import subprocess


def bench(binary, arch, batch, a):
    cmd = [binary, "bench", "--arch", arch, "--batch", str(batch), "--iters", str(a.iters), "--warmup", "2", "--json"]
    if a.train:
        cmd += ["--train", "--strategy", a.train]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out)["median_ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="the ckpt binary to compare against")
    ap.add_argument("--new", required=True, help="the ckpt binary under test")
    ap.add_argument("--cases", default="resnet18:1,resnet18:8,resnet50:1,mobilenet_v2:1,mobilenet_v2:8,efficientnet_b0:1")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--train", choices=["full", "head"], help="time training steps with this strategy")
    a = ap.parse_args()
    print("case                   base ms    new ms  new/base   rounds (base | new)")
    for case in a.cases.split(","):
        arch, batch = case.split(":")
        runs = {"base": [], "new": []}
        for r in range(a.rounds):
            for v in ("base", "new") if r % 2 == 0 else ("new", "base"):
                runs[v].append(bench(getattr(a, v), arch, int(batch), a))
        mb, mn = statistics.median(runs["base"]), statistics.median(runs["new"])
        spread = " ".join("%.1f" % x for x in runs["base"]) + " | " + " ".join("%.1f" % x for x in runs["new"])
        print(f"{arch + ' b' + batch:20s} {mb:9.1f} {mn:9.1f} {mn / mb:8.2f}x   {spread}", flush=True)


if __name__ == "__main__":
    main()
