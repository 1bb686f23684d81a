#!/usr/bin/python3
"""Fixtures for package pickle, written by real PyTorch (run with /usr/bin/python3,
Debian's python3-torch 1.13).

  pickle_fixtures.py [--out DIR] [--seed N]
  pickle_fixtures.py --torchvision --out DIR   (for the interop test: whole
                                         torchvision models, resnet18, mobilenet_v3_small
                                         in the legacy format, a small VisionTransformer holding
                                         functools.partial attributes)
  pickle_fixtures.py --resnet50 PATH    (for the benchmarks: torchvision
                                         resnet50's state_dict, 102 MB, zip format)

Writes into DIR (default testdata/pickle next to this script's parent) one
checkpoint of every kind package pickle reads, and DIR/manifest.json: for each
file what torch itself reports after loading it back (torch.load, or
torch.jit.load for TorchScript): tensor names, dtypes, shapes and the sha256 of
t.contiguous() as little-endian bytes of its own dtype (bfloat16 through
.view(torch.int16), bool as one byte), plus the non-tensor leaves and, for whole
models, the class names.

Names follow package pickle's rule: dict keys and list indices joined by ".";
inside a module, the state_dict key.

Files:
  zip_state_dict.pt     torch.save(state_dict) of a small CNN (zip, prefix "archive")
  zip_renamed.pt        the same archive rewritten with the prefix "renamed-prefix.v2"
  zip_bigendian.pt      the same archive with every storage byte-swapped and a
                        "byteorder" record saying "big" (the record torch >= 2.1
                        writes on big-endian hosts); torch 1.13 ignores the record,
                        so its truth is zip_state_dict.pt's
  zip_proto4.pt         a training checkpoint saved with pickle_protocol=4
  legacy_state_dict.pt  torch.save(..., _use_new_zipfile_serialization=False)
  legacy_views.pt       views and shared storages, legacy format
  tar_state_dict.pt     the torch 0.1.1 tar layout, built here (torch 1.13 can no
                        longer write it) and read back by torch.load
  torchscript.pt        torch.jit.save of a scripted small CNN with buffers
  model_zip.pt          torch.save(model), zip format
  model_legacy.pt       torch.save(model), legacy format
  model_proto1.pt       torch.save(model, pickle_protocol=1): objects rebuilt through
                        copy_reg._reconstructor instead of NEWOBJ
  zip_proto5.pt         the training checkpoint with pickle_protocol=5
  legacy_py2_ordereddict.pt  a state_dict pickled as Python 2 pickles OrderedDict:
                        OrderedDict([[key, tensor], ...]) through REDUCE
  legacy_storage_views.pt  a legacy file whose persistent ids carry storage views
                        (view_metadata, written by torch <= 0.3), built here and read
                        back by torch.load
  checkpoint.pt         {"epoch", "state_dict", "optimizer" (SGD momentum state),
                        "arch", "best", "flags": [True, None], "args" (an
                        argparse.Namespace), "stats" (a namedtuple holding a tensor),
                        "numpy" (numpy scalars of several dtypes, one big-endian),
                        "arrays" (numpy arrays: C and Fortran order, big-endian, 0-d, empty)}
  views.pt              transposed, channels_last, stride-0 expand, offset slice,
                        two tensors sharing a storage, 0-d and zero-size tensors
  dtypes.pt             one tensor of every dtype package tensor supports
"""

import argparse
import collections
import functools
import hashlib
import io
import json
import os
import pickle
import struct
import sys
import tarfile
import zipfile

import numpy as np
import torch
import torch.nn as nn


