#!/usr/bin/python3
"""Fixtures and interop checks for ckpt diff and ckpt convert (run with
/usr/bin/python3, Debian's python3-torch 1.13, and onnx 1.12).

  convert_fixtures.py gen DIR
      Writes the committed fixtures (seeded, deterministic, a few KB):
        meta_a.pt, meta_b.pt   two training checkpoints with the same
                               state_dict and optimizer tensors that differ
                               only in non-tensor values: epoch (3, 4), arch
                               ("smallnet", "smallnet_v2") and the
                               optimizer's lr (0.1, 0.01)
        aliased.onnx, aliased.pt    onnx-aliased below, seed 0, opset 17

  convert_fixtures.py train-checkpoint OUT.pt SEED
      A resumable training checkpoint of a small CNN trained two steps with
      Adam and a StepLR: {"epoch", "arch", "model", "optimizer", "scheduler",
      "best_acc1", "history" (a list of tuples), "config" (nested dicts and
      lists of numbers, strings, bools and None)}.

  convert_fixtures.py weights-checkpoint OUT.pt SEED
      A checkpoint torch.load(weights_only=True) reads (torch 1.13's
      weights_only unpickler has no BINFLOAT, so no Python floats): {"epoch",
      "arch", "model" (a state_dict), "steps" (a list), "flags" (a tuple of
      bool and None), "big" (an int beyond 32 bits), "shape" (a tuple)}.

  convert_fixtures.py same-structure ORIG.pt CONVERTED.pt
      torch.load both files (plainly, and CONVERTED also with
      weights_only=True) and compare them recursively: the same types
      (dict, OrderedDict, list, tuple, int, float, str, bool, None, tensor),
      keys in the same order, equal values, tensors of equal dtype, shape,
      requires_grad and bytes, and tensors shared in ORIG shared in
      CONVERTED. Prints "ok (weights_only too)", "ok (weights_only refused
      for the original too)" or the first difference.

  convert_fixtures.py onnx-aliased OUT.onnx OUT.pt SEED OPSET
      Export, in eval mode with training=TrainingMode.PRESERVE and
      do_constant_folding=False, a small model whose parameters repeat
      values (a Linear copied from another, two freshly initialized
      LayerNorms, a buffer equal to a bias): torch merges equal tensors into
      one initializer and keeps the other names as Identity nodes. OUT.pt is
      the model's state_dict (torch.save).

  convert_fixtures.py load-strict REF.pt FILE.safetensors
      Read FILE.safetensors with the small reader below (json and
      torch.frombuffer), load it with load_state_dict(strict=True) into the
      onnx-aliased model and print "ok" when every tensor equals REF.pt's.

  convert_fixtures.py resume ORIG.pt CONVERTED.pt
      Resume training from each file (model.load_state_dict strict,
      optimizer.load_state_dict, scheduler.load_state_dict), take two more
      steps, and print "ok" when both runs give identical parameters.
"""
import collections
import hashlib
import os
import sys

import torch


def tiny_net():
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 2))


def meta_checkpoint(epoch, arch, lr):
    torch.manual_seed(0)
    m = tiny_net()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m(torch.randn(4, 3)).square().mean().backward()
    opt.step()
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = lr
    return {"epoch": epoch, "arch": arch, "state_dict": m.state_dict(), "optimizer": sd}


def gen(out):
    os.makedirs(out, exist_ok=True)
    torch.save(meta_checkpoint(3, "smallnet", 0.1), os.path.join(out, "meta_a.pt"))
    torch.save(meta_checkpoint(4, "smallnet_v2", 0.01), os.path.join(out, "meta_b.pt"))
    onnx_aliased(os.path.join(out, "aliased.onnx"), os.path.join(out, "aliased.pt"), 0, 17)


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(x.mean((2, 3)))


def training(seed):
    torch.manual_seed(seed)
    m = SmallCNN()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    return m, opt, sched


def step(m, opt, sched, seed):
    g = torch.Generator().manual_seed(seed)
    m.train()
    x = torch.randn(2, 3, 6, 6, generator=g)
    y = torch.randint(0, 3, (2,), generator=g)
    opt.zero_grad()
    torch.nn.functional.cross_entropy(m(x), y).backward()
    opt.step()
    sched.step()


def train_checkpoint(out, seed):
    m, opt, sched = training(seed)
    for i in range(2):
        step(m, opt, sched, seed + i)
    ck = {
        "epoch": 2,
        "arch": "smallcnn",
        "model": m.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "best_acc1": 0.375,
        "history": [(1, 0.25, "warmup"), (2, 0.375, None)],
        "config": {"lr": 1e-3, "betas": [0.9, 0.99], "amp": False, "resume": None,
                   "data": {"root": "/data/imagenet", "workers": 8, "sizes": (224, 256)}},
        "big": 1 << 40,
        "neg": -7,
    }
    torch.save(ck, out)


def weights_checkpoint(out, seed):
    torch.manual_seed(seed)
    m = SmallCNN()
    torch.save({"epoch": 7, "arch": "smallcnn", "model": m.state_dict(), "steps": [1, 300, 70000],
                "flags": (True, None, False), "big": -(1 << 40), "shape": (2, 3)}, out)


