#!/usr/bin/python3
"""Fixtures and interop checks for package formats (run with /usr/bin/python3,
Debian's python3-torch 1.13).

  formats_fixtures.py gen DIR
      Writes the committed fixtures in testdata/formats/ (seeded, deterministic):
        dtypes.safetensors   one tensor per dtype, written by write_safetensors
                             below (an independent writer following the
                             safetensors spec and the Rust crate's layout:
                             tensors sorted by dtype then name, header padded
                             to 8 bytes with spaces, __metadata__ first)
        dtypes.json          torch's own view of those tensors: dtype, shape,
                             sha256 of the contiguous little-endian bytes
        views.pt             torch.save of a state_dict with shared storages,
                             a transposed view, an offset slice, an expanded
                             (stride 0) tensor, a 0-d and an empty tensor
        views.json           torch's view of views.pt (as dtypes.json)
        train.pt             a training checkpoint {"epoch", "arch",
                             "state_dict", "best_acc1"}
        train.json           its tensors (named state_dict.KEY) and metadata
      Malformed safetensors seeds for the fuzz test go in bad_*.safetensors.

  formats_fixtures.py describe-pt PATH
      torch.load(PATH, weights_only=True) and print JSON: for each tensor the
      dtype, shape, stride, storage offset, sha256 and a storage group id
      (tensors sharing storage get the same id). For a zip archive, "record"
      is ckpt's metadata record (ARCHIVE/extra/ckpt_metadata.json) as
      Python's zipfile and json read it: [key, value] pairs in file order,
      or null without one.

  formats_fixtures.py describe-safetensors PATH
      Read PATH with the small reader below (json + torch.frombuffer, no
      safetensors package) and print the same JSON plus "metadata".

  formats_fixtures.py describe PATH...
      A JSON list with describe-safetensors (for *.safetensors) or
      describe-pt (otherwise) of every PATH, in one process. *.onnx files
      must pass onnx.checker.check_model; their initializers are described
      (via onnx.numpy_helper).

  formats_fixtures.py resnet18 OUT.pt OUT.safetensors SEED
      Save the state_dict of torchvision resnet18 built under torch seed SEED,
      with a non-trivial BatchNorm state, to OUT.pt (torch.save, zip format)
      and OUT.safetensors (write_safetensors below).

  formats_fixtures.py state-dict ARCH OUT.pt SEED
      torch.save the state_dict of torchvision's ARCH (e.g. resnet50) built
      under torch seed SEED (benchmark input).

  formats_fixtures.py load-strict ARCH REF PATH...
      For each PATH: torch.load(PATH, weights_only=True), then
      ARCH().load_state_dict(..., strict=True), then compare every tensor
      with REF (a torch.save'd state_dict) with torch.equal (key order is
      checked by the caller with describe). Prints "ok" or fails.
"""
import collections
import hashlib
import json
import os
import struct
import sys

import torch

DTYPE_CODES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16",
    torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32",
    torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}
CODE_DTYPES = {v: k for k, v in DTYPE_CODES.items()}
# The Rust crate orders its Dtype enum like this; it sorts by it descending.
RUST_ORDER = ["BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32",
              "F32", "F64", "I64", "U64"]
NAMES = {
    torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
    torch.bfloat16: "bfloat16", torch.int8: "int8", torch.int16: "int16",
    torch.int32: "int32", torch.int64: "int64", torch.uint8: "uint8",
    torch.bool: "bool",
}


def raw_bytes(t):
    """Contiguous little-endian bytes of t in its own dtype."""
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def describe(t, groups):
    key = t.storage().data_ptr() if t.numel() else None
    if key is not None and key not in groups:
        groups[key] = len(groups)
    return {
        "dtype": NAMES[t.dtype],
        "shape": list(t.shape),
        "stride": list(t.stride()),
        "offset": t.storage_offset(),
        "sha256": hashlib.sha256(raw_bytes(t)).hexdigest(),
        "storage": groups.get(key, -1),
    }


def flatten(obj, prefix, out, meta):
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, f"{prefix}.{k}" if prefix else str(k), out, meta)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}.{i}" if prefix else str(i), out, meta)
    else:
        meta[prefix] = obj


def describe_obj(obj):
    tensors, meta = collections.OrderedDict(), collections.OrderedDict()
    flatten(obj, "", tensors, meta)
    groups = {}
    return {
        "tensors": [dict(name=k, **describe(v, groups)) for k, v in tensors.items()],
        "metadata": meta,
    }