class SmallCNN(nn.Module):
    """A small CNN with parameters, BatchNorm buffers and a nested Sequential."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.features = nn.Sequential(nn.Conv2d(4, 4, 3, stride=2, bias=False), nn.ReLU())
        self.fc = nn.Linear(4, 3)
        self.register_buffer("scale", torch.ones(3))
        # A functools.partial attribute, as torchvision models keep norm layers.
        self.norm_layer = functools.partial(nn.BatchNorm2d, eps=1e-3)

    def forward(self, x):
        x = self.features(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(x.mean(dim=(2, 3))) * self.scale


def tensor_bytes(t):
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    elif t.dtype == torch.bool:
        t = t.to(torch.uint8)
    return t.numpy().tobytes()


DTYPES = {
    torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
    torch.bfloat16: "bfloat16", torch.int8: "int8", torch.int16: "int16",
    torch.int32: "int32", torch.int64: "int64", torch.uint8: "uint8", torch.bool: "bool",
}


def describe_tensor(name, t):
    return {"name": name, "dtype": DTYPES[t.dtype], "shape": list(t.shape),
            "sha256": hashlib.sha256(tensor_bytes(t)).hexdigest()}


def flatten(obj, path, tensors, meta):
    """Walks a loaded object as package pickle names it."""
    def join(k):
        return k if path == "" else path + "." + k

    if isinstance(obj, torch.Tensor):
        tensors.append(describe_tensor(path, obj))
    elif isinstance(obj, nn.Module):
        for k, v in obj.state_dict().items():
            tensors.append(describe_tensor(join(k), v))
    elif isinstance(obj, np.ndarray):
        native = obj.astype(obj.dtype.newbyteorder("="), order="C")  # keeps 0-d arrays 0-d
        tensors.append(describe_tensor(path, torch.from_numpy(native)))
    elif isinstance(obj, np.generic):
        meta.append({"path": path, "value": obj.item()})
    elif isinstance(obj, argparse.Namespace):
        flatten(vars(obj), path, tensors, meta)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, join(str(k)), tensors, meta)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, join(str(i)), tensors, meta)
    elif obj is None or isinstance(obj, (bool, int, float, str)):
        meta.append({"path": path, "value": obj})
    else:
        raise TypeError(f"unexpected {type(obj)} at {path}")


def module_classes(m):
    seen = []
    for sub in m.modules():
        name = type(sub).__module__ + "." + type(sub).__qualname__
        if name not in seen:
            seen.append(name)
    return seen


def module_tree(m, name, script=False):
    """The module tree as torch sees it: class, direct parameters and
    persistent buffers, children."""
    if script:
        cls = m._c._type().qualified_name()
        bufs = [k for k, _ in m.named_buffers(recurse=False)]
    else:
        cls = type(m).__module__ + "." + type(m).__qualname__
        bufs = [k for k, v in m._buffers.items()
                if v is not None and k not in m._non_persistent_buffers_set]
    return {"name": name, "class": cls,
            "params": [k for k, _ in m.named_parameters(recurse=False)],
            "buffers": bufs,
            "children": [module_tree(c, k, script) for k, c in m.named_children()]}


def report(path, fmt, obj, is_module=False):
    tensors, meta = [], []
    flatten(obj, "", tensors, meta)
    entry = {"file": os.path.basename(path), "format": fmt, "is_module": is_module,
             "tensors": tensors, "meta": meta}
    if isinstance(obj, nn.Module):
        entry["classes"] = module_classes(obj)
        entry["modules"] = module_tree(obj, "")
    return entry


Stats = collections.namedtuple("Stats", ["loss", "top1"])


def checkpoint(seed):
    torch.manual_seed(seed)
    m = SmallCNN()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m.train()
    loss = m(torch.randn(2, 3, 8, 8)).square().mean()
    loss.backward()
    opt.step()
    return {
        "epoch": 3,
        "state_dict": m.state_dict(),
        "optimizer": opt.state_dict(),
        "arch": "smallcnn",
        "best": 0.625 + seed / 1024,
        "flags": [True, None],
        "args": argparse.Namespace(lr=0.1, arch="smallcnn", epochs=90, resume=None),
        "stats": Stats(loss=loss.detach(), top1=0.5),
        "numpy": {"best": np.float64(0.75 + seed), "step": np.int64(42 + seed), "f32": np.float32(1.5),
                  "f16": np.float16(0.1), "flag": np.bool_(True), "u8": np.uint8(200), "i8": np.int8(-5),
                  "big_endian": np.array([2.5 + seed], dtype=">f8")[0]},
        "arrays": {"f32": np.arange(6, dtype="f4").reshape(2, 3) + seed,
                   "fortran": np.asfortranarray(np.arange(12, dtype="f8").reshape(3, 4)),
                   "big_endian": np.arange(5, dtype=">i4") - seed,
                   "f16": np.linspace(-1, 1, 7).astype("f2"),
                   "bool": np.array([[True, False], [False, True]]),
                   "u8": np.arange(250, 256, dtype="u1"),
                   "zero_d": np.array(3.25), "empty": np.zeros((0, 4), dtype="i8")},
    }


def views(seed):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(4, 6, generator=g)
    img = torch.randn(2, 3, 4, 5, generator=g)
    shared = torch.arange(12, dtype=torch.float32) + seed
    return {
        "transposed": base.t(),
        "channels_last": img.contiguous(memory_format=torch.channels_last),
        "expanded": torch.randn(3, 1, generator=g).expand(3, 4),
        "slice": shared[5:9],
        "shared_a": shared.view(3, 4),
        "shared_b": shared[2:],
        "scalar": torch.tensor(seed + 1.5),
        "empty": torch.zeros(0, 3),
        "int_view": torch.arange(20, dtype=torch.int64).view(4, 5)[:, 1::2],
    }


def dtypes(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, generator=g) * 10
    return {
        "float32": x.clone(),
        "float64": x.double(),
        "float16": x.half(),
        "bfloat16": x.bfloat16(),
        "int8": x.to(torch.int8),
        "int16": (x * 100).to(torch.int16),
        "int32": (x * 1000).to(torch.int32),
        "int64": (x * 1e6).to(torch.int64),
        "uint8": x.abs().to(torch.uint8),
        "bool": x > 0,
    }


def rewrite_zip(src, dst, rename=None, swap=False):
    """Copies a torch zip archive, renaming its prefix and/or byte-swapping its storages."""
    zin = zipfile.ZipFile(src)
    names = zin.namelist()
    prefix = names[0].split("/")[0]
    data = zin.read(prefix + "/data.pkl")
    # element size of each storage key, from the persistent ids of data.pkl
    sizes = {}
    if swap:
        class U(pickle.Unpickler):
            def find_class(self, mod, name):
                return getattr(torch, name) if "Storage" in name else super().find_class(mod, name)

            def persistent_load(self, pid):
                st = pid[1](pid[4])
                sizes[pid[2]] = st.element_size()
                return st
        U(io.BytesIO(data)).load()
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for n in names:
            b = zin.read(n)
            rest = n[len(prefix) + 1:]
            if swap and rest.startswith("data/"):
                es = sizes[rest[5:]]
                b = b"".join(b[i:i + es][::-1] for i in range(0, len(b), es))
            zout.writestr(zipfile.ZipInfo((rename or prefix) + "/" + rest), b)
        if swap:
            zout.writestr(zipfile.ZipInfo((rename or prefix) + "/byteorder"), b"big")


class TarView:
    """A tensor of a tar file that views elements [offset, offset+numel) of
    base's storage through a storage view (the tar format's storage_views)."""

    def __init__(self, base, offset, numel, shape, stride):
        self.base, self.offset, self.numel, self.shape, self.stride = base, offset, numel, shape, stride


def write_tar(path, obj):
    """Writes obj in the torch 0.1.1 tar layout (see package pickle's legacy.go)."""
    tensors, storages, views = {}, {}, {}

    def key_of(x):
        return id(x) % (1 << 40)

    def persistent_id(x):
        if torch.is_tensor(x):
            tensors[key_of(x)] = x
            return str(key_of(x))
        if isinstance(x, TarView):
            views[key_of(x)] = x
            return str(key_of(x))
        return None

    pbuf = io.BytesIO()
    p = pickle.Pickler(pbuf, protocol=2)
    p.persistent_id = persistent_id
    p.dump(obj)

    tbuf = io.BytesIO()
    pickle.dump(len(tensors), tbuf, protocol=2)
    for key, t in tensors.items():
        st = t.storage()
        skey = st.data_ptr() % (1 << 40)  # views of one storage share it
        storages[skey] = st
        pickle.dump((key, skey, type(t)), tbuf, protocol=2)
        tbuf.write(struct.pack("<i", t.dim()) + b"\0\0\0\0")
        tbuf.write(struct.pack(f"<{t.dim()}q", *t.shape))
        tbuf.write(struct.pack(f"<{t.dim()}q", *t.stride()))
        tbuf.write(struct.pack("<q", t.storage_offset()))

    storage_views = []
    for key, v in views.items():
        st = v.base.storage()
        root = st.data_ptr() % (1 << 40)
        storages[root] = st
        vkey = key + 1
        storage_views.append((vkey, root, v.offset, v.numel))
        pickle.dump((key, vkey, type(v.base)), tbuf, protocol=2)
        tbuf.write(struct.pack("<i", len(v.shape)) + b"\0\0\0\0")
        tbuf.write(struct.pack(f"<{len(v.shape)}q", *v.shape))
        tbuf.write(struct.pack(f"<{len(v.shape)}q", *v.stride))
        tbuf.write(struct.pack("<q", 0))
    # the count pickled first must include the views' tensors
    tdata = tbuf.getvalue()
    first = pickle.dumps(len(tensors), protocol=2)
    tbuf = io.BytesIO(pickle.dumps(len(tensors) + len(views), protocol=2) + tdata[len(first):])

    sbuf = io.BytesIO()
    pickle.dump(len(storages), sbuf, protocol=2)
    for key, st in storages.items():
        pickle.dump((key, "cpu", getattr(torch, st.pickle_storage_type())), sbuf, protocol=2)
        t = torch.tensor([], dtype=st.dtype).set_(st)
        sbuf.write(struct.pack("<q", st.size()))
        sbuf.write(tensor_bytes(t))
    pickle.dump(storage_views, sbuf, protocol=2)

    sysbuf = io.BytesIO()
    pickle.dump({"protocol_version": 1000, "little_endian": True,
                 "type_sizes": {"short": 2, "int": 4, "long": 8}}, sysbuf, protocol=2)

    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, buf in [("sys_info", sysbuf), ("pickle", pbuf), ("tensors", tbuf), ("storages", sbuf)]:
            info = tarfile.TarInfo(name)
            info.size = len(buf.getvalue())
            buf.seek(0)
            tar.addfile(info, buf)


class _Reduce:
    """Pickles as func(*args) through REDUCE."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class _Storage:
    """Pickles as a legacy storage persistent id (see write_legacy_views)."""

    def __init__(self, key, numel, view=None):
        self.key, self.numel, self.view = key, numel, view


def write_legacy_views(path, seed):
    """A legacy file whose tensors use storage views (view_metadata), which
    torch 0.3 wrote and torch 1.13 still reads but no longer writes."""
    g = torch.Generator().manual_seed(seed)
    root = torch.randn(12, generator=g)

    def rebuild(st, offset, size, stride):
        return _Reduce(torch._utils._rebuild_tensor_v2, st, offset, size, stride, False,
                       collections.OrderedDict())
    obj = {
        "view_a": rebuild(_Storage("7", 12, ("8", 2, 6)), 1, (2, 2), (2, 1)),
        "view_b": rebuild(_Storage("7", 12, ("9", 6, 6)), 0, (3,), (2,)),
        "root": rebuild(_Storage("7", 12), 0, (12,), (1,)),
    }
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=2)
    p.persistent_id = lambda x: (("storage", torch.FloatStorage, x.key, "cpu", x.numel, x.view)
                                 if isinstance(x, _Storage) else None)
    p.dump(obj)
    out = pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2) + pickle.dumps(1001, protocol=2)
    out += pickle.dumps({"protocol_version": 1001, "little_endian": True,
                         "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2)
    out += buf.getvalue() + pickle.dumps(["7"], protocol=2)
    out += struct.pack("<q", 12) + tensor_bytes(root)
    with open(path, "wb") as f:
        f.write(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pickle"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resnet50")
    ap.add_argument("--torchvision", action="store_true",
                    help="write torchvision whole models (torch.save(model)) and their manifest instead")
    args = ap.parse_args()
    if args.resnet50:
        import torchvision
        torch.manual_seed(args.seed)
        torch.save(torchvision.models.resnet50().state_dict(), args.resnet50)
        return
    out = args.out
    os.makedirs(out, exist_ok=True)
    seed = args.seed
    P = lambda name: os.path.join(out, name)
    manifest = []

    if args.torchvision:
        import torchvision
        torch.manual_seed(seed)
        from torchvision.models.vision_transformer import VisionTransformer
        for name, legacy in [("resnet18", False), ("mobilenet_v3_small", True), ("vit", False)]:
            if name == "vit":
                m = VisionTransformer(image_size=32, patch_size=16, num_layers=2, num_heads=2,
                                      hidden_dim=8, mlp_dim=16, num_classes=10)
            else:
                m = getattr(torchvision.models, name)()
            f = name + ("_legacy" if legacy else "") + ".pt"
            torch.save(m, P(f), _use_new_zipfile_serialization=not legacy)
            manifest.append(report(P(f), "legacy" if legacy else "zip", torch.load(P(f)), is_module=True))
        with open(P("manifest.json"), "w") as f:
            json.dump({"torch": torch.__version__, "seed": seed, "files": manifest}, f, indent=1)
        return

    torch.manual_seed(seed)
    model = SmallCNN()
    with torch.no_grad():
        model.bn1.running_mean.uniform_(-1, 1)
        model.bn1.running_var.uniform_(0.5, 2)
        model.bn1.num_batches_tracked.fill_(7 + seed)
        model.scale.mul_(2)
    sd = model.state_dict()

    buf = io.BytesIO()
    torch.save(sd, buf)  # prefix "archive"
    with open(P("zip_state_dict.pt"), "wb") as f:
        f.write(buf.getvalue())
    manifest.append(report(P("zip_state_dict.pt"), "zip", torch.load(P("zip_state_dict.pt"))))

    rewrite_zip(P("zip_state_dict.pt"), P("zip_renamed.pt"), rename="renamed-prefix.v2")
    manifest.append(report(P("zip_renamed.pt"), "zip", torch.load(P("zip_renamed.pt"))))

    rewrite_zip(P("zip_state_dict.pt"), P("zip_bigendian.pt"), swap=True)
    # torch 1.13 ignores the byteorder record: the truth is the original's.
    e = report(P("zip_state_dict.pt"), "zip", torch.load(P("zip_state_dict.pt")))
    e["file"] = "zip_bigendian.pt"
    manifest.append(e)

    ck = checkpoint(seed)
    torch.save(ck, P("checkpoint.pt"))
    manifest.append(report(P("checkpoint.pt"), "zip", torch.load(P("checkpoint.pt"))))
    torch.save(ck, P("zip_proto4.pt"), pickle_protocol=4)
    manifest.append(report(P("zip_proto4.pt"), "zip", torch.load(P("zip_proto4.pt"))))

    torch.save(sd, P("legacy_state_dict.pt"), _use_new_zipfile_serialization=False)
    manifest.append(report(P("legacy_state_dict.pt"), "legacy", torch.load(P("legacy_state_dict.pt"))))

    v = views(seed)
    torch.save(v, P("views.pt"))
    manifest.append(report(P("views.pt"), "zip", torch.load(P("views.pt"))))
    torch.save(v, P("legacy_views.pt"), _use_new_zipfile_serialization=False)
    manifest.append(report(P("legacy_views.pt"), "legacy", torch.load(P("legacy_views.pt"))))

    torch.save(dtypes(seed), P("dtypes.pt"))
    manifest.append(report(P("dtypes.pt"), "zip", torch.load(P("dtypes.pt"))))

    write_tar(P("tar_state_dict.pt"), {"state_dict": sd, "epoch": 1, "views": {
        "t": v["transposed"], "s": v["slice"], "a": v["shared_a"],
        "storage_view": TarView(v["shared_a"], 3, 6, (2, 2), (3, 1))}})
    loaded = torch.load(P("tar_state_dict.pt"))  # proves torch still reads the layout
    manifest.append(report(P("tar_state_dict.pt"), "tar", loaded))

    # Python 2's OrderedDict pickles its items as a constructor argument.
    torch.save(_Reduce(collections.OrderedDict, [[k, t] for k, t in sd.items()]), P("legacy_py2_ordereddict.pt"),
               _use_new_zipfile_serialization=False)
    manifest.append(report(P("legacy_py2_ordereddict.pt"), "legacy", torch.load(P("legacy_py2_ordereddict.pt"))))

    write_legacy_views(P("legacy_storage_views.pt"), seed)
    manifest.append(report(P("legacy_storage_views.pt"), "legacy", torch.load(P("legacy_storage_views.pt"))))

    torch.save(ck, P("zip_proto5.pt"), pickle_protocol=5)
    manifest.append(report(P("zip_proto5.pt"), "zip", torch.load(P("zip_proto5.pt"))))

    torch.save(model, P("model_proto1.pt"), pickle_protocol=1)
    manifest.append(report(P("model_proto1.pt"), "zip", torch.load(P("model_proto1.pt")), is_module=True))

    torch.save(model, P("model_zip.pt"))
    manifest.append(report(P("model_zip.pt"), "zip", torch.load(P("model_zip.pt")), is_module=True))
    torch.save(model, P("model_legacy.pt"), _use_new_zipfile_serialization=False)
    manifest.append(report(P("model_legacy.pt"), "legacy", torch.load(P("model_legacy.pt")), is_module=True))

    scripted = torch.jit.script(model)
    torch.jit.save(scripted, P("torchscript.pt"))
    ts = torch.jit.load(P("torchscript.pt"))
    e = {"file": "torchscript.pt", "format": "torchscript", "is_module": False,
         "tensors": [describe_tensor(k, t) for k, t in ts.state_dict().items()], "meta": [],
         "modules": module_tree(ts, "", script=True)}
    manifest.append(e)

    with open(P("manifest.json"), "w") as f:
        json.dump({"torch": torch.__version__, "seed": seed, "files": manifest}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
