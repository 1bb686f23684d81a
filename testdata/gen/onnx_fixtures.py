#!/usr/bin/python3
"""Writes the ONNX fixtures of package formats/onnx into testdata/onnx/.

Run with Debian's interpreter (torch 1.13, onnx 1.12):
    /usr/bin/python3 testdata/gen/onnx_fixtures.py

Files (all small):
  cnn.onnx            torch.onnx.export of a small CNN (instance A, seed 0), opset 13,
                      BatchNorm kept as its own node (TrainingMode.PRESERVE on an eval model),
                      so initializer names are the state_dict keys.
  cnn_b.bin/.json     state_dict of a second instance B (seed 1, running stats randomised),
                      each tensor's little-endian contiguous bytes back to back, described in
                      the JSON (name, dtype, shape, offset, nbytes, sha256).
  cnn_input.bin       float32 input [2,3,8,8]; cnn_a_output.bin / cnn_b_output.bin are PyTorch's
                      outputs [2,10] of instance A and B on it (float32 little-endian).
  dtypes.onnx         initializers of every data type, raw_data and typed fields, 0-d and empty.
  attrs.onnx          attributes of every type, subgraphs, functions, training_info,
                      sparse initializers, metadata, value_info of every TypeProto kind, and
                      unknown fields at several nesting levels.
  ext.onnx + ext.data the same small MLP with every initializer in external data.
  manifest.json       per model: initializer name, ONNX data type, dims, the torch dtype a reader
                      exposes ("" where none), and the SHA-256 of the little-endian contiguous
                      element bytes, computed here with numpy (cross-checked with
                      onnx.numpy_helper where it supports the type).
"""
import hashlib
import json
import os
import sys

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "onnx")
TP = TensorProto

TORCH_NAMES = {
    TP.FLOAT: "float32", TP.DOUBLE: "float64", TP.FLOAT16: "float16", TP.BFLOAT16: "bfloat16",
    TP.INT8: "int8", TP.INT16: "int16", TP.INT32: "int32", TP.INT64: "int64", TP.UINT8: "uint8",
    TP.BOOL: "bool",
}


def sha(b):
    return hashlib.sha256(b).hexdigest()


class CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(16)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        x = torch.nn.functional.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


def make_cnn(seed):
    torch.manual_seed(seed)
    m = CNN()
    g = torch.Generator().manual_seed(seed + 100)
    for bn in (m.bn1, m.bn2):
        n = bn.num_features
        bn.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
        bn.running_var.copy_(torch.rand(n, generator=g) + 0.5)
        bn.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
        bn.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
        bn.num_batches_tracked.fill_(seed + 7)
    return m.eval()


