#!/usr/bin/python3
"""The malformed and malicious corpus for package pickle (run with /usr/bin/python3).

  pickle_malicious.py [--out DIR]

Writes DIR (default testdata/malicious) and DIR/expect.json, which lists for
each file the text its error must contain ("ok" files must load: they hold
inputs that crash gopickle v0.3.0 but are valid pickles). Kinds:

  payload_*        __reduce__ payloads calling os.system, eval, exec,
                   subprocess.Popen, runpy._run_code and a getattr chain, in
                   every pickle protocol 0-5, as a raw pickle, inside a torch
                   zip archive's data.pkl, as the legacy format's object pickle
                   and as its storage-key pickle (every pickle is checked)
  inst_*, obj_*    protocol 0/1 INST and OBJ on dangerous and on plain classes
  crash_*          gopickle v0.3.0 crash classes: opcode 0xff, zero-length
                   LONG1/LONG4, huge FRAME, odd DICT/SETITEMS, BINBYTES8 and
                   BINUNICODE with huge lengths, unset memo GET, empty stack
  deep_*           nesting (MARKs, lists, a list that contains itself)
  view_*           tensors outside their storage, negative and huge shapes and
                   strides, storages larger than their entries
  zip_*            zip bombs, lying sizes, compressed storages, duplicate
                   entries, entries outside the archive prefix
  trunc_*          truncated zip, legacy and tar files
  legacy_*, tar_*  inconsistent legacy and tar layouts

Hand-written opcode sequences follow the pickle protocol as Lib/pickletools.py
documents it.
"""

import argparse
import collections
import io
import json
import os
import pickle
import pickletools
import runpy
import struct
import subprocess
import tarfile
import warnings
import zipfile

import torch

MAGIC = 0x1950a86a20f9469cfc6c


