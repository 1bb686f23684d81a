#!/usr/bin/python3
"""The reader-divergence corpus: files that CPython's unpickler, torch.load and
a naive parser read differently (run with /usr/bin/python3).

  pickle_divergence.py [--out DIR]

Writes DIR/div_* (default testdata/malicious) and DIR/divergence.json, which
lists for each file its class, the text ckpt's reader error must contain (""
when the file must load), the findings `ckpt scan` must report (severity and
global or anomaly name), and what CPython and torch 1.13 do with it, recorded
here by running them with a find_class that resolves every global exactly as
CPython does (imports included) but hands back an inert stub for anything
outside torch and collections, so that no payload runs. Classes:

  number text     INT/LONG/FLOAT arguments with base prefixes, leading zeros,
                  NUL bytes, underscores, "-0" (the C unpickler's strtol)
  memo text       GET/PUT keys CPython reads with int(s, 10)
  frames          arguments that straddle a FRAME, FRAME inside a frame
  dotted names    attribute chains (protocol 4) and protocol 2 dotted names
  py2 names       fix_imports renames (commands -> subprocess)
  escapes         STRING and UNICODE arguments with escapes naming globals
  memo globals    STACK_GLOBAL fed from the memo
  broken pickles  a payload followed by garbage (CPython has run it by then)
  unhashable      dict keys and set members CPython cannot hash (lists,
                  tuples holding one)
  zip             members differing in case, upper-case members torch finds,
                  bad CRCs torch ignores, NUL and backslash names, encrypted
                  flags, overlapping members, two end records, bzip2, local
                  names differing from the central directory
  polyglots       a pickle followed by a zip archive
  tar             a tar header with a bad checksum over a pickle (torch reads
                  the pickle), a V7 tar without the ustar magic (torch reads
                  the tar)
  legacy, ts      payloads in the legacy sys_info pickle and in TorchScript's
                  constants.pkl
"""

import argparse
import io
import json
import os
import pickle
import struct
import sys
import tempfile
import types
import warnings
import zipfile
import zlib

import torch

MAGIC = 0x1950a86a20f9469cfc6c


class Stub:
    """What a non-torch global becomes while recording: calls are logged."""

    def __init__(self, name, log):
        self._name, self._log = name, log

    def __call__(self, *args, **kwargs):
        self._log.append("CALLED " + self._name)
        return Stub(self._name + "()", self._log)

    def __setstate__(self, state):
        pass

    def __reduce__(self):
        raise TypeError("stub")


def recorder(log):
    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            obj = super().find_class(module, name)  # CPython's own resolution
            mod = getattr(obj, "__module__", None) or "?"
            qual = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", "?")
            got = "%s.%s" % (mod, qual)
            log.append("global %s.%s%s" % (module, name, "" if got == module + "." + name else " -> " + got))
            if (mod.startswith("torch") or mod in ("collections", "copyreg")) and "os" not in got.split("."):
                return obj
            return Stub(got, log)
    return Recorder


def cpython(data):
    """What CPython's C unpickler reads: globals resolved, result or error."""
    log = []

    class Plain(recorder(log)):
        def persistent_load(self, pid):
            return None
    try:
        r = Plain(io.BytesIO(data)).load()
        log.append("result " + brief(r))
    except Exception as e:
        log.append("error %s: %s" % (type(e).__name__, str(e)[:120]))
    return "; ".join(log)


def python_unpickler(data):
    """What Python's pure unpickler does (it enforces frames)."""
    try:
        class P(pickle._Unpickler):
            def find_class(self, module, name):
                return "<%s.%s>" % (module, name)
        return "result " + brief(P(io.BytesIO(data)).load())
    except Exception as e:
        return "error %s: %s" % (type(e).__name__, str(e)[:120])


def torch_load(data):
    """What torch.load does, with the recording unpickler as pickle_module."""
    log = []
    mod = types.ModuleType("recording_pickle")
    mod.__dict__.update(pickle.__dict__)
    rec = recorder(log)
    mod.Unpickler = rec
    mod.load = lambda f, **kw: rec(f, **kw).load()
    # torch 1.13's load replaces any pickle_module by the module it imported
    # as "pickle" unless weights_only: swap that one while loading.
    real = torch.serialization.pickle
    torch.serialization.pickle = mod
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # From a path: torch 1.13's tar path fails on a BytesIO.
            with tempfile.NamedTemporaryFile(suffix=".pt") as tmp:
                tmp.write(data)
                tmp.flush()
                r = torch.load(tmp.name)
        log.append("result " + brief(r))
    except Exception as e:
        log.append("error %s: %s" % (type(e).__name__, str(e).splitlines()[0][:120] if str(e) else ""))
    finally:
        torch.serialization.pickle = real
    return "; ".join(log)


