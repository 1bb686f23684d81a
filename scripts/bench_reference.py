#!/usr/bin/python3
"""Times the same model and input in PyTorch, ONNX Runtime and ckpt, side by
side on this machine, and prints the ratios of their median times.

For each architecture and batch size: torchvision builds the model with
random weights (seeded), saves its state_dict for ckpt and exports it to ONNX
(opset 13) for ONNX Runtime; each runtime then does --warmup untimed and
--iters timed forward passes on the same random input with the same number
of threads (--threads, default 2). The timed passes are split into --rounds
rounds that take turns (torch, ORT, ckpt, torch, ...), so that a burst of
load on a shared machine falls on all three alike; the medians are over all
rounds. Only ratios measured in one run mean anything: absolute times depend
on the machine and its load.

Needs: /usr/bin/python3 with torch and torchvision, node with onnxruntime-node
(scripts/setup-interop.sh installs both), and Go to build ckpt.

Usage: /usr/bin/python3 scripts/bench_reference.py [--arch resnet18,...] [--batch 1,8]
           [--iters 10] [--warmup 3] [--threads 2] [--json out.json]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

import torch
import torchvision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ARCHS = "resnet18,resnet50,mobilenet_v2,efficientnet_b0,vgg16,vit_b_16,swin_t"

ORT_SCRIPT = r"""
const ort = require('onnxruntime-node');
const [model, batch, size, iters, warmup, threads] = process.argv.slice(2);
(async () => {
  const s = await ort.InferenceSession.create(model, {intraOpNumThreads: +threads, interOpNumThreads: 1,
      executionMode: 'sequential', graphOptimizationLevel: 'all'});
  const n = (+batch) * 3 * (+size) * (+size);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(i);
  const feeds = {[s.inputNames[0]]: new ort.Tensor('float32', data, [+batch, 3, +size, +size])};
  for (let i = 0; i < +warmup; i++) await s.run(feeds);
  const times = [];
  for (let i = 0; i < +iters; i++) {
    const t0 = process.hrtime.bigint();
    await s.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  console.log(JSON.stringify(times));
})().catch(e => { console.error(String(e)); process.exit(1); });
"""


def ort_env():
    env = dict(os.environ)
    d = os.environ.get("CKPT_ORT_DIR", os.path.join(os.path.expanduser("~"), ".cache", "ckpt-interop", "ort"))
    env["NODE_PATH"] = os.path.join(d, "node_modules") + os.pathsep + env.get("NODE_PATH", "")
    return env


def median(ts):
    return statistics.median(ts)


def time_torch(model, x, iters, warmup):
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        ts = []
        for _ in range(iters):
            t0 = time.perf_counter()
            model(x)
            ts.append((time.perf_counter() - t0) * 1000)
    return ts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default=DEFAULT_ARCHS)
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="turns the runtimes take (timed passes are split among them)")
    ap.add_argument("--json", help="also write the results to this file")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tmp = tempfile.mkdtemp(prefix="ckpt-bench-")
    ckpt = os.path.join(tmp, "ckpt")
    subprocess.run(["go", "build", "-o", ckpt, "./cmd/ckpt"], cwd=ROOT, check=True)
    known = set(subprocess.run([ckpt, "bench", "--list"], capture_output=True, text=True, check=True).stdout.split())
    ort_js = os.path.join(tmp, "ort_bench.js")
    with open(ort_js, "w") as f:
        f.write(ORT_SCRIPT)
    rows = []
    print(f"{a.threads} threads; {a.rounds} rounds of {a.warmup} warm-up and {max(1, a.iters // a.rounds)} timed runs each, taking turns; median ms", file=sys.stderr)
    header = f"{'arch':<16} {'batch':>5} {'torch':>9} {'ORT':>9} {'ckpt':>9} {'ckpt/torch':>11} {'ckpt/ORT':>9}"
    print(header)
    for arch in a.arch.split(","):
        torch.manual_seed(0)
        model = getattr(torchvision.models, arch)().eval()
        size = 299 if arch == "inception_v3" else 224
        weights = os.path.join(tmp, arch + ".pt")
        torch.save(model.state_dict(), weights)
        for batch in [int(b) for b in a.batch.split(",")]:
            x = torch.randn(batch, 3, size, size)
            onnx_path = os.path.join(tmp, f"{arch}_b{batch}.onnx")
            torch.onnx.export(model, x, onnx_path, opset_version=13, input_names=["input"], output_names=["output"])
            per_round = max(1, a.iters // a.rounds)
            ts_torch, ts_ort, ts_ckpt = [], [], []
            ort_ok, ckpt_ok = True, arch in known
            for _ in range(a.rounds):
                ts_torch += time_torch(model, x, per_round, a.warmup)
                if ort_ok:
                    r = subprocess.run(["node", ort_js, onnx_path, str(batch), str(size), str(per_round), str(a.warmup), str(a.threads)],
                                       capture_output=True, text=True, env=ort_env())
                    if r.returncode == 0:
                        ts_ort += json.loads(r.stdout)
                    else:
                        ort_ok = False
                        print(f"onnxruntime {arch}: {r.stderr.strip()[:200]}", file=sys.stderr)
                if ckpt_ok:
                    r = subprocess.run([ckpt, "bench", "--arch", arch, "--weights", weights, "--batch", str(batch),
                                        "--size", str(size), "--iters", str(per_round), "--warmup", str(a.warmup),
                                        "--threads", str(a.threads), "--json"],
                                       capture_output=True, text=True, env=dict(os.environ, GOMAXPROCS=str(a.threads)))
                    if r.returncode == 0:
                        ts_ckpt += json.loads(r.stdout)["times_ms"]
                    else:
                        ckpt_ok = False
                        print(f"ckpt bench {arch}: {r.stderr.strip()}", file=sys.stderr)
            t_torch = median(ts_torch)
            t_ort = median(ts_ort) if ts_ort else None
            t_ckpt = median(ts_ckpt) if ts_ckpt else None

            def fmt(v):
                return f"{v:9.1f}" if v is not None else f"{'-':>9}"

            def ratio(p, q):
                return f"{p / q:.2f}x" if p is not None and q else "-"
            print(f"{arch:<16} {batch:>5} {fmt(t_torch)} {fmt(t_ort)} {fmt(t_ckpt)} {ratio(t_ckpt, t_torch):>11} {ratio(t_ckpt, t_ort):>9}", flush=True)
            rows.append({"arch": arch, "batch": batch, "torch_ms": t_torch, "ort_ms": t_ort, "ckpt_ms": t_ckpt})
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"threads": a.threads, "iters": a.iters, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