class Reduce:
    """Pickles as func(*args) through REDUCE."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args

    def __call__(self, *args):
        raise RuntimeError("never called")


def payloads():
    return {
        "os_system": Reduce(os.system, "echo pwned"),
        "eval": Reduce(eval, "__import__('os').system('echo pwned')"),
        "exec": Reduce(exec, "import os; os.system('echo pwned')"),
        "subprocess": Reduce(subprocess.Popen, ["echo", "pwned"]),
        "runpy": Reduce(runpy._run_code, "import os", {}),
        "getattr_chain": Reduce(Reduce(getattr, Reduce(__import__, "os"), "system"), "echo pwned"),
    }


def first_global(data):
    """The first global a pickle names, as module.name (GLOBAL or STACK_GLOBAL)."""
    strings = []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("GLOBAL", "INST"):
            mod, name = arg.split(" ", 1)
            return mod + "." + name
        if op.name == "STACK_GLOBAL":
            return strings[-2] + "." + strings[-1]
        if isinstance(arg, str):
            strings.append(arg)
    raise ValueError("no global")


def zip_archive(data_pkl, storages=None, prefix="archive", extra=None, method=zipfile.ZIP_STORED):
    """A torch-like zip archive around a data.pkl."""
    buf = io.BytesIO()
    def info(name):
        zi = zipfile.ZipInfo(name)
        zi.compress_type = method
        return zi
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(info(prefix + "/data.pkl"), data_pkl)
        for k, b in (storages or {}).items():
            z.writestr(info(prefix + "/data/" + k), b)
        z.writestr(zipfile.ZipInfo(prefix + "/version"), b"3\n")
        for name, b in (extra or []):
            z.writestr(zipfile.ZipInfo(name), b)
    return buf.getvalue()


def legacy(obj_pkl, keys_pkl=None, tail=b""):
    """The legacy stream with a given object pickle (and storage-key pickle)."""
    out = pickle.dumps(MAGIC, protocol=2) + pickle.dumps(1001, protocol=2)
    out += pickle.dumps({"protocol_version": 1001, "little_endian": True,
                         "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2)
    return out + obj_pkl + (keys_pkl if keys_pkl is not None else pickle.dumps([], protocol=2)) + tail


class FakeStorage:
    def __init__(self, key, numel, stype=torch.FloatStorage):
        self.key, self.numel, self.stype = key, numel, stype


def tensor_pickle(obj, legacy_ids=False, protocol=2):
    """Pickles obj where FakeStorage becomes a torch storage persistent id."""
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=protocol)

    def pid(x):
        if isinstance(x, FakeStorage):
            if legacy_ids:
                return ("storage", x.stype, x.key, "cpu", x.numel, None)
            return ("storage", x.stype, x.key, "cpu", x.numel)
        return None
    p.persistent_id = pid
    p.dump(obj)
    return buf.getvalue()


def rebuild(storage, offset, size, stride):
    return Reduce(torch._utils._rebuild_tensor_v2, storage, offset, tuple(size), tuple(stride),
                  False, collections.OrderedDict())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "malicious"))
    out = ap.parse_args().out
    warnings.simplefilter("ignore")  # zipfile warns about the duplicate entry on purpose
    os.makedirs(out, exist_ok=True)
    expect = []

    def put(name, data, err):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        expect.append({"file": name, "error": err})

    # Payloads in every protocol and every pickle position.
    for pname, obj in payloads().items():
        for proto in range(6):
            data = pickle.dumps(obj, protocol=proto)
            want = 'forbidden global "%s"' % first_global(data)
            put(f"payload_{pname}_p{proto}.pkl", data, want)
            if proto == 2:
                put(f"payload_{pname}_zip.pt", zip_archive(data), want)
                put(f"payload_{pname}_legacy_object.pt", legacy(data), want)
                put(f"payload_{pname}_legacy_keys.pt", legacy(pickle.dumps({}, protocol=2), data), want)
    put("payload_stack_global_computed.pkl",
        b"\x80\x04" + b"\x8c\x05posix\x94" + b"\x8c\x06system\x94" + b"\x8c\x01x\x85" + b"\x93.",
        "STACK_GLOBAL of names that are not string constants")
    put("payload_newline_global.pkl", b"\x80\x04\x8c\x09os\nsystem\x8c\x01x\x93.", 'forbidden global "os\\nsystem.x"')
    put("zip_newline_prefix.pt", zip_archive(pickle.dumps(payloads()["os_system"], protocol=2), prefix="bad\nprefix"),
        'forbidden global "posix.system" (in "bad\\nprefix/data.pkl")')
    put("payload_dunder.pkl", b"\x80\x02ctorch\n__builtins__\n.", 'forbidden global "torch.__builtins__"')
    put("payload_numpy_reduce.pkl", b"\x80\x02cnumpy\nload\nX\x06\x00\x00\x00/etc/x\x85R.",
        'forbidden global "numpy.load"')
    put("numpy_reconstruct_other_class.pkl", b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nc__main__\nX\nK\x00\x85X\x01\x00\x00\x00b\x87R.",
        "only numpy.ndarray can be reconstructed")
    put("payload_storage_type_os.pt",
        zip_archive(b"\x80\x02(X\x07\x00\x00\x00storagecposix\nsystem\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQ."),
        'forbidden global "posix.system"')

    # INST / OBJ.
    put("inst_os_system.pkl", b"(S'echo pwned'\nios\nsystem\n.", 'forbidden global "os.system"')
    put("obj_os_system.pkl", b"(cposix\nsystem\nS'echo pwned'\no.", 'forbidden global "posix.system"')
    put("inst_plain_class.pkl", b"(i__main__\nNet\n.", 'forbidden global "__main__.Net" (INST')
    put("obj_plain_class.pkl", b"(c__main__\nNet\no.", 'forbidden global "__main__.Net" (OBJ')
    put("reduce_plain_class.pkl", b"\x80\x02c__main__\nNet\n)R.", 'forbidden global "__main__.Net" (REDUCE')
    put("newobj_of_value.pkl", b"\x80\x02K\x01)\x81.", "NEWOBJ of a value that is not a class")

    # gopickle v0.3.0 crash classes and other malformed opcode streams.
    put("crash_opcode_ff.pkl", b"\x80\x02\xff.", "invalid opcode 0xff")
    put("crash_huge_frame.pkl", b"\x80\x04\x95" + struct.pack("<Q", 1 << 62) + b"N.", "FRAME of")
    put("crash_odd_dict.pkl", b"\x80\x02(K\x01d.", "DICT of an odd number")
    put("crash_odd_setitems.pkl", b"\x80\x02}(K\x01u.", "SETITEMS of an odd number")
    put("crash_binbytes8_huge.pkl", b"\x80\x04\x8e" + struct.pack("<Q", 1 << 62) + b".", "argument of")
    put("crash_binunicode8_huge.pkl", b"\x80\x04\x8d" + struct.pack("<Q", (1 << 64) - 1) + b".", "argument of")
    put("crash_binunicode_4g.pkl", b"\x80\x02X\xff\xff\xff\xff.", "argument of")
    put("crash_bytearray8_huge.pkl", b"\x80\x05\x96" + struct.pack("<Q", 1 << 40) + b".", "argument of")
    put("crash_long4_huge.pkl", b"\x80\x02\x8b\xff\xff\xff\x7f.", "LONG4")
    put("crash_get_unset.pkl", b"\x80\x02h\x05.", "GET of unset memo entry 5")
    put("crash_empty_stop.pkl", b"\x80\x02.", "STOP needs 1 stack items")
    put("crash_pop_empty.pkl", b"\x80\x020.", "POP without MARK")
    put("crash_append_empty.pkl", b"\x80\x02Na.", "APPEND needs 2")
    put("crash_no_stop.pkl", b"\x80\x02N", "no STOP opcode")
    put("crash_proto9.pkl", b"\x80\x09N.", "unsupported pickle protocol 9")
    put("crash_ext1.pkl", b"\x80\x02\x82\x01.", "extension registry")
    put("crash_next_buffer.pkl", b"\x80\x05\x97.", "NEXT_BUFFER")
    put("crash_frame_overlap.pkl", b"\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00N\x95\x01\x00\x00\x00\x00\x00\x00\x00.", "FRAME inside an unfinished frame")
    put("crash_frame_straddle.pkl", b"\x80\x04\x95\x02\x00\x00\x00\x00\x00\x00\x00NX\x01\x00\x00\x00a.", "crosses the end of its frame")
    put("crash_bytes_key.pkl", b"\x80\x03}C\x01kK\x01s.", "bytes key")
    put("crash_persid_without_storages.pkl", b"\x80\x02X\x01\x00\x00\x000Q.", "persistent id in a pickle that has none")
    put("crash_long_digits.pkl", b"L" + b"9" * 5000 + b"L\n.", "exceeds limit")
    # Valid pickles that crash gopickle v0.3.0: must load.
    for name, pkl in [("crash_long1_zero_ok.pt", b"\x80\x02}X\x01\x00\x00\x00x\x8a\x00s."),
                      ("crash_long4_zero_ok.pt", b"\x80\x02}X\x01\x00\x00\x00x\x8b\x00\x00\x00\x00s.")]:
        with open(os.path.join(out, name), "wb") as f:
            f.write(zip_archive(pkl))
        expect.append({"file": name, "error": "", "meta": {"x": 0}})

    # Nesting.
    put("deep_marks.pkl", b"\x80\x02" + b"(" * 1000 + b"N.", "MARKs nest deeper than")
    put("deep_lists.pkl", b"\x80\x02" + b"]" * 2000 + b"a" * 1999 + b".", "nesting deeper than")
    put("deep_self_list.pkl", b"\x80\x02]q\x00h\x00a.", "contains itself")
    # 199 levels of [x, x]: linear in the file, 2**199 paths to walk.
    laughs = b"]q\x00" + b"0(h\x00h\x00lq\x00" * 199
    put("deep_billion_laughs.pt", zip_archive(b"\x80\x02}X\x01\x00\x00\x00x" + laughs + b"s."),
        "too large to list")

    # Tensor views against their storages (zip format).
    def view_case(name, size, stride, offset=0, numel=4, entry=16, err=""):
        pkl = tensor_pickle({"t": rebuild(FakeStorage("0", numel), offset, size, stride)})
        put(name, zip_archive(pkl, {"0": b"\0" * entry}), err)
    view_case("view_out_of_bounds.pt", (10, 10), (10, 1), err="needs 400 bytes")
    view_case("view_negative_shape.pt", (-1, 4), (4, 1), err="negative size")
    view_case("view_negative_stride.pt", (2, 2), (-2, 1), err="negative stride")
    view_case("view_huge_shape.pt", (1 << 40, 1 << 40), (1, 1), err="too many elements")
    view_case("view_huge_stride.pt", (2, 2), (1 << 62, 1), err="overflows")
    view_case("view_offset.pt", (2,), (1,), offset=4, err="needs 24 bytes")
    view_case("view_negative_offset.pt", (2,), (1,), offset=-1, err="negative storage offset")
    view_case("view_storage_bigger_than_entry.pt", (4,), (1,), numel=1000, err="entry has 16")
    view_case("view_negative_numel.pt", (4,), (1,), numel=-5, err="invalid storage size")
    put("view_missing_entry.pt", zip_archive(tensor_pickle({"t": rebuild(FakeStorage("7", 4), 0, (4,), (1,))}), {"0": b"\0" * 16}),
        'no entry "archive/data/7"')
    put("view_key_traversal.pt", zip_archive(tensor_pickle({"t": rebuild(FakeStorage("../0", 4), 0, (4,), (1,))}), {"0": b"\0" * 16}),
        "invalid storage key")
    put("view_legacy_out_of_bounds.pt",
        legacy(tensor_pickle({"t": rebuild(FakeStorage("1", 4), 0, (3, 3), (3, 1))}, legacy_ids=True),
               pickle.dumps(["1"], protocol=2), struct.pack("<q", 4) + b"\0" * 16),
        "needs 36 bytes")

    # Zip container attacks.
    small = pickle.dumps({"a": 1}, protocol=2)
    bomb = b"\x80\x02]" + b"N" * (20 << 20)
    put("zip_bomb_pickle.pt", zip_archive(bomb + b".", method=zipfile.ZIP_DEFLATED), "ratio over")
    tp = tensor_pickle({"t": rebuild(FakeStorage("0", 4), 0, (4,), (1,))})
    put("zip_compressed_storage.pt", zip_archive(tp, {"0": b"\0" * 16}, method=zipfile.ZIP_DEFLATED), "is compressed")
    put("zip_duplicate_entry.pt", zip_archive(small, extra=[("archive/data.pkl", small)]), "duplicate entry")
    put("zip_outside_prefix.pt", zip_archive(small, extra=[("other/data.pkl", small)]), "outside the archive prefix")
    put("zip_traversal.pt", zip_archive(small, extra=[("../evil", b"x")]), "outside the archive prefix")
    put("zip_no_prefix.pt", _flat_zip(small), "not under an archive prefix")
    put("zip_no_data_pkl.pt", _named_zip([("archive/version", b"3")]), 'no entry "archive/data.pkl"')
    lying = bytearray(zip_archive(small))
    # Shrink data.pkl's declared size in the central directory (offset 24 of
    # its central header) so the real bytes run past it.
    cd = lying.find(b"PK\x01\x02")
    struct.pack_into("<I", lying, cd + 24, 3)
    struct.pack_into("<I", lying, cd + 20, 3)
    # Read as torch reads it: the declared 3 bytes, a truncated pickle.
    put("zip_lying_size.pt", bytes(lying), "no STOP opcode")
    put("zip_big_declared.pt", _declared_size_zip(small, 1 << 31), "exceeds limit")

    # Truncations.
    good = zip_archive(tp, {"0": b"\1" * 16})
    put("trunc_zip_half.pt", good[: len(good) // 2], "zip")
    put("trunc_zip_tail.pt", good[:-10], "zip")
    lg = legacy(tensor_pickle({"t": rebuild(FakeStorage("1", 4), 0, (4,), (1,))}, legacy_ids=True),
                pickle.dumps(["1"], protocol=2), struct.pack("<q", 4) + b"\0" * 16)
    put("trunc_legacy_storage.pt", lg[:-5], "runs past the end of the file")
    put("trunc_legacy_pickle.pt", lg[:40], "truncated")
    put("trunc_legacy_header.pt", lg[: len(lg) - 20], "truncated file")
    put("trunc_empty.pt", b"", "empty file")

    # Inconsistent legacy layouts.
    put("legacy_bad_magic.pt", pickle.dumps(12345, protocol=2) + lg[len(pickle.dumps(MAGIC, protocol=2)):], "legacy magic number")
    put("legacy_unknown_key.pt",
        legacy(tensor_pickle({"t": rebuild(FakeStorage("1", 4), 0, (4,), (1,))}, legacy_ids=True),
               pickle.dumps(["9"], protocol=2), struct.pack("<q", 4) + b"\0" * 16), "unknown or repeated")
    put("legacy_numel_mismatch.pt",
        legacy(tensor_pickle({"t": rebuild(FakeStorage("1", 4), 0, (4,), (1,))}, legacy_ids=True),
               pickle.dumps(["1"], protocol=2), struct.pack("<q", 1 << 60) + b"\0" * 16), "its pickle says 4")

    # Tar layouts.
    put("tar_missing_member.pt", _tar([("sys_info", pickle.dumps({}, protocol=2))]), 'no member "pickle"')
    put("tar_huge_ndim.pt", _tar([
        ("pickle", b"\x80\x02X\x01\x00\x00\x005Q."),
        ("tensors", pickle.dumps(1, protocol=2) + pickle.dumps((5, 1, None), protocol=2) + struct.pack("<i", 1 << 30) + b"\0" * 4),
        ("storages", pickle.dumps(1, protocol=2) + pickle.dumps((1, "cpu", torch.FloatStorage), protocol=2)
         + struct.pack("<q", 1) + b"\0" * 4 + pickle.dumps([], protocol=2))]), "dimensions")
    put("tar_payload_storages.pt", _tar([
        ("pickle", b"\x80\x02N."), ("tensors", pickle.dumps(0, protocol=2)),
        ("storages", pickle.dumps(payloads()["os_system"], protocol=2))]), 'forbidden global "posix.system"')
    put("tar_payload_pickle.pt", _tar([
        ("pickle", pickle.dumps(payloads()["eval"], protocol=2)), ("tensors", pickle.dumps(0, protocol=2)),
        ("storages", pickle.dumps(0, protocol=2) + pickle.dumps([], protocol=2))]), 'forbidden global "__builtin__.eval"')
    put("tar_storage_past_member.pt", _tar([
        ("pickle", b"\x80\x02N."), ("tensors", pickle.dumps(0, protocol=2)),
        ("storages", pickle.dumps(1, protocol=2) + pickle.dumps((1, "cpu", torch.FloatStorage), protocol=2)
         + struct.pack("<q", 1 << 40))]), "runs past its member")

    with open(os.path.join(out, "expect.json"), "w") as f:
        json.dump(expect, f, indent=1)
        f.write("\n")


def _flat_zip(data):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("data.pkl"), data)
    return buf.getvalue()


def _named_zip(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, b in entries:
            z.writestr(zipfile.ZipInfo(n), b)
    return buf.getvalue()


def _declared_size_zip(data, size):
    """A zip whose data.pkl central directory entry declares size bytes."""
    b = bytearray(_named_zip([("archive/data.pkl", data)]))
    cd = b.find(b"PK\x01\x02")
    struct.pack_into("<I", b, cd + 24, size)
    return bytes(b)


def _tar(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


if __name__ == "__main__":
    main()