def write_safetensors(path, tensors, metadata=None):
    items = sorted(tensors.items(),
                   key=lambda kv: (-RUST_ORDER.index(DTYPE_CODES[kv[1].dtype]), kv[0]))
    header = collections.OrderedDict()
    if metadata:
        header["__metadata__"] = metadata
    off, blobs = 0, []
    for name, t in items:
        b = raw_bytes(t)
        header[name] = {"dtype": DTYPE_CODES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"),
                        object_pairs_hook=collections.OrderedDict)
    meta = header.pop("__metadata__", None) or {}
    buf = data[8 + n:]
    out = collections.OrderedDict()
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        a, b = info["data_offsets"]
        dt = CODE_DTYPES[info["dtype"]]
        if b > a:
            t = torch.frombuffer(bytearray(buf[a:b]), dtype=dt)
        else:
            t = torch.empty(0, dtype=dt)
        out[name] = t.reshape(info["shape"])
    assert max([0] + [i["data_offsets"][1] for i in header.values()]) == len(buf), "trailing bytes"
    return out, meta


def gen(d):
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(20261127)

    # Every dtype, including edge values half precision must keep exactly.
    t = {}
    t["f32"] = torch.randn(3, 4, generator=g)
    t["f64"] = torch.randn(2, 3, generator=g, dtype=torch.float64)
    t["f16"] = torch.tensor([0.0, -0.0, 1.0, 65504.0, 6e-8, float("inf"), float("-inf"), 3.14159],
                            dtype=torch.float16)
    t["bf16"] = torch.randn(2, 2, 2, generator=g).to(torch.bfloat16)
    t["i8"] = torch.tensor([-128, -1, 0, 127], dtype=torch.int8)
    t["i16"] = torch.tensor([-32768, 32767, 5], dtype=torch.int16)
    t["i32"] = torch.randint(-2**31, 2**31 - 1, (5,), generator=g, dtype=torch.int32)
    t["i64"] = torch.tensor([-2**63, 2**63 - 1, 42], dtype=torch.int64)
    t["u8"] = torch.arange(0, 256, 37, dtype=torch.uint8)
    t["bool"] = torch.tensor([[True, False], [False, True]])
    t["scalar"] = torch.tensor(2.5)
    t["empty"] = torch.zeros(0, 3)
    meta = {"format": "pt", "note": "fixture \u00e9\"quoted\""}
    write_safetensors(os.path.join(d, "dtypes.safetensors"), t, meta)
    loaded, lmeta = read_safetensors(os.path.join(d, "dtypes.safetensors"))
    desc = describe_obj(loaded)
    desc["metadata"] = lmeta
    dump(os.path.join(d, "dtypes.json"), desc)

    # Views and shared storage, as a model's state_dict can have them.
    base = torch.randn(4, 6, generator=g)
    sd = collections.OrderedDict()
    sd["base"] = base
    sd["tied"] = base                      # same tensor twice (tied weights)
    sd["row"] = base[1]                    # offset slice, shares storage
    sd["transposed"] = base.t()            # non-contiguous view
    sd["expanded"] = torch.randn(3, 1, generator=g).expand(3, 5)
    sd["scalar"] = torch.tensor(7, dtype=torch.int64)
    sd["empty"] = torch.zeros(2, 0)
    sd["half"] = torch.randn(5, generator=g).half()
    sd["flag"] = torch.tensor([True, False, True])
    torch.save(sd, os.path.join(d, "views.pt"))
    dump(os.path.join(d, "views.json"), describe_obj(torch.load(os.path.join(d, "views.pt"), weights_only=True)))

    # A training checkpoint with non-tensor metadata. torch 1.13's
    # weights_only unpickler lacks BINFLOAT, so this one (ours, trusted) is
    # described with a full load.
    torch.manual_seed(7)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.Linear(4, 2))
    ck = {"epoch": 7, "arch": "tiny", "state_dict": model.state_dict(), "best_acc1": 0.625}
    torch.save(ck, os.path.join(d, "train.pt"))
    dump(os.path.join(d, "train.json"), describe_obj(torch.load(os.path.join(d, "train.pt"))))

    # Casts: values that overflow, underflow, round and stay exact, in
    # float32 and float64, with torch's results and counts per target.
    vals = [0.0, -0.0, 1.0, -2.5, 65504.0, 65520.0, 1e5, -1e6, 3e38, 1e-8, -1e-9, 6e-8, 2.9e-8,
            1e-40, 1e-30, 0.1, 1.0 / 3.0, float("inf"), float("-inf"), float("nan")]
    src = {"c32": torch.tensor(vals, dtype=torch.float32).reshape(4, 5),
           "c64": torch.tensor(vals + [1e300, -1e-300], dtype=torch.float64),
           "c16": torch.tensor(vals, dtype=torch.float16),
           "cbf": torch.tensor(vals, dtype=torch.float32).to(torch.bfloat16),
           "idx": torch.arange(6, dtype=torch.int64)}
    write_safetensors(os.path.join(d, "cast.safetensors"), src)
    casts = {}
    for target in (torch.float16, torch.bfloat16, torch.float32):
        out = {}
        over = under = 0
        for name, t in src.items():
            if not t.is_floating_point() or t.dtype == target:
                out[name] = hashlib.sha256(raw_bytes(t)).hexdigest()
                continue
            c = t.to(target)
            out[name] = hashlib.sha256(raw_bytes(c)).hexdigest()
            fin = torch.isfinite(t)
            over += int((torch.isinf(c) & fin).sum())
            under += int(((c == 0) & (t != 0) & ~torch.isnan(t)).sum())
        casts[NAMES[target]] = {"sha256": out, "overflow": over, "underflow": under}
    dump(os.path.join(d, "cast.json"), casts)

    # Malformed seeds for the fuzz test (the Go test has its own table).
    good = open(os.path.join(d, "dtypes.safetensors"), "rb").read()
    with open(os.path.join(d, "bad_truncated.safetensors"), "wb") as f:
        f.write(good[:-3])
    with open(os.path.join(d, "bad_trailing.safetensors"), "wb") as f:
        f.write(good + b"\0")