def brief(v):
    if isinstance(v, dict):
        return "dict(%s)" % ", ".join("%s=%s" % (k, brief(x)) for k, x in list(v.items())[:4])
    if isinstance(v, torch.Tensor):
        return "tensor%s" % list(v.shape)
    if isinstance(v, Stub):
        return "stub " + v._name
    return repr(v)[:60]


def clean_zip():
    buf = io.BytesIO()
    torch.save({"w": torch.arange(4.0)}, buf, _use_new_zipfile_serialization=True)
    return buf.getvalue()


def members(data):
    z = zipfile.ZipFile(io.BytesIO(data))
    return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def rezip(items, methods=None, comment=b""):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(buf, "w") as z:
            for name, b in items:
                zi = zipfile.ZipInfo(name)
                zi.compress_type = (methods or {}).get(name, zipfile.ZIP_STORED)
                z.writestr(zi, b)
            z.comment = comment
    return buf.getvalue()


def central(data):
    """(offset of the central record, name, local header offset) per member."""
    out, p = [], data.find(b"PK\x01\x02")
    while p >= 0:
        n, x, c = struct.unpack_from("<HHH", data, p + 28)
        off, = struct.unpack_from("<I", data, p + 42)
        out.append((p, data[p + 46:p + 46 + n], off))
        p = data.find(b"PK\x01\x02", p + 46 + n + x + c)
    return out


def payload(proto=2):
    """posix.system("echo pwned") through REDUCE."""
    mod = "posix" if os.name == "posix" else "nt"
    return b"\x80" + bytes([proto]) + b"c" + mod.encode() + b"\nsystem\nX\n\x00\x00\x00echo pwnedq\x00\x85R."


