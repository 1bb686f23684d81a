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
on the machine and its load. --baseline BIN times a second ckpt binary (an
older build) in the same rounds and adds its median and ckpt/base.

With --train it times training steps instead, against PyTorch only: for each
architecture, batch and --strategy (full: every parameter trained; head: only
the classifier, the rest frozen in evaluation mode as finetune --strategy head
freezes it), the forward pass in training mode, cross-entropy against
fixed labels, backward and an SGD step (lr 0.01, momentum 0.9), after
--warmup untimed steps. PyTorch runs each round in a fresh process, as ckpt
does, so both report the peak resident memory of a process that builds the
model and trains it (VmHWM; PyTorch's includes its ~200 MB of libraries).

With --onnx-import it times ckpt against itself instead: for each architecture and batch, `ckpt bench
--weights ARCH.onnx` (the torch.onnx.export of the same model, opset 13, dynamic batch, run as an
imported graph: "graph") beside `ckpt bench --arch ARCH --weights ARCH.pt` (the native model on the same
state_dict: "native"), and the same export made with training=TrainingMode.PRESERVE in eval mode and
no constant folding, whose BatchNormalization nodes ckpt folds at prepare time ("graph-bn"); rounds
take turns as above, and the ratios are graph/native.

Needs: /usr/bin/python3 with torch and torchvision, node with onnxruntime-node
(scripts/setup-interop.sh installs both), and Go to build ckpt.

Usage: /usr/bin/python3 scripts/bench_reference.py [--arch resnet18,...] [--batch 1,8]
           [--iters 10] [--warmup 3] [--threads 2] [--baseline OLD_CKPT] [--json out.json] [--no-torch vit_b_16,swin_t]
       /usr/bin/python3 scripts/bench_reference.py --train [--arch resnet18] [--batch 8] [--strategy full,head]
       /usr/bin/python3 scripts/bench_reference.py --onnx-import [--arch resnet18,mobilenet_v2] [--batch 1,8]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

# torch's Linear and matmul run on the system BLAS (OpenBLAS, which
# scripts/setup-interop.sh installs). OpenBLAS 0.3.21 takes CPUs it does not
# recognise, as VMs report them, for a Prescott and runs SSE3 kernels (4x
# slower): name the core from the CPU flags before torch loads it, as
# `setup-interop.sh --env` does; its subprocesses inherit the setting.
if "OPENBLAS_CORETYPE" not in os.environ:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read().split()
        if "avx512f" in flags:
            os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
        elif "avx2" in flags:
            os.environ["OPENBLAS_CORETYPE"] = "Haswell"
    except OSError:
        pass

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
  const c0 = process.cpuUsage();
  for (let i = 0; i < +iters; i++) {
    const t0 = process.hrtime.bigint();
    await s.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const c = process.cpuUsage(c0);
  console.log(JSON.stringify({times: times, cpu_ms: (c.user + c.system) / 1000 / Math.max(+iters, 1)}));
})().catch(e => { console.error(String(e)); process.exit(1); });
"""


TORCH_TRAIN_SCRIPT = r"""
import json, sys, time
import torch, torchvision
arch, weights, batch, size, iters, warmup, threads, strategy = sys.argv[1:]
batch, size, iters, warmup = int(batch), int(size), int(iters), int(warmup)
torch.set_num_threads(int(threads))
model = getattr(torchvision.models, arch)()
model.load_state_dict(torch.load(weights))
model.train()
params = list(model.parameters())
if strategy == "head":
    head = HEAD
    # Frozen as finetune --strategy head (nn.Freeze) freezes: no gradients
    # and evaluation mode (BatchNorm on its running statistics) for all but
    # the classifier.
    model.requires_grad_(False)
    model.eval()
    model.get_submodule(head.rstrip(".")).train()
    params = [p for n, p in model.named_parameters() if n.startswith(head)]
    for p in params:
        p.requires_grad_(True)
opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
g = torch.Generator().manual_seed(0)
x = torch.randn(batch, 3, size, size, generator=g)
classes = model.state_dict()[CLASSIFIER].shape[0]
labels = torch.tensor([i * 7 % classes for i in range(batch)])
loss_fn = torch.nn.CrossEntropyLoss()
def step():
    opt.zero_grad(set_to_none=True)
    loss_fn(model(x), labels).backward()
    opt.step()
for _ in range(warmup):
    step()
ts = []
c0 = time.process_time()
for _ in range(iters):
    t0 = time.perf_counter()
    step()
    ts.append((time.perf_counter() - t0) * 1000)
cpu = (time.process_time() - c0) * 1000 / iters
rss = 0.0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        rss = int(line.split()[1]) / 1024
print(json.dumps({"times_ms": ts, "peak_rss_mib": rss, "cpu_ms": cpu}))
"""

def train_main(a, ckpts, tmp):
    """Training rows: torch and each ckpt binary take turns, each round a fresh process.

    ckpts is a list of (label, path); with several (--baseline), every row is
    repeated per binary, all timed in the same rounds.
    """
    per_round = max(1, a.iters // a.rounds)
    print(f"training steps, {a.threads} threads; {a.rounds} rounds of {a.warmup} warm-up and {per_round} timed steps each, "
          "taking turns; median ms, peak RSS MiB, mean CPU ms per step (every thread's; torch's counts OpenMP's spinning)", file=sys.stderr)
    print(f"{'arch':<16} {'batch':>5} {'strategy':>8} {'ckpt':>9} {'torch':>9} {'ckpt':>9} {'ckpt/torch':>11} {'torch MiB':>10} {'ckpt MiB':>9} {'torch cpu':>10} {'ckpt cpu':>9} {'rounds ckpt/torch':>24}")
    rows = []
    for arch in a.arch.split(","):
        torch.manual_seed(0)
        model = getattr(torchvision.models, arch)()
        size = 299 if arch == "inception_v3" else 224
        weights = os.path.join(tmp, arch + ".pt")
        torch.save(model.state_dict(), weights)
        # The classifier is the last Linear layer, as models.Spec.Classifier names it.
        cls = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1] + ".weight"
        script = os.path.join(tmp, "torch_train.py")
        with open(script, "w") as f:
            f.write(TORCH_TRAIN_SCRIPT.replace("HEAD", repr(cls[:-len("weight")])).replace("CLASSIFIER", repr(cls)))
        for batch in [int(b) for b in a.batch.split(",")]:
            for strategy in a.strategy.split(","):
                ts_torch, rss_torch, cpu_torch = [], 0.0, []
                ts_ckpt = {l: [] for l, _ in ckpts}
                rss_ckpt = {l: 0.0 for l, _ in ckpts}
                gogc = {l: None for l, _ in ckpts}  # the GC target the steps ran with (older builds do not say)
                cpu_ckpt = {l: [] for l, _ in ckpts}
                per = {l: [] for l, _ in ckpts}
                for _ in range(a.rounds):
                    r = subprocess.run([sys.executable, script, arch, weights, str(batch), str(size), str(per_round),
                                        str(a.warmup), str(a.threads), strategy], capture_output=True, text=True, check=True)
                    jt = json.loads(r.stdout)
                    ts_torch += jt["times_ms"]
                    rss_torch = max(rss_torch, jt["peak_rss_mib"])
                    cpu_torch.append(jt["cpu_ms"])
                    for label, ckpt in ckpts:
                        r = subprocess.run([ckpt, "bench", "--train", "--strategy", strategy, "--arch", arch, "--weights", weights,
                                            "--batch", str(batch), "--size", str(size), "--iters", str(per_round),
                                            "--warmup", str(a.warmup), "--threads", str(a.threads), "--json"],
                                           capture_output=True, text=True, env=dict(os.environ, GOMAXPROCS=str(a.threads)))
                        if r.returncode != 0:
                            print(f"ckpt ({label}) bench --train {arch}: {r.stderr.strip()}", file=sys.stderr)
                            continue
                        jc = json.loads(r.stdout)
                        ts_ckpt[label] += jc["times_ms"]
                        rss_ckpt[label] = max(rss_ckpt[label], jc["peak_rss_mib"])
                        gogc[label] = jc.get("gogc")
                        if "cpu_ms" in jc:  # older builds do not report it
                            cpu_ckpt[label].append(jc["cpu_ms"])
                        per[label].append(median(jc["times_ms"]) / median(jt["times_ms"]))
                t_torch = median(ts_torch)
                for label, _ in ckpts:
                    t_ckpt = median(ts_ckpt[label]) if ts_ckpt[label] else None
                    ratio = f"{t_ckpt / t_torch:.2f}x" if t_ckpt else "-"
                    spread = " ".join(f"{p:.2f}" for p in per[label])
                    ck = f"{t_ckpt:9.1f}" if t_ckpt else f"{'-':>9}"
                    c_torch = statistics.mean(cpu_torch)
                    c_ckpt = statistics.mean(cpu_ckpt[label]) if cpu_ckpt[label] else None
                    cc = f"{c_ckpt:9.0f}" if c_ckpt else f"{'-':>9}"
                    print(f"{arch:<16} {batch:>5} {strategy:>8} {label:>9} {t_torch:9.1f} {ck} {ratio:>11} {rss_torch:10.0f} {rss_ckpt[label]:9.0f} {c_torch:10.0f} {cc} {spread:>24}", flush=True)
                    rows.append({"arch": arch, "batch": batch, "mode": "train", "strategy": strategy, "ckpt": label,
                                 "torch_ms": t_torch, "ckpt_ms": t_ckpt, "torch_peak_rss_mib": rss_torch,
                                 "ckpt_peak_rss_mib": rss_ckpt[label], "torch_cpu_ms": c_torch, "ckpt_cpu_ms": c_ckpt,
                                 "ckpt_gogc": gogc[label], "round_ratios": per[label]})
    return rows


def ckpt_bench(ckpt, args, batch, size, iters, warmup, threads):
    """The times_ms of one `ckpt bench ARGS` run, or the error's first line."""
    r = subprocess.run([ckpt, "bench"] + args + ["--batch", str(batch), "--size", str(size), "--iters", str(iters),
                        "--warmup", str(warmup), "--threads", str(threads), "--json"],
                       capture_output=True, text=True, env=dict(os.environ, GOMAXPROCS=str(threads)))
    if r.returncode != 0:
        return None, r.stderr.strip()[:300]
    return json.loads(r.stdout)["times_ms"], None


