#!/usr/bin/python3
"""safetensors headers a naive JSON reader and the Rust crate read differently
(run with /usr/bin/python3).

  safetensors_divergence.py [--out DIR]

Writes DIR/st_div_*.safetensors (default testdata/malicious) and
DIR/st_divergence.json: for each file the text ckpt's refusal must contain.
The rules are the safetensors crate's (0.4, safetensors/src/tensor.rs), read
from its source: TensorInfo is a serde derive (field names match exactly, a
field given twice is "duplicate field", unknown fields are ignored), serde_json
refuses lone surrogate escapes ("lone leading surrogate in hex escape"), the
header is one JSON object whose names are distinct, and validate() requires
the sorted data_offsets to tile the data buffer exactly. The crate is not
installed here (no PyPI access), so what it does is not recorded by running
it; what Python's json module reads from each header is recorded instead, to
show the naive reading ckpt refuses.
"""

import argparse
import json
import os
import struct


def st(header, data):
    h = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(h)) + h + data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "malicious"))
    out = ap.parse_args().out
    expect = []
    z8 = b"\x00" * 8

    def put(name, header, data, err):
        with open(os.path.join(out, name), "wb") as f:
            f.write(st(header, data))
        try:
            naive = "json.loads reads %s" % json.dumps(json.loads(header), ensure_ascii=True)[:120]
        except Exception as e:
            naive = "json.loads fails: %s" % e
        expect.append({"file": name, "error": err, "python_json": naive})

    one = '"dtype":"F32","shape":[2],"data_offsets":[0,8]'
    put("st_div_field_case.safetensors", '{"a":{"DTYPE":"F32","shape":[2],"data_offsets":[0,8]}}', z8, "entry needs dtype")
    put("st_div_field_twice.safetensors", '{"a":{%s,"dtype":"I32"}}' % one, z8, "appears twice")
    put("st_div_tensor_twice.safetensors", '{"a":{%s},"a":{%s}}' % (one, one), z8, "name appears twice")
    put("st_div_lone_high.safetensors", '{"a\\ud800":{%s}}' % one, z8, "lone surrogate")
    put("st_div_lone_low.safetensors", '{"__metadata__":{"k":"\\udfff"},"a":{%s}}' % one, z8, "lone surrogate")
    put("st_div_gap.safetensors", '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}',
        b"\x00" * 12, "gap or overlap")
    put("st_div_overlap.safetensors", '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
        z8, "gap or overlap")
    put("st_div_trailing_data.safetensors", '{"a":{%s}}' % one, z8 + b"\x00" * 4, "trailing data")
    put("st_div_metadata_twice.safetensors", '{"__metadata__":{"k":"1"},"__metadata__":{"k":"2"},"a":{%s}}' % one, z8, "appears twice")
    with open(os.path.join(out, "st_divergence.json"), "w") as f:
        json.dump(expect, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
