#!/usr/bin/python3
"""Files for `ckpt scan` beyond torch's formats (run with /usr/bin/python3).

  scan_fixtures.py [--out DIR]

Writes DIR/scan_* (default testdata/malicious) and DIR/scan.json, which gives
for each file the exit status `ckpt scan` must return and the findings
(severity, global) it must report. NumPy object arrays are pickles:
numpy.load(allow_pickle=True) unpickles them, and np.save writes them with
pickle, so a payload inside one runs on load.
"""

import argparse
import io
import json
import os
import zipfile

import numpy as np


class Reduce:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def joblib_fixtures(put, crit):
    """Files written by joblib.dump itself (Debian's python3-joblib): its
    pickle with each NumPy array's bytes after a NumpyArrayWrapper, plain
    and compressed with each compressor joblib has (lz4 needs Debian's
    python3-lz4), and the ZF format of joblib <= 0.9.3, written by joblib's
    own write_zfile."""
    import pickle
    import tempfile

    import joblib
    from joblib import numpy_pickle_compat

    def dump(obj, **kw):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "x.joblib")
            joblib.dump(obj, p, **kw)
            with open(p, "rb") as f:
                return f.read()

    plain = np.empty(3, dtype=object)
    plain[:] = [1, "two", 3.0]
    honest = {
        "w": np.arange(6, dtype=np.float32).reshape(2, 3),
        "wt": np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
        "b": np.zeros(5),
        "s": np.array(["ab", "cde"]),
        "rec": np.zeros(2, dtype=[("x", "<i4"), ("y", "<f8")]),
        "o": plain,
        "n": 3,
        "e": np.zeros((0, 4), dtype=np.float16),
    }
    evil_arr = np.empty(2, dtype=object)
    evil_arr[0], evil_arr[1] = 1, Reduce(os.system, "echo pwned")
    # The payload after the arrays: found only by stepping over their bytes.
    after = {"w": np.arange(6, dtype=np.float32), "b": np.ones(33), "x": Reduce(os.system, "echo pwned")}
    put("scan_joblib_plain.joblib", dump(honest), 0, [])
    put("scan_joblib_payload_after_arrays.joblib", dump(after), 1, crit)
    put("scan_joblib_object_array_payload.joblib", dump({"a": np.arange(3), "o": evil_arr}), 1, crit)
    put("scan_joblib_protocol2.joblib", dump(honest, protocol=2), 0, [])
    # Protocols 0 and 1 make each wrapper with copyreg._reconstructor.
    put("scan_joblib_protocol0.joblib", dump(honest, protocol=0), 0, [])
    put("scan_joblib_protocol1_payload.joblib", dump(after, protocol=1), 1, crit)
    for c in ["zlib", "gzip", "bz2", "lzma", "xz", "lz4"]:  # lz4: Debian's python3-lz4
        put("scan_joblib_%s_plain.joblib" % c, dump(honest, compress=(c, 3)), 0, [])
        put("scan_joblib_%s_payload.joblib" % c, dump(after, compress=(c, 3)), 1, crit)
    zf = io.BytesIO()
    numpy_pickle_compat.write_zfile(zf, pickle.dumps({"a": [1, 2]}, protocol=2))
    put("scan_joblib_zf_plain.pkl", zf.getvalue(), 0, [])
    zf = io.BytesIO()
    numpy_pickle_compat.write_zfile(zf, pickle.dumps(Reduce(os.system, "echo pwned"), protocol=2))
    put("scan_joblib_zf_payload.pkl", zf.getvalue(), 1, crit)
    # Refused (exit 2): 64 MB of zeros that bz2 packs into a few hundred
    # bytes, past the decompression-bomb ratio; an array cut short.
    put("scan_joblib_bz2_bomb.joblib", dump({"z": np.zeros(64 << 20, dtype=np.uint8)}, compress=("bz2", 9)), 2, [])
    put("scan_joblib_truncated_array.joblib", dump({"w": np.arange(64, dtype=np.float64)})[:-100], 2, [])