def onnx_import_main(a, ckpt, tmp):
    """The --onnx-import rows: an imported export (and its BatchNorm-preserving twin) against the native
    model on the same weights, both in ckpt, taking turns."""
    print(f"{a.threads} threads; {a.rounds} rounds of {a.warmup} warm-up and {max(1, a.iters // a.rounds)} timed runs each, "
          "taking turns; median ms", file=sys.stderr)
    print(f"{'arch':<16} {'batch':>5} {'native':>9} {'graph':>9} {'graph-bn':>9} {'graph/native':>13} {'graph-bn/native':>16}")
    rows = []
    for arch in a.arch.split(","):
        torch.manual_seed(0)
        model = getattr(torchvision.models, arch)().eval()
        size = 299 if arch == "inception_v3" else 224
        weights = os.path.join(tmp, arch + ".pt")
        torch.save(model.state_dict(), weights)
        x = torch.randn(1, 3, size, size)
        kw = dict(opset_version=13, input_names=["input"], output_names=["output"],
                  dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
        folded, kept = os.path.join(tmp, arch + ".onnx"), os.path.join(tmp, arch + "_bn.onnx")
        torch.onnx.export(model, x, folded, **kw)
        torch.onnx.export(model, x, kept, training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False, **kw)
        runs = [("native", ["--arch", arch, "--weights", weights]), ("graph", ["--weights", folded]),
                ("graph-bn", ["--weights", kept])]
        for batch in [int(b) for b in a.batch.split(",")]:
            per_round = max(1, a.iters // a.rounds)
            ts = {name: [] for name, _ in runs}
            failed = set()
            for _ in range(a.rounds):
                for name, args in runs:
                    if name in failed:
                        continue
                    t, err = ckpt_bench(ckpt, args, batch, size, per_round, a.warmup, a.threads)
                    if t is None:
                        failed.add(name)
                        print(f"ckpt bench {' '.join(args)}: {err}", file=sys.stderr)
                    else:
                        ts[name] += t
            med = {name: (median(v) if v else None) for name, v in ts.items()}

            def fmt(v):
                return f"{v:9.1f}" if v is not None else f"{'-':>9}"

            def ratio(p, q):
                return f"{p / q:.2f}x" if p is not None and q else "-"
            print(f"{arch:<16} {batch:>5} {fmt(med['native'])} {fmt(med['graph'])} {fmt(med['graph-bn'])} "
                  f"{ratio(med['graph'], med['native']):>13} {ratio(med['graph-bn'], med['native']):>16}", flush=True)
            rows.append({"arch": arch, "batch": batch, "native_ms": med["native"], "graph_ms": med["graph"],
                         "graph_bn_ms": med["graph-bn"]})
    return rows


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
    ap.add_argument("--train", action="store_true", help="time training steps against PyTorch instead of forward passes")
    ap.add_argument("--strategy", default="full,head", help="with --train: full, head, or full,head (both, the default)")
    ap.add_argument("--ckpt", help="a ckpt binary to time instead of building ./cmd/ckpt")
    ap.add_argument("--no-torch", default="", metavar="ARCHS",
                    help="architectures (comma-separated, or 'all') whose forward passes PyTorch does not time: "
                         "PyTorch 1.13 takes seconds per image on vit_b_16 and swin_t on some CPUs; they are still "
                         "built and exported by it, and timed in ONNX Runtime and ckpt")
    ap.add_argument("--baseline", help="another ckpt binary, timed in the same rounds (with --train: rows labelled 'base'; "
                    "forward passes: 'base' and 'ckpt/base' columns)")
    ap.add_argument("--onnx-import", action="store_true",
                    help="time ckpt on an imported torch.onnx export against ckpt's native --arch model on the same weights")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tmp = tempfile.mkdtemp(prefix="ckpt-bench-")
    ckpt = os.path.join(tmp, "ckpt")
    if a.ckpt:
        ckpt = os.path.abspath(a.ckpt)
    else:
        subprocess.run(["go", "build", "-o", ckpt, "./cmd/ckpt"], cwd=ROOT, check=True)
    if a.train:
        if a.arch == DEFAULT_ARCHS:
            a.arch = "resnet18,resnet50,mobilenet_v2,efficientnet_b0,convnext_tiny"
        if a.batch == "1,8":
            a.batch = "8"
        ckpts = [("ckpt", ckpt)] + ([("base", os.path.abspath(a.baseline))] if a.baseline else [])
        rows = train_main(a, ckpts, tmp)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"threads": a.threads, "iters": a.iters, "mode": "train", "rows": rows}, f, indent=1)
        return
    if a.onnx_import:
        if a.arch == DEFAULT_ARCHS:
            a.arch = "resnet18,mobilenet_v2"
        rows = onnx_import_main(a, ckpt, tmp)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"threads": a.threads, "iters": a.iters, "mode": "onnx-import", "rows": rows}, f, indent=1)
        return
    known = set(subprocess.run([ckpt, "bench", "--list"], capture_output=True, text=True, check=True).stdout.split())
    ort_js = os.path.join(tmp, "ort_bench.js")
    with open(ort_js, "w") as f:
        f.write(ORT_SCRIPT)
    rows = []
    print(f"{a.threads} threads; {a.rounds} rounds of {a.warmup} warm-up and {max(1, a.iters // a.rounds)} timed runs each, taking turns; median ms", file=sys.stderr)
    header = f"{'arch':<16} {'batch':>5} {'torch':>9} {'ORT':>9} {'ckpt':>9} {'ckpt/torch':>11} {'ckpt/ORT':>9}"
    base = os.path.abspath(a.baseline) if a.baseline else None
    if base:
        header += f" {'base':>9} {'ckpt/base':>10}"
    # Process CPU time per pass (every thread's), the mean over rounds: on a
    # loaded machine it moves less than the wall time.
    header += f" {'ORT cpu':>9} {'ckpt cpu':>9} {'cpu ckpt/ORT':>13}"
    if base:
        header += f" {'base cpu':>9} {'cpu ckpt/base':>14}"
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
            ts_torch, ts_ort, ts_ckpt, ts_base = [], [], [], []
            cpu = {"ort": [], "ckpt": [], "base": []}
            ort_ok, ckpt_ok = True, arch in known
            skip_torch = a.no_torch == "all" or arch in a.no_torch.split(",")
            for _ in range(a.rounds):
                if not skip_torch:
                    ts_torch += time_torch(model, x, per_round, a.warmup)
                if ort_ok:
                    r = subprocess.run(["node", ort_js, onnx_path, str(batch), str(size), str(per_round), str(a.warmup), str(a.threads)],
                                       capture_output=True, text=True, env=ort_env())
                    if r.returncode == 0:
                        jo = json.loads(r.stdout)
                        ts_ort += jo["times"]
                        cpu["ort"].append(jo["cpu_ms"])
                    else:
                        ort_ok = False
                        print(f"onnxruntime {arch}: {r.stderr.strip()[:200]}", file=sys.stderr)
                for binary, ts, key in [(ckpt, ts_ckpt, "ckpt")] + ([(base, ts_base, "base")] if base else []):
                    if not ckpt_ok:
                        break
                    r = subprocess.run([binary, "bench", "--arch", arch, "--weights", weights, "--batch", str(batch),
                                        "--size", str(size), "--iters", str(per_round), "--warmup", str(a.warmup),
                                        "--threads", str(a.threads), "--json"],
                                       capture_output=True, text=True, env=dict(os.environ, GOMAXPROCS=str(a.threads)))
                    if r.returncode == 0:
                        jc = json.loads(r.stdout)
                        ts += jc["times_ms"]
                        if "cpu_ms" in jc:  # older builds do not report it
                            cpu[key].append(jc["cpu_ms"])
                    else:
                        ckpt_ok = False
                        print(f"{binary} bench {arch}: {r.stderr.strip()}", file=sys.stderr)
            t_torch = median(ts_torch) if ts_torch else None
            t_ort = median(ts_ort) if ts_ort else None
            t_ckpt = median(ts_ckpt) if ts_ckpt else None

            def fmt(v):
                return f"{v:9.1f}" if v is not None else f"{'-':>9}"

            def ratio(p, q):
                return f"{p / q:.2f}x" if p is not None and q else "-"
            line = f"{arch:<16} {batch:>5} {fmt(t_torch)} {fmt(t_ort)} {fmt(t_ckpt)} {ratio(t_ckpt, t_torch):>11} {ratio(t_ckpt, t_ort):>9}"
            row = {"arch": arch, "batch": batch, "torch_ms": t_torch, "ort_ms": t_ort, "ckpt_ms": t_ckpt}
            if base:
                t_base = median(ts_base) if ts_base else None
                line += f" {fmt(t_base)} {ratio(t_ckpt, t_base):>10}"
                row["base_ms"] = t_base
            c = {k: statistics.mean(v) if v else None for k, v in cpu.items()}
            line += f" {fmt(c['ort'])} {fmt(c['ckpt'])} {ratio(c['ckpt'], c['ort']):>13}"
            row.update({"ort_cpu_ms": c["ort"], "ckpt_cpu_ms": c["ckpt"]})
            if base:
                line += f" {fmt(c['base'])} {ratio(c['ckpt'], c['base']):>14}"
                row["base_cpu_ms"] = c["base"]
            print(line, flush=True)
            rows.append(row)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"threads": a.threads, "iters": a.iters, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