def legacy(obj_pkl, sys_info=None):
    out = pickle.dumps(MAGIC, protocol=2) + pickle.dumps(1001, protocol=2)
    out += sys_info if sys_info is not None else pickle.dumps(
        {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2)
    return out + obj_pkl + pickle.dumps([], protocol=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "malicious"))
    out = ap.parse_args().out
    os.makedirs(out, exist_ok=True)
    expect = []

    def put(name, cls, data, err, scan, torch_file=False):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        e = {"file": name, "class": cls, "error": err, "scan": [list(s) for s in scan]}
        if torch_file:
            e["torch"] = torch_load(data)
        else:
            e["cpython"] = cpython(data)
        expect.append(e)

    num = ("MEDIUM", "number-text")
    # Number text: what the C unpickler reads is recorded; ckpt refuses.
    for name, arg in [("int_octal", b"I010\n"), ("int_hex", b"I0x10\n"), ("int_nul", b"I1\x00zz\n"),
                      ("int_plus", b"I+5\n"), ("int_space", b"I 5\n"), ("int_underscore", b"I1_0\n"),
                      ("int_negzero", b"I-0\n"), ("long_hex", b"L0x10L\n"), ("long_underscore", b"L1_0\n"),
                      ("long_nul", b"L1\x00z\n"), ("float_nul", b"F1\x00z\n"), ("float_hex", b"F0x1p3\n")]:
        put("div_%s.pkl" % name, "number text", arg + b".", "is not a plain decimal", [num])
    # Memo keys as text.
    put("div_memo_leading_zero.pkl", "memo text", b"\x80\x02K\x05p01\n0g1\n.", "invalid index", [("MEDIUM", "memo-key-text")])
    put("div_memo_text_global.pkl", "memo text",
        b"\x80\x04\x8c\x05posixp1_0\n0\x8c\x06systemp 2\n0g10\ng+2\n\x93.", "invalid index",
        [("MEDIUM", "memo-key-text"), ("CRITICAL", "posix.system")])
    # Frames.
    body = b"\x8c\x05posix\x8c\x06system\x93."
    put("div_frame_straddle_global.pkl", "frames",
        b"\x80\x04\x95" + struct.pack("<Q", 3) + body, "crosses the end of its frame",
        [("MEDIUM", "frame-straddle"), ("CRITICAL", "posix.system")])
    expect[-1]["python"] = python_unpickler(b"\x80\x04\x95" + struct.pack("<Q", 3) + body)
    # No REDUCE in it: pickle.loads only resolves the global.
    expect[-1]["loads"] = "result " + brief(pickle.loads(b"\x80\x04\x95" + struct.pack("<Q", 3) + body))
    put("div_frame_nested.pkl", "frames",
        b"\x80\x04\x95" + struct.pack("<Q", 20) + b"\x95" + struct.pack("<Q", 2) + b"K\x01." + b"\x00" * 8,
        "FRAME inside an unfinished frame", [("MEDIUM", "frame-overlap")])
    # Dotted names.
    put("div_dotted_chain_p4.pkl", "dotted names",
        b"\x80\x04\x8c\x05torch\x8c\x17serialization.os.system\x93.", 'forbidden global "torch.serialization.os.system"',
        [("CRITICAL", "torch.serialization.os.system")])
    put("div_dotted_p2.pkl", "dotted names", b"\x80\x02cos\npath.join\n.", 'forbidden global "os.path.join"',
        [("CRITICAL", "os.path.join")])
    put("div_dotted_collections_p4.pkl", "dotted names",
        b"\x80\x04\x8c\x0bcollections\x8c\x14OrderedDict.fromkeys\x93.", 'forbidden global "collections.OrderedDict.fromkeys"',
        [("HIGH", "collections.OrderedDict.fromkeys")])
    # Python 2 names renamed by fix_imports.
    put("div_py2_commands_p2.pkl", "py2 names", b"\x80\x02ccommands\ngetoutput\n.",
        'forbidden global "commands.getoutput" (loaded as subprocess.getoutput)', [("CRITICAL", "subprocess.getoutput")])
    put("div_py2_commands_p3.pkl", "py2 names", b"\x80\x03ccommands\ngetoutput\n.",
        "which CPython cannot find", [])
    put("div_py2_builtin_set_p3.pkl", "py2 names", b"\x80\x03c__builtin__\nset\n)\x85R.",
        "which CPython cannot find", [])
    put("div_py2_userdict_p2.pkl", "py2 names", b"\x80\x02cUserDict\nUserDict\n)\x81.", "legacy magic number", [])
    # Escapes naming globals.
    put("div_string_escape_global.pkl", "escapes", b"S'o\\x73'\nS'system'\n\x93.", "STRING argument with escapes",
        [("MEDIUM", "string-escapes"), ("CRITICAL", "os.system")])
    put("div_unicode_escape_global.pkl", "escapes", b"V\\u006fs\nVsystem\n\x93.", "UNICODE argument with escapes",
        [("MEDIUM", "string-escapes"), ("CRITICAL", "os.system")])
    # Strings CPython cannot decode.
    put("div_binunicode_invalid_utf8.pkl", "escapes", b"\x80\x04\x8c\x03o\xffs.", "not valid UTF-8", [])
    # STACK_GLOBAL fed from the memo.
    put("div_stack_global_memo.pkl", "memo globals",
        b"\x80\x04\x8c\x05posix\x94\x8c\x06system\x94" + b"00" + b"h\x00h\x01\x93.", 'forbidden global "posix.system"',
        [("CRITICAL", "posix.system")])
    # BUILD on a class itself: setattr through a (None, slots) state
    # patches torch for the process (recorded on a stub: not run).
    build = b"\x80\x02ctorch.utils.data.dataset\nDataset\nN}X\x07\x00\x00\x00patchedK\x01s\x86b."
    put("div_build_on_class.pkl", "build", build, "BUILD on global", [("HIGH", "torch.utils.data.dataset.Dataset")])
    import torch.utils.data.dataset as tds
    expect[-1]["cpython"] += "; afterwards Dataset.patched is %r" % getattr(tds.Dataset, "patched", None)
    # copyreg._reconstructor (allow-listed for protocol 0/1 objects) calls
    # base.__init__ unless base is object.
    # (UserList's __init__ fills .data: the result shows it ran.)
    put("div_reconstructor_base.pkl", "reconstructor",
        b"ccopy_reg\n_reconstructor\n(cUserList\nUserList\ncUserList\nUserList\n(lp0\nI1\naI2\natR.",
        "copyreg._reconstructor with base collections.UserList", [("HIGH", "collections.UserList")])
    # A payload, then garbage.
    put("div_broken_after_payload.pkl", "broken pickles", payload()[:-1] + b"\xff\xff", 'forbidden global "posix.system"',
        [("CRITICAL", "posix.system")])

    # Unhashable dict keys and set members: CPython hashes each one as it
    # builds the dict or set, so pickle.load fails; a reader that accepts
    # them reads something CPython never does.
    for name, data, err in [
            ("dict_key_list", b"\x80\x02}]K\x01s.", "dict key is an unhashable list"),
            ("dict_key_tuple_list", b"\x80\x02})]\x86K\x01s.", "dict key is an unhashable tuple holding a list"),
            ("frozenset_list", b"\x80\x04(]\x91.", "set member is an unhashable list"),
            ("frozenset_tuple_list", b"\x80\x04()]\x86\x91.", "set member is an unhashable tuple holding a list"),
            ("set_additems_list", b"\x80\x04\x8f(]\x90.", "set member is an unhashable list"),
            ("frozenset_key", b"\x80\x04((]\x912d.", "set member is an unhashable list"),
            ("dict_key_bytearray", b"\x80\x02}c__builtin__\nbytearray\nX\x01\x00\x00\x00aX\x06\x00\x00\x00latin1\x86RK\x01s.",
             "dict key is an unhashable bytearray")]:
        put("div_unhashable_%s.pkl" % name, "unhashable", data, err, [])
        # Plain pickle.loads: these pickles name only builtins.bytearray,
        # which the recorder would stub.
        try:
            expect[-1]["loads"] = "result " + brief(pickle.loads(data))
        except TypeError as e:
            expect[-1]["loads"] = "error TypeError: %s" % e
        assert expect[-1]["loads"].startswith("error TypeError: unhashable"), expect[-1]

    # Zip archives.
    base = clean_zip()
    items = members(base)
    pre = items[0][0].split("/")[0]
    evil = payload()
    put("div_zip_case_duplicate.pt", "zip", rezip(items + [(pre + "/DATA.PKL", evil)]), "differ only in case",
        [("MEDIUM", "zip-case-duplicate"), ("CRITICAL", "posix.system")], torch_file=True)
    # torch finds members without case, but takes every name to start with
    # the first one's prefix exactly.
    upper = [(pre + "/" + n[len(pre) + 1:].upper(), b) for n, b in items]
    put("div_zip_upper_case_ok.pt", "zip", rezip(upper), "", [], torch_file=True)
    # bytes as a dict key, pickled at protocol 2 as _codecs.encode(...):
    # hashable, so torch loads it (unlike a bytearray key, above).
    key = b"\x80\x02}c_codecs\nencode\nX\x01\x00\x00\x00aX\x06\x00\x00\x00latin1\x86RK\x01s."
    put("div_zip_bytes_key_ok.pt", "unhashable", rezip([(n, key if n.endswith("data.pkl") else b) for n, b in items]),
        "", [], torch_file=True)
    expect[-1]["loads"] = "result " + brief(pickle.loads(key))
    assert "result dict(" in expect[-1]["torch"] and expect[-1]["loads"] == "result dict(b'a'=1)", expect[-1]
    bad = bytearray(base)
    for p, name, off in central(base):
        if name.endswith(b"data.pkl"):
            struct.pack_into("<I", bad, p + 16, 0xdeadbeef)
            struct.pack_into("<I", bad, off + 14, 0xdeadbeef)
    put("div_zip_bad_crc_ok.pt", "zip", bytes(bad), "", [], torch_file=True)
    # A payload behind a bad CRC: Python's zipfile (what naive scanners read
    # zips with) refuses the member, torch reads it.
    crc = bytearray(rezip([(n, evil if n.endswith("data.pkl") else b) for n, b in items]))
    for p, name, off in central(bytes(crc)):
        if name.endswith(b"data.pkl"):
            struct.pack_into("<I", crc, p + 16, 0xdeadbeef)
            struct.pack_into("<I", crc, off + 14, 0xdeadbeef)
    put("div_zip_bad_crc_payload.pt", "zip", bytes(crc), 'forbidden global "posix.system"',
        [("CRITICAL", "posix.system")], torch_file=True)
    try:
        zipfile.ZipFile(io.BytesIO(bytes(crc))).read(pre + "/data.pkl")
        expect[-1]["zipfile"] = "reads the member"
    except Exception as e:
        expect[-1]["zipfile"] = "error %s: %s" % (type(e).__name__, e)
    # Two pickles back to back: pickle.load reads the first only, a loader
    # that reads on runs the second.
    put("div_second_pickle_payload.pkl", "polyglots", pickle.dumps([1, 2], protocol=2) + evil,
        "legacy magic number", [("CRITICAL", "posix.system")])
    for cls, ch, err, anomaly in [("nul", b"\x00", "contains a NUL byte", "zip-name-nul"),
                                  ("backslash", b"\\", "contains a backslash", "zip-name-backslash")]:
        z = bytearray(rezip(items + [(pre + "/extraAname", b"x")]))
        z = bytes(z).replace(b"extraAname", b"extra" + ch + b"name")
        put("div_zip_name_%s.pt" % cls, "zip", z, err, [("MEDIUM", anomaly)], torch_file=True)
    enc = bytearray(base)
    for p, name, off in central(base):
        if name.endswith(b"data.pkl"):
            enc[p + 8] |= 1
            enc[off + 6] |= 1
    put("div_zip_encrypted.pt", "zip", bytes(enc), "flagged encrypted", [("MEDIUM", "zip-encrypted")], torch_file=True)
    ov = bytearray(base)
    cd = central(base)
    for i, (p, name, off) in enumerate(cd):
        if name.endswith(b"data.pkl"):
            nxt = cd[i + 1][2]
            n, = struct.unpack_from("<H", ov, off + 26)
            x, = struct.unpack_from("<H", ov, off + 28)
            size = nxt + 40 - (off + 30 + n + x)
            for q in (p + 20, p + 24):
                struct.pack_into("<I", ov, q, size)
            for q in (off + 18, off + 22):
                struct.pack_into("<I", ov, q, size)
    put("div_zip_overlap.pt", "zip", bytes(ov), "overlap", [("MEDIUM", "zip-overlap")], torch_file=True)
    e = base.rfind(b"PK\x05\x06")
    fake = base[e:e + 20] + b"\x00\x00"
    two = base[:e + 20] + struct.pack("<H", len(fake)) + fake
    put("div_zip_two_eocd.pt", "zip", two, "end-of-central-directory records", [("MEDIUM", "zip-eocd")], torch_file=True)
    put("div_zip_bzip2.pt", "zip", rezip(items, methods={pre + "/data.pkl": zipfile.ZIP_BZIP2}),
        "compression method 12", [("MEDIUM", "zip-compression")], torch_file=True)
    ln = bytearray(base)
    for p, name, off in central(base):
        if name.endswith(b"data.pkl"):
            n, = struct.unpack_from("<H", ln, off + 26)
            ln[off + 30 + n - 1:off + 30 + n] = b"X"
    put("div_zip_local_name.pt", "zip", bytes(ln), "in its local header", [("MEDIUM", "zip-local-name")], torch_file=True)

    # A pickle followed by a zip archive: torch.load reads the pickle.
    put("div_pickle_then_zip.pt", "polyglots", payload() + base, 'forbidden global "posix.system"',
        [("CRITICAL", "posix.system"), ("MEDIUM", "pickle-zip-polyglot")], torch_file=True)
    # Legacy sys_info and TorchScript constants.pkl.
    put("div_legacy_sys_info_payload.pt", "legacy", legacy(pickle.dumps({}, protocol=2), sys_info=evil),
        'forbidden global "posix.system"', [("CRITICAL", "posix.system")], torch_file=True)
    ts = members(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pickle", "torchscript.pt"), "rb").read())
    ts = [(n, evil if n.endswith("/constants.pkl") else b) for n, b in ts]
    put("div_ts_constants_payload.pt", "torchscript", rezip(ts), 'forbidden global "posix.system"',
        [("CRITICAL", "posix.system"), ("LOW", "torchscript-code")], torch_file=True)

    # Tar or pickle: torch.load takes a file for a tar archive when Python's
    # tarfile accepts its first block's checksum, whatever its magic.
    import tarfile
    tb = io.BytesIO()
    with tarfile.open(fileobj=tb, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        name = "cposix\nsystem\n(S'echo pwned'\ntR."
        ti = tarfile.TarInfo(name)
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b"x"))
    badsum = bytearray(tb.getvalue())
    badsum[148:156] = b"0000000\x00"
    put("div_tar_bad_checksum_pickle.pt", "tar", bytes(badsum), 'forbidden global "posix.system"',
        [("CRITICAL", "posix.system")], torch_file=True)
    v7 = bytearray(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pickle", "tar_state_dict.pt"), "rb").read())
    pos = 0
    while pos + 512 <= len(v7) and any(v7[pos:pos + 512]):
        hdr = v7[pos:pos + 512]
        size = int(bytes(hdr[124:136]).split(b"\x00")[0].strip() or b"0", 8)
        hdr[257:265] = b"\x00" * 8
        hdr[148:156] = b" " * 8
        hdr[148:156] = b"%06o\x00 " % sum(hdr)
        v7[pos:pos + 512] = hdr
        pos += 512 + (size + 511) // 512 * 512
    put("div_tar_v7_ok.pt", "tar", bytes(v7), "", [], torch_file=True)

    with open(os.path.join(out, "divergence.json"), "w") as f:
        json.dump(expect, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