def joblib_companion_fixtures(put, out, crit, npy):
    """The layout of joblib 0.9 and before, which joblib.load still reads
    (joblib.numpy_pickle_compat): the pickle holds an NDArrayWrapper per
    array, naming a companion .npy file that joblib.load joins to the
    pickle's directory and reads with numpy.load(allow_pickle=True); with
    compression, a ZF-compressed pickle of ZNDArrayWrappers and the
    arrays' bytes in zlib companions (.npy.z). joblib 1.2 writes neither,
    so the wrappers are pickled here as joblib 0.9's pickler did, and the
    honest files are loaded back with joblib.load to show it reads them.
    Payloads and escaping names are never loaded."""
    import pickle

    import joblib
    from joblib.numpy_pickle_compat import NDArrayWrapper, ZNDArrayWrapper, write_zfile

    def old(name, wrappers, protocol=2):
        put(name, pickle.dumps(wrappers, protocol=protocol), *expect[name])

    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    evil = np.empty(2, dtype=object)
    evil[0], evil[1] = 1, Reduce(os.system, "echo pwned")
    high = [("HIGH", "joblib-companion-outside")]
    expect = {
        "scan_joblib_old_plain.pkl": (0, []),
        "scan_joblib_old_payload.pkl": (1, crit),
        "scan_joblib_old_raw_pickle.pkl": (1, crit),
        "scan_joblib_old_parent.pkl": (1, high),
        "scan_joblib_old_absolute.pkl": (1, high),
        "scan_joblib_old_missing.pkl": (2, []),
    }
    # The companions, scanned on their own too.
    put("scan_joblib_old_plain.pkl_01.npy", npy(arr), 0, [])
    put("scan_joblib_old_payload.pkl_01.npy", npy(evil), 1, crit)
    put("scan_joblib_old_raw_pickle.pkl_01.npy", pickle.dumps(Reduce(os.system, "echo pwned"), protocol=2), 1, crit)
    old("scan_joblib_old_plain.pkl", {"w": NDArrayWrapper("scan_joblib_old_plain.pkl_01.npy", np.ndarray), "n": 3})
    got = joblib.load(os.path.join(out, "scan_joblib_old_plain.pkl"))
    assert np.array_equal(got["w"], arr), got
    old("scan_joblib_old_payload.pkl", {"w": NDArrayWrapper("scan_joblib_old_payload.pkl_01.npy", np.ndarray)})
    # numpy.load hands a file that is no .npy or .npz to pickle.load.
    old("scan_joblib_old_raw_pickle.pkl", [NDArrayWrapper("scan_joblib_old_raw_pickle.pkl_01.npy", np.ndarray)], protocol=4)
    old("scan_joblib_old_parent.pkl", {"w": NDArrayWrapper("../npy/evil.npy", np.ndarray)}, protocol=0)
    old("scan_joblib_old_absolute.pkl", {"w": NDArrayWrapper("/tmp/evil.npy", np.ndarray)})
    old("scan_joblib_old_missing.pkl", {"w": NDArrayWrapper("scan_joblib_old_nothere.npy", np.ndarray)})

    def zold(name, wrapper, code, findings):
        zf = io.BytesIO()
        write_zfile(zf, pickle.dumps({"w": wrapper}, protocol=2))
        put(name, zf.getvalue(), code, findings)

    # Compressed, as joblib 0.9's ZipNumpyPickler wrote it: the array's
    # reduce state without its data in the wrapper, the data in a zfile.
    _, init_args, state = arr.__reduce__()
    zf = io.BytesIO()
    write_zfile(zf, state[-1])
    put("scan_joblib_old_zf.pkl_01.npy.z", zf.getvalue(), 2, [])  # no pickle, no model file
    zold("scan_joblib_old_zf.pkl", ZNDArrayWrapper("scan_joblib_old_zf.pkl_01.npy.z", init_args, state[:-1]), 0, [])
    got = joblib.load(os.path.join(out, "scan_joblib_old_zf.pkl"))
    assert np.array_equal(got["w"], arr), got
    zold("scan_joblib_old_zf_absolute.pkl", ZNDArrayWrapper("/etc/hostname", init_args, state[:-1]), 1, high)