class Repeats(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4, 4)
        self.b = torch.nn.Linear(4, 4)
        self.ln1 = torch.nn.LayerNorm(4)
        self.ln2 = torch.nn.LayerNorm(4)
        self.c = torch.nn.Linear(4, 3)
        self.register_buffer("shift", torch.zeros(3))
        with torch.no_grad():
            self.b.weight.copy_(self.a.weight)
            self.b.bias.copy_(self.a.bias)
            self.shift.copy_(self.c.bias)

    def forward(self, x):
        return self.c(self.ln2(self.b(self.ln1(self.a(x))))) + self.shift


def onnx_aliased(out_onnx, out_pt, seed, opset):
    torch.manual_seed(seed)
    m = Repeats().eval()
    torch.onnx.export(m, torch.randn(2, 4), out_onnx, opset_version=opset,
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    torch.save(m.state_dict(), out_pt)


def read_safetensors(path):
    import json, struct
    dtypes = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
              "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
              "BOOL": torch.bool}
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = collections.OrderedDict()
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        t = torch.frombuffer(bytearray(body[b:e]), dtype=dtypes[v["dtype"]]) if e > b else torch.empty(0, dtype=dtypes[v["dtype"]])
        out[k] = t.reshape(v["shape"])
    return out


def load_strict(ref, path):
    sd = read_safetensors(path)
    m = Repeats()
    try:
        m.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        return "load_state_dict: " + " ".join(str(e).split())
    want = torch.load(ref)
    bad = [k for k, v in m.state_dict().items() if not torch.equal(v, want[k])]
    return f"values differ: {bad}" if bad else "ok"


def describe_tensor(t):
    b = t.detach().contiguous().cpu().numpy().tobytes()
    return (str(t.dtype), tuple(t.shape), t.requires_grad, hashlib.sha256(b).hexdigest())


def compare(a, b, path, shared_a, shared_b):
    ta, tb = type(a), type(b)
    if ta is not tb:
        return f"{path}: type {ta.__name__} vs {tb.__name__}"
    if isinstance(a, torch.Tensor):
        if describe_tensor(a) != describe_tensor(b):
            return f"{path}: tensor {describe_tensor(a)} vs {describe_tensor(b)}"
        ka, kb = a.storage().data_ptr(), b.storage().data_ptr()
        shared_a.setdefault(ka, []).append(path)
        shared_b.setdefault(kb, []).append(path)
        return None
    if isinstance(a, dict):
        if list(a.keys()) != list(b.keys()):
            return f"{path}: keys {list(a.keys())} vs {list(b.keys())}"
        for k in a:
            d = compare(a[k], b[k], f"{path}.{k}", shared_a, shared_b)
            if d:
                return d
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"{path}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = compare(x, y, f"{path}.{i}", shared_a, shared_b)
            if d:
                return d
        return None
    if isinstance(a, float) and a != a and b != b:
        return None
    if a != b:
        return f"{path}: {a!r} vs {b!r}"
    return None


def same_structure(orig, conv):
    a = torch.load(orig)
    how = "ok (weights_only too)"
    for weights_only in (False, True):
        try:
            b = torch.load(conv, weights_only=weights_only)
        except Exception as e:  # torch 1.13's weights_only unpickler lacks BINFLOAT
            if weights_only:
                try:
                    torch.load(orig, weights_only=True)
                except Exception:
                    how = "ok (weights_only refused for the original too)"
                    continue
            return f"torch.load(weights_only={weights_only}): {e}"
        sa, sb = {}, {}
        d = compare(a, b, "root", sa, sb)
        if d:
            return f"weights_only={weights_only}: {d}"
        if sorted(sorted(v) for v in sa.values()) != sorted(sorted(v) for v in sb.values()):
            return f"weights_only={weights_only}: storage sharing differs: {sorted(sa.values())} vs {sorted(sb.values())}"
    return how


def resume(path, seed):
    ck = torch.load(path)
    m, opt, sched = training(seed + 100)
    m.load_state_dict(ck["model"], strict=True)
    opt.load_state_dict(ck["optimizer"])
    sched.load_state_dict(ck["scheduler"])
    for i in range(2):
        step(m, opt, sched, seed + 10 + i)
    return m.state_dict(), opt.param_groups[0]["lr"]


def main():
    cmd = sys.argv[1]
    if cmd == "gen":
        gen(sys.argv[2])
    elif cmd == "train-checkpoint":
        train_checkpoint(sys.argv[2], int(sys.argv[3]))
    elif cmd == "weights-checkpoint":
        weights_checkpoint(sys.argv[2], int(sys.argv[3]))
    elif cmd == "same-structure":
        print(same_structure(sys.argv[2], sys.argv[3]))
    elif cmd == "onnx-aliased":
        onnx_aliased(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "load-strict":
        print(load_strict(sys.argv[2], sys.argv[3]))
    elif cmd == "resume":
        (a, lra), (b, lrb) = resume(sys.argv[2], 0), resume(sys.argv[3], 0)
        bad = [k for k in a if not torch.equal(a[k], b[k])]
        if bad or lra != lrb:
            print(f"resumed runs differ: {bad}, lr {lra} vs {lrb}")
        else:
            print("ok")
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