def dump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.write("\n")


def resnet18(out, out_st, seed):
    import torchvision
    torch.manual_seed(int(seed))
    m = torchvision.models.resnet18()
    # Give BatchNorm buffers non-default values, as a trained model has.
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_()
                mod.running_var.uniform_(0.5, 2.0)
                mod.num_batches_tracked.fill_(int(seed) % 1000)
    torch.save(m.state_dict(), out)
    write_safetensors(out_st, m.state_dict())


def load_strict(arch, path, ref):
    import torchvision
    print(path, file=sys.stderr)
    sd = torch.load(path, weights_only=True)
    assert isinstance(sd, collections.OrderedDict), type(sd)
    m = getattr(torchvision.models, arch)()
    m.load_state_dict(sd, strict=True)
    want = torch.load(ref, weights_only=True)
    assert sorted(sd.keys()) == sorted(want.keys()), "keys differ"
    for k, v in want.items():
        assert sd[k].dtype == v.dtype and sd[k].shape == v.shape, k
        assert torch.equal(sd[k], v), k


def read_record(path):
    """The [key, value] pairs of ckpt's metadata record of the zip archive
    at path, in file order, read with zipfile and json; None without one."""
    import zipfile
    with zipfile.ZipFile(path) as z:
        name = z.namelist()[0].split("/")[0] + "/extra/ckpt_metadata.json"
        if name not in z.namelist():
            return None
        pairs = json.loads(z.read(name), object_pairs_hook=list)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in pairs), pairs
    return pairs


def describe_path(path):
    if path.endswith(".onnx"):
        import onnx
        from onnx import numpy_helper
        m = onnx.load(path)
        onnx.checker.check_model(m)
        tensors = collections.OrderedDict(
            (i.name, torch.from_numpy(numpy_helper.to_array(i).copy())) for i in m.graph.initializer)
        d = describe_obj(tensors)
        d["metadata"] = {p.key: p.value for p in m.metadata_props}
        return d
    if path.endswith(".safetensors"):
        tensors, meta = read_safetensors(path)
        d = describe_obj(tensors)
        d["metadata"] = meta
        return d
    obj = torch.load(path, weights_only=True)
    d = describe_obj(obj)
    d["type"] = type(obj).__module__ + "." + type(obj).__name__
    d["metadata"] = {k: repr(v) for k, v in d["metadata"].items()}
    import zipfile
    if zipfile.is_zipfile(path):
        d["record"] = read_record(path)
    return d


def main():
    cmd = sys.argv[1]
    if cmd == "gen":
        gen(sys.argv[2])
    elif cmd in ("describe-pt", "describe-safetensors"):
        print(json.dumps(describe_path(sys.argv[2])))
    elif cmd == "describe":
        print(json.dumps([describe_path(p) for p in sys.argv[2:]]))
    elif cmd == "resnet18":
        resnet18(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "state-dict":
        import torchvision
        torch.manual_seed(int(sys.argv[4]))
        torch.save(getattr(torchvision.models, sys.argv[2])().state_dict(), sys.argv[3])
    elif cmd == "load-strict":
        for p in sys.argv[4:]:
            load_strict(sys.argv[2], p, sys.argv[3])
        print("ok")
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