def write_cnn(manifest):
    a, b = make_cnn(0), make_cnn(1)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    path = os.path.join(OUT, "cnn.onnx")
    torch.onnx.export(a, x, path, opset_version=13, input_names=["input"], output_names=["logits"],
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    torch.set_num_threads(1)  # the reference outputs do not depend on thread scheduling
    with torch.no_grad():
        open(os.path.join(OUT, "cnn_input.bin"), "wb").write(x.numpy().astype("<f4").tobytes())
        open(os.path.join(OUT, "cnn_a_output.bin"), "wb").write(a(x).numpy().astype("<f4").tobytes())
        open(os.path.join(OUT, "cnn_b_output.bin"), "wb").write(b(x).numpy().astype("<f4").tobytes())
    entries, blob = [], b""
    for name, t in b.state_dict().items():
        arr = t.contiguous().numpy()
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        entries.append({"name": name, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
                        "offset": len(blob), "nbytes": len(raw), "sha256": sha(raw)})
        blob += raw
    open(os.path.join(OUT, "cnn_b.bin"), "wb").write(blob)
    json.dump(entries, open(os.path.join(OUT, "cnn_b.json"), "w"), indent=1)
    model = onnx.load(path)
    onnx.checker.check_model(model)
    manifest["cnn.onnx"] = describe(model, {})


def le_bytes(arr):
    arr = np.ascontiguousarray(arr)
    return arr.astype(arr.dtype.newbyteorder("<")).tobytes()


def bf16_bits(vals):
    t = torch.tensor(vals, dtype=torch.float32).to(torch.bfloat16)
    return t.view(torch.int16).numpy().view(np.uint16)


def write_dtypes(manifest):
    rng = np.random.default_rng(3)
    inits, expect = [], {}

    def add(name, dt, arr, raw, typed_field=None, typed_vals=None, le=None):
        t = TP()
        t.name = name
        t.data_type = dt
        t.dims.extend(arr.shape)
        if raw:
            t.raw_data = le_bytes(arr)
        else:
            getattr(t, typed_field).extend(typed_vals)
        inits.append(t)
        expect[name] = le_bytes(arr) if le is None else le

    f32 = rng.standard_normal((2, 3)).astype(np.float32)
    add("f32_raw", TP.FLOAT, f32, True)
    add("f32_typed", TP.FLOAT, f32, False, "float_data", f32.flatten().tolist())
    f64 = rng.standard_normal(3)
    add("f64_raw", TP.DOUBLE, f64, True)
    add("f64_typed", TP.DOUBLE, f64, False, "double_data", f64.tolist())
    f16 = np.array([[1.5, -2.25], [65504.0, 6e-8]], dtype=np.float16)
    add("f16_raw", TP.FLOAT16, f16, True)
    add("f16_typed", TP.FLOAT16, f16, False, "int32_data", f16.view(np.uint16).flatten().tolist())
    bf = bf16_bits([1.0, -3.140625, 1e30, -0.0])
    add("bf16_raw", TP.BFLOAT16, bf, True)
    add("bf16_typed", TP.BFLOAT16, bf, False, "int32_data", bf.tolist())
    i8 = np.array([-128, -1, 0, 127], dtype=np.int8)
    add("i8_raw", TP.INT8, i8, True)
    add("i8_typed", TP.INT8, i8, False, "int32_data", i8.tolist())
    u8 = np.array([[0, 1, 255]], dtype=np.uint8)
    add("u8_raw", TP.UINT8, u8, True)
    add("u8_typed", TP.UINT8, u8, False, "int32_data", u8.flatten().tolist())
    i16 = np.array([-32768, 5, 32767], dtype=np.int16)
    add("i16_raw", TP.INT16, i16, True)
    add("i16_typed", TP.INT16, i16, False, "int32_data", i16.tolist())
    i32 = np.array([-2147483648, 0, 2147483647], dtype=np.int32)
    add("i32_raw", TP.INT32, i32, True)
    add("i32_typed", TP.INT32, i32, False, "int32_data", i32.tolist())
    i64 = np.array([[-(2 ** 63), 1], [2 ** 40, 2 ** 63 - 1]], dtype=np.int64)
    add("i64_raw", TP.INT64, i64, True)
    add("i64_typed", TP.INT64, i64, False, "int64_data", i64.flatten().tolist())
    bl = np.array([True, False, True], dtype=np.bool_)
    add("bool_raw", TP.BOOL, bl, True)
    add("bool_typed", TP.BOOL, bl, False, "int32_data", [1, 0, 1])
    add("scalar_f32", TP.FLOAT, np.array(2.5, dtype=np.float32), True)
    add("empty_f32", TP.FLOAT, np.zeros((0, 3), dtype=np.float32), True)
    add("empty_typed_i64", TP.INT64, np.zeros((2, 0), dtype=np.int64), False, "int64_data", [])
    # Types with no torch dtype: a reader keeps them losslessly but cannot expose them.
    add("u16_raw", TP.UINT16, np.array([1, 65535], dtype=np.uint16), True)
    add("u32_typed", TP.UINT32, np.array([7, 4294967295], dtype=np.uint32), False, "uint64_data", [7, 4294967295])
    add("u64_typed", TP.UINT64, np.array([2 ** 64 - 1], dtype=np.uint64), False, "uint64_data", [2 ** 64 - 1])
    add("c64_typed", TP.COMPLEX64, np.array([1 + 2j], dtype=np.complex64), False, "float_data", [1.0, 2.0])
    st = TP(name="str_typed", data_type=TP.STRING, dims=[2])
    st.string_data.extend([b"hello", b"\xff\x00bytes"])
    inits.append(st)

    # Cross-check the bytes this script means with onnx.numpy_helper where it can decode.
    for t in inits:
        if t.data_type in (TP.BFLOAT16, TP.STRING, TP.COMPLEX64):  # onnx 1.12 cannot decode complex
            continue
        arr = numpy_helper.to_array(t)
        if t.data_type == TP.FLOAT16:
            arr = arr.astype(np.float16)
        got = le_bytes(arr)
        assert got == expect[t.name], (t.name, got, expect[t.name])

    nodes = [helper.make_node("Identity", [t.name], [t.name + "_out"]) for t in inits]
    outputs = [helper.make_tensor_value_info(t.name + "_out", t.data_type, list(t.dims)) for t in inits]
    graph = helper.make_graph(nodes, "dtypes", [], outputs, initializer=inits)
    model = helper.make_model(graph, producer_name="ckpt-testdata", opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(OUT, "dtypes.onnx"))
    manifest["dtypes.onnx"] = describe(model, expect)


def write_attrs(manifest):
    sub = helper.make_graph([helper.make_node("Identity", ["a"], ["b"], name="inner")], "sub",
                            [helper.make_tensor_value_info("a", TP.FLOAT, [1])],
                            [helper.make_tensor_value_info("b", TP.FLOAT, [1])])
    t1 = numpy_helper.from_array(np.array([1, 2, 3], dtype=np.int64), "t1")
    t2 = helper.make_tensor("t2", TP.FLOAT16, [2], [0.5, -1.0])
    sparse = helper.make_sparse_tensor(numpy_helper.from_array(np.array([5.0], dtype=np.float32), "v"),
                                       numpy_helper.from_array(np.array([1], dtype=np.int64), "i"), [3])
    tp_seq = helper.make_sequence_type_proto(helper.make_tensor_type_proto(TP.FLOAT, ["N", 3]))
    custom = helper.make_node(
        "Everything", ["x"], ["y"], name="custom", domain="ckpt.test", doc_string="node doc",
        f=0.25, i=-7, s=b"bytes\x00ok", t=t1, g=sub, floats=[1.0, -0.0, 3.5], ints=[0, -1, 2 ** 40],
        strings=[b"a", b""], tensors=[t1, t2], graphs=[sub, sub], sparse_tensor=sparse,
        sparse_tensors=[sparse], tp=tp_seq, type_protos=[tp_seq, helper.make_tensor_type_proto(TP.INT8, [2])],
        zero_f=0.0, zero_i=0)
    ref = helper.AttributeProto(name="alpha", ref_attr_name="outer_alpha", type=helper.AttributeProto.FLOAT)
    fnode = helper.make_node("LeakyRelu", ["fx"], ["fy"])
    fnode.attribute.append(ref)
    func = helper.make_function("ckpt.test", "MyLeaky", ["fx"], ["fy"], [fnode],
                                [helper.make_opsetid("", 13)], attributes=["outer_alpha"], doc_string="fn")
    cond = helper.make_node("If", ["c"], ["z"], then_branch=sub, else_branch=sub)
    map_type = onnx.TypeProto()
    map_type.map_type.key_type = TP.INT64
    map_type.map_type.value_type.CopyFrom(helper.make_tensor_type_proto(TP.FLOAT, [2]))
    map_type.denotation = "a map"
    vi = [
        helper.make_tensor_value_info("y", TP.FLOAT, ["batch", 3, None]),
        helper.make_value_info("seq", tp_seq),
        helper.make_value_info("map", map_type),
        helper.make_value_info("opt", helper.make_optional_type_proto(helper.make_tensor_type_proto(TP.BOOL, []))),
        helper.make_value_info("sp", helper.make_sparse_tensor_type_proto(TP.FLOAT, [3, 4])),
    ]
    init = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "w")
    init.doc_string = "weight doc"
    graph = helper.make_graph([custom, cond], "attrs", [helper.make_tensor_value_info("x", TP.FLOAT, [1]),
                                                          helper.make_tensor_value_info("c", TP.BOOL, [])],
                              [helper.make_tensor_value_info("z", TP.FLOAT, [1])], initializer=[init],
                              doc_string="graph doc", value_info=vi, sparse_initializer=[sparse])
    ann = graph.quantization_annotation.add()
    ann.tensor_name = "w"
    ann.quant_parameter_tensor_names.add(key="SCALE_TENSOR", value="s")
    model = helper.make_model(graph, producer_name="ckpt-testdata", producer_version="1", domain="ckpt.test",
                              model_version=3, doc_string="model doc", functions=[func],
                              opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ckpt.test", 1)])
    helper.set_model_props(model, {"author": "ckpt", "license": "none"})
    ti = model.training_info.add()
    ti.initialization.CopyFrom(sub)
    ti.update_binding.add(key="w", value="b")
    # Unknown fields (field 100, varint 7) in the model, the graph, a node and a tensor: a lossless
    # reader must write them back where they were.
    unknown = b"\xa0\x06\x07"
    model.graph.initializer[0].MergeFromString(unknown)
    model.graph.node[0].MergeFromString(unknown)
    model.graph.MergeFromString(unknown)
    model.MergeFromString(unknown)
    onnx.save(model, os.path.join(OUT, "attrs.onnx"))
    manifest["attrs.onnx"] = describe(model, {"w": le_bytes(np.arange(6, dtype=np.float32))})


def write_ext(manifest):
    rng = np.random.default_rng(4)
    w1 = rng.standard_normal((4, 3)).astype(np.float32)
    b1 = rng.standard_normal(4).astype(np.float32)
    w2 = rng.standard_normal((2, 4)).astype(np.float16)
    inits = [numpy_helper.from_array(w1, "fc1.weight"), numpy_helper.from_array(b1, "fc1.bias"),
             numpy_helper.from_array(w2, "fc2.weight")]
    nodes = [helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], transB=1),
             helper.make_node("Cast", ["h"], ["h16"], to=TP.FLOAT16),
             helper.make_node("MatMul", ["h16", "fc2.weight_t"], ["y"]),
             helper.make_node("Transpose", ["fc2.weight"], ["fc2.weight_t"])]
    nodes = [nodes[0], nodes[1], nodes[3], nodes[2]]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TP.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TP.FLOAT16, [1, 2])], initializer=inits)
    model = helper.make_model(graph, producer_name="ckpt-testdata", opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    expect = {"fc1.weight": le_bytes(w1), "fc1.bias": le_bytes(b1), "fc2.weight": le_bytes(w2)}
    path = os.path.join(OUT, "ext.onnx")
    if os.path.exists(os.path.join(OUT, "ext.data")):
        os.remove(os.path.join(OUT, "ext.data"))  # onnx appends to an existing data file
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.data", size_threshold=0)
    onnx.checker.check_model(path)
    for t in onnx.load(path, load_external_data=False).graph.initializer:
        assert t.data_location == TP.EXTERNAL, t.name
    for t in onnx.load(path).graph.initializer:
        assert le_bytes(numpy_helper.to_array(t)) == expect[t.name], t.name
    manifest["ext.onnx"] = describe(model, expect)


def describe(model, expect):
    out = []
    for t in model.graph.initializer:
        if t.data_type == TP.STRING:
            raw = None
        elif t.name in expect:
            raw = expect[t.name]
        elif t.data_location == TP.EXTERNAL:
            raise SystemExit("describe: external tensor %s needs expected bytes" % t.name)
        else:
            raw = le_bytes(numpy_helper.to_array(t))
        out.append({"name": t.name, "data_type": TP.DataType.Name(t.data_type), "dims": list(t.dims),
                    "dtype": TORCH_NAMES.get(t.data_type, ""), "sha256": sha(raw) if raw is not None else ""})
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    manifest = {}
    write_cnn(manifest)
    write_dtypes(manifest)
    write_attrs(manifest)
    write_ext(manifest)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote", sorted(os.listdir(OUT)), file=sys.stderr)


if __name__ == "__main__":
    main()