def onnx_external_fixtures(put, out):
    """ONNX models (written by the onnx package) whose initializer W is
    external data: in a file beside the model (clean), and at locations
    that leave the model's directory: a parent path, an absolute path, and
    a symbolic link in the directory to a file outside it, which onnx.load
    (1.12, as installed here) follows and reads into the weights."""
    import tempfile

    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnx.external_data_helper import set_external_data

    def model(w):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
        g = helper.make_graph([helper.make_node("Add", ["x", "W"], ["y"])], "g", [x], [y], [w])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])

    w = numpy_helper.from_array(np.arange(4, dtype=np.float32), "W")
    with tempfile.TemporaryDirectory() as d:
        onnx.save_model(model(w), os.path.join(d, "m.onnx"), save_as_external_data=True,
                        all_tensors_to_one_file=True, location="scan_onnx_ext_ok.bin", size_threshold=0)
        with open(os.path.join(d, "m.onnx"), "rb") as f:
            put("scan_onnx_ext_ok.onnx", f.read(), 0, [])
        with open(os.path.join(d, "scan_onnx_ext_ok.bin"), "rb") as f, open(os.path.join(out, "scan_onnx_ext_ok.bin"), "wb") as g:
            g.write(f.read())
    link = os.path.join(out, "scan_onnx_ext_link.bin")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.join("..", "onnx", "ext.data"), link)
    high = [("HIGH", "onnx-external-data-outside")]
    for name, loc in [("parent", "../onnx/ext.data"), ("absolute", "/etc/hostname"), ("symlink", "scan_onnx_ext_link.bin")]:
        t = onnx.TensorProto()
        t.CopyFrom(w)
        set_external_data(t, location=loc, offset=0, length=16)
        t.data_location = TensorProto.EXTERNAL
        t.ClearField("raw_data")
        path = os.path.join(out, "scan_onnx_ext_%s.onnx" % name)
        onnx.save_model(model(t), path)
        with open(path, "rb") as f:
            put("scan_onnx_ext_%s.onnx" % name, f.read(), 1, high)
    # onnx itself follows the link out of the directory.
    with open(os.path.join(out, "..", "onnx", "ext.data"), "rb") as f:
        want = f.read()[:16]
    got = onnx.load(os.path.join(out, "scan_onnx_ext_symlink.onnx")).graph.initializer[0].raw_data
    assert got == want, (got, want)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "malicious"))
    out = ap.parse_args().out
    expect = []

    def put(name, data, code, findings):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        expect.append({"file": name, "exit": code, "findings": [list(x) for x in findings]})

    def npy(arr):
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=True)
        return buf.getvalue()

    evil = np.empty(2, dtype=object)
    evil[0], evil[1] = 1, Reduce(os.system, "echo pwned")
    crit = [("CRITICAL", "posix.system" if os.name == "posix" else "nt.system")]
    put("scan_npy_object_payload.npy", npy(evil), 1, crit)
    ok = np.empty(2, dtype=object)
    ok[0], ok[1] = 1, "two"
    put("scan_npy_object_plain.npy", npy(ok), 0, [])
    put("scan_npy_plain.npy", npy(np.arange(6, dtype=np.float32).reshape(2, 3)), 0, [])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.npy", npy(np.arange(3)))
        z.writestr("b.npy", npy(evil))
    put("scan_npz_object_payload.npz", buf.getvalue(), 1, crit)
    # A pickle named like a safetensors file: torch.load would run it.
    put("scan_pickle_named_safetensors.safetensors",
        b"\x80\x02cposix\nsystem\nX\n\x00\x00\x00echo pwnedq\x00\x85R.", 1, [("CRITICAL", "posix.system")])
    joblib_fixtures(put, crit)
    joblib_companion_fixtures(put, out, crit, npy)
    onnx_external_fixtures(put, out)
    with open(os.path.join(out, "scan.json"), "w") as f:
        json.dump(expect, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
