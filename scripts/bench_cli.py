#!/usr/bin/python3
"""Times ckpt's commands end to end on a torchvision ResNet-50 state_dict
(written by torch into a temp dir, about 102 MB, read from the page cache):
`ckpt inspect`, `ckpt inspect --hash`, and `ckpt convert` to .safetensors next
to `cp` and `cp` + `sync` of the same bytes. Medians of --runs runs each.

Usage: /usr/bin/python3 scripts/bench_cli.py [--runs 15]
"""
import argparse, os, shutil, statistics, subprocess, tempfile, time

import torch
import torchvision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def median_time(cmd, runs, before=None):
    ts = []
    for _ in range(runs):
        if before:
            before()
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True, shell=isinstance(cmd, str))
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ckpt-bench-cli-")
    ckpt = os.path.join(tmp, "ckpt")
    subprocess.run(["go", "build", "-o", ckpt, "./cmd/ckpt"], cwd=ROOT, check=True)
    src = os.path.join(tmp, "resnet50.pt")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50().state_dict(), src)
    size = os.path.getsize(src)
    with open(src, "rb") as f:  # into the page cache
        while f.read(1 << 24):
            pass
    out, cp = os.path.join(tmp, "out.safetensors"), os.path.join(tmp, "copy.pt")

    def clean():
        for p in (out, cp):
            if os.path.exists(p):
                os.remove(p)
    t_list = median_time([ckpt, "inspect", src], a.runs)
    t_hash = median_time([ckpt, "inspect", "--hash", src], a.runs)
    t_conv = median_time([ckpt, "convert", src, out], a.runs, clean)
    t_cp = median_time(["cp", src, cp], a.runs, clean)
    t_cps = median_time(f"cp {src} {cp} && sync {cp}", a.runs, clean)
    mb = size / 1e6
    print(f"ResNet-50 state_dict, {mb:.1f} MB, page cache; medians of {a.runs} runs")
    print(f"ckpt inspect                 {t_list * 1e3:7.1f} ms")
    print(f"ckpt inspect --hash          {t_hash * 1e3:7.1f} ms  ({size / t_hash / 1e9:.2f} GB/s end to end, "
          f"{size / (t_hash - t_list) / 1e9:.2f} GB/s for the hashing beyond the listing)")
    print(f"ckpt convert -> safetensors  {t_conv * 1e3:7.1f} ms  ({t_conv / t_cps:.2f}x cp+sync, {t_conv / t_cp:.2f}x cp)")
    print(f"cp                           {t_cp * 1e3:7.1f} ms")
    print(f"cp + sync                    {t_cps * 1e3:7.1f} ms")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
