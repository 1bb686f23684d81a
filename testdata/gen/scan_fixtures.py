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
    with open(os.path.join(out, "scan.json"), "w") as f:
        json.dump(expect, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
