#!/usr/bin/python3
"""Reference values for package nn: forward outputs, input gradients and
parameter gradients of every layer and op, computed by PyTorch.

Usage:
  /usr/bin/python3 testdata/gen/nn_layers.py                  # writes testdata/nn/layers.json (seed 0)
  /usr/bin/python3 testdata/gen/nn_layers.py --seed 7 --out F --random-shapes   # interop test

Every tensor is stored as {"shape": [...], "data": "v v v"} where each v is
numpy's shortest repr of the float32 value, so Go's ParseFloat(v, 32) gives the
exact float32 torch held. Each case: a module (type + torch keyword args) or a
functional op, its inputs, the module state loaded before the forward, a random
upstream gradient, and torch's output, input grads, parameter grads, the state
after the forward (running statistics) and repr(module).
"""
import argparse, json, random
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def enc(t):
    t = t.detach().to(torch.float32).contiguous()
    return {"shape": list(t.shape), "data": " ".join(str(np.float32(v)) for v in t.reshape(-1).tolist())}


def run_module(name, mtype, kwargs, shapes, train=False, rand_state=False, scale=1.0):
    m = getattr(nn, mtype)(**kwargs)
    if rand_state:
        with torch.no_grad():
            for k, v in m.named_parameters():
                v.copy_(torch.randn_like(v) * 0.5 + (1.0 if k.endswith("weight") and v.dim() == 1 else 0.0))
            for k, v in m.named_buffers():
                if k.endswith("running_mean"):
                    v.copy_(torch.randn_like(v) * 0.3)
                elif k.endswith("running_var"):
                    v.copy_(torch.rand_like(v) + 0.5)
                elif k.endswith("num_batches_tracked"):
                    v.fill_(3)
    m.train(train)
    state = {k: enc(v) for k, v in m.state_dict().items() if v.dtype != torch.int64}
    nbt = {k: int(v) for k, v in m.state_dict().items() if v.dtype == torch.int64}
    xs = [(torch.randn(*s) * scale).requires_grad_(True) for s in shapes]
    y = m(*xs)
    g = torch.randn_like(y)
    y.backward(g)
    return {
        "name": name, "module": mtype, "kwargs": kwargs, "train": train, "repr": repr(m),
        "state": state, "int_state": nbt,
        "inputs": [enc(x) for x in xs], "output": enc(y), "grad_output": enc(g),
        "input_grads": [enc(x.grad) for x in xs],
        "param_grads": {k: enc(p.grad) for k, p in m.named_parameters() if p.grad is not None},
        "state_after": {k: enc(v) for k, v in m.state_dict().items() if v.dtype != torch.int64},
        "int_state_after": {k: int(v) for k, v in m.state_dict().items() if v.dtype == torch.int64},
    }


OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "matmul": lambda a, b: a @ b,
    "cat1": lambda a, b: torch.cat([a, b], 1),
    "cat0": lambda a, b: torch.cat([a, b], 0),
    "permute": lambda a: a.permute(2, 0, 3, 1),
    "transpose": lambda a: a.transpose(0, 2),
    "sum_all": lambda a: a.sum(),
    "sum_12_keep": lambda a: a.sum(dim=(1, 2), keepdim=True),
    "mean_0": lambda a: a.mean(dim=0),
    "mean_23": lambda a: a.mean(dim=(2, 3)),
    "reshape": lambda a: a.reshape(3, -1) * 1.0,
    "narrow": lambda a: a.narrow(1, 1, 2),
    "channel_shuffle": lambda a: a.reshape(a.shape[0], 3, a.shape[1] // 3, a.shape[2], a.shape[3]).transpose(1, 2).reshape(a.shape),
    "exp": lambda a: a.exp(),
    "log": lambda a: a.log(),
    "sqrt": lambda a: a.sqrt(),
    "square": lambda a: a * a,
    "flatten_1": lambda a: torch.flatten(a, 1),
    "softmax_0": lambda a: torch.softmax(a, 0),
    "log_softmax_1": lambda a: torch.log_softmax(a, 1),
}


def run_op(name, op, shapes, positive=False):
    xs = []
    for s in shapes:
        x = torch.randn(*s)
        if positive:
            x = x.abs() + 0.5
        xs.append(x.requires_grad_(True))
    y = OPS[op](*xs)
    g = torch.randn_like(y)
    y.backward(g)
    return {"name": name, "op": op, "inputs": [enc(x) for x in xs], "output": enc(y),
            "grad_output": enc(g), "input_grads": [enc(x.grad) for x in xs]}


def cases(rs):
    """rs(n) returns n, or a random size near n when --random-shapes."""
    N = rs(2)
    c = []
    M = run_module
    c += [
        M("conv3x3_pad1", "Conv2d", dict(in_channels=3, out_channels=4, kernel_size=3, padding=1), [(N, 3, rs(5), rs(5))]),
        M("conv_stride2_nobias", "Conv2d", dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, bias=False), [(N, 4, rs(7), rs(6))]),
        M("conv_dilation2", "Conv2d", dict(in_channels=2, out_channels=3, kernel_size=3, padding=2, dilation=2), [(N, 2, rs(6), rs(6))]),
        M("conv_groups2", "Conv2d", dict(in_channels=4, out_channels=6, kernel_size=3, padding=1, groups=2), [(N, 4, rs(5), rs(5))]),
        M("conv_depthwise_s2", "Conv2d", dict(in_channels=4, out_channels=4, kernel_size=3, stride=2, padding=1, groups=4), [(N, 4, rs(7), rs(7))]),
        M("conv_depthwise_3x3_s1", "Conv2d", dict(in_channels=4, out_channels=4, kernel_size=3, padding=1, groups=4), [(N, 4, rs(5), rs(6))]),
        M("conv_depthwise_3x3_w2", "Conv2d", dict(in_channels=2, out_channels=2, kernel_size=3, padding=1, groups=2, bias=False), [(N, 2, 3, 2)]),
        M("conv_depthwise_5x5", "Conv2d", dict(in_channels=3, out_channels=3, kernel_size=5, padding=2, groups=3, bias=False), [(N, 3, rs(6), rs(5))]),
        M("conv_1x1", "Conv2d", dict(in_channels=5, out_channels=3, kernel_size=1), [(N, 5, rs(4), rs(4))]),
        M("conv_1x1_stride2", "Conv2d", dict(in_channels=4, out_channels=3, kernel_size=1, stride=2, bias=False), [(N, 4, rs(5), rs(5))]),
        M("conv_1x3", "Conv2d", dict(in_channels=3, out_channels=2, kernel_size=(1, 3), padding=(0, 1)), [(N, 3, rs(4), rs(5))]),
        M("conv_7x7_s2", "Conv2d", dict(in_channels=3, out_channels=4, kernel_size=7, stride=2, padding=3, bias=False), [(1, 3, rs(9), rs(9))]),
        M("conv_asym_stride", "Conv2d", dict(in_channels=2, out_channels=2, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0)), [(N, 2, rs(6), rs(5))]),
        M("linear", "Linear", dict(in_features=6, out_features=4), [(N, 3, 6)]),
        M("linear_nobias", "Linear", dict(in_features=5, out_features=3, bias=False), [(N, 5)]),
        M("bn_train", "BatchNorm2d", dict(num_features=3), [(N + 1, 3, rs(4), rs(3))], train=True, rand_state=True),
        M("bn_eval", "BatchNorm2d", dict(num_features=3), [(N, 3, rs(4), rs(3))], rand_state=True),
        M("bn_train_cumavg", "BatchNorm2d", dict(num_features=2, momentum=None, eps=1e-3), [(N, 2, 3, 3)], train=True, rand_state=True),
        M("bn_train_noaffine", "BatchNorm2d", dict(num_features=2, affine=False, momentum=0.3), [(N, 2, 3, 2)], train=True),
        M("layernorm", "LayerNorm", dict(normalized_shape=6), [(N, 3, 6)], rand_state=True),
        M("layernorm_2d", "LayerNorm", dict(normalized_shape=[3, 4], eps=1e-6), [(N, 3, 4)], rand_state=True),
        M("layernorm_noaffine", "LayerNorm", dict(normalized_shape=5, elementwise_affine=False), [(N, 5)]),
        M("groupnorm", "GroupNorm", dict(num_groups=2, num_channels=4), [(N, 4, 3, 3)], rand_state=True),
        M("maxpool_3_2_1", "MaxPool2d", dict(kernel_size=3, stride=2, padding=1), [(N, 2, rs(7), rs(7))]),
        M("maxpool_ceil", "MaxPool2d", dict(kernel_size=2, ceil_mode=True), [(N, 2, rs(5), rs(5))]),
        M("maxpool_dilation", "MaxPool2d", dict(kernel_size=3, stride=2, padding=1, dilation=2), [(N, 2, rs(8), rs(7))]),
        M("maxpool_3_2_ceil", "MaxPool2d", dict(kernel_size=3, stride=2, ceil_mode=True), [(N, 2, rs(8), rs(8))]),
        M("avgpool_2", "AvgPool2d", dict(kernel_size=2), [(N, 2, rs(4), rs(5))]),
        M("avgpool_ceil_excl", "AvgPool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False), [(N, 2, rs(6), rs(6))]),
        M("avgpool_ceil_incl", "AvgPool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), [(N, 2, rs(6), rs(6))]),
        M("adaptive_avg_1", "AdaptiveAvgPool2d", dict(output_size=(1, 1)), [(N, 3, rs(4), rs(3))]),
        M("adaptive_avg_3x2", "AdaptiveAvgPool2d", dict(output_size=(3, 2)), [(N, 2, rs(7), rs(5))]),
        M("adaptive_max_2", "AdaptiveMaxPool2d", dict(output_size=2), [(N, 2, rs(5), rs(5))]),
        M("flatten", "Flatten", dict(), [(N, 2, 3, 2)]),
        M("identity", "Identity", dict(), [(N, 3)]),
        M("dropout_eval", "Dropout", dict(p=0.5), [(N, 4)]),
        M("relu", "ReLU", dict(inplace=False), [(N, 7)]),
        M("relu6", "ReLU6", dict(), [(N, 9)], scale=5.0),
        M("leaky_relu", "LeakyReLU", dict(negative_slope=0.2), [(N, 7)]),
        M("sigmoid", "Sigmoid", dict(), [(N, 7)], scale=3.0),
        M("tanh", "Tanh", dict(), [(N, 7)], scale=2.0),
        M("silu", "SiLU", dict(), [(N, 7)], scale=3.0),
        M("gelu", "GELU", dict(), [(N, 7)], scale=2.0),
        M("gelu_tanh", "GELU", dict(approximate="tanh"), [(N, 7)], scale=2.0),
        M("hardswish", "Hardswish", dict(), [(N, 9)], scale=4.0),
        M("hardsigmoid", "Hardsigmoid", dict(), [(N, 9)], scale=4.0),
        M("softmax", "Softmax", dict(dim=1), [(N, 5, 2)], scale=3.0),
        M("log_softmax", "LogSoftmax", dict(dim=-1), [(N, 3, 5)], scale=3.0),
    ]
    O = run_op
    c += [
        O("add_bcast", "add", [(N, 3, 4), (3, 1)]),
        O("sub_bcast", "sub", [(3, 1), (N, 3, 4)]),
        O("mul_bcast_both", "mul", [(N, 1, 4), (3, 1)]),
        O("mul_same", "mul", [(N, 5), (N, 5)]),
        O("div_bcast", "div", [(N, 3, 4), (4,)], positive=True),
        O("add_scalar_shape", "add", [(N, 4, 3, 3), (4, 1, 1)]),
        O("mul_se", "mul", [(N, 4, 3, 3), (N, 4, 1, 1)]),
        O("matmul_2d", "matmul", [(rs(3), 4), (4, rs(5))]),
        O("matmul_batched", "matmul", [(N, 3, 4), (N, 4, 2)]),
        O("matmul_nd_2d", "matmul", [(N, 3, 4), (4, 5)]),
        O("cat_dim1", "cat1", [(N, 2, 3), (N, 3, 3)]),
        O("cat_dim0", "cat0", [(1, 3), (N, 3)]),
        O("permute", "permute", [(N, 3, 4, 2)]),
        O("transpose", "transpose", [(N, 3, 4)]),
        O("sum_all", "sum_all", [(N, 3, 4)]),
        O("sum_keepdim", "sum_12_keep", [(N, 3, 4, 2)]),
        O("mean_dim0", "mean_0", [(N, 3, 4)]),
        O("mean_hw", "mean_23", [(N, 3, 4, 2)]),
        O("reshape", "reshape", [(N, 3, 2)]),
        O("narrow", "narrow", [(N, 4, 3)]),
        O("channel_shuffle", "channel_shuffle", [(N, 6, 2, 3)]),
        O("exp", "exp", [(N, 5)]),
        O("log", "log", [(N, 5)], positive=True),
        O("sqrt", "sqrt", [(N, 5)], positive=True),
        O("square", "square", [(N, 5)]),
        O("flatten_fn", "flatten_1", [(N, 2, 3, 2)]),
        O("softmax_dim0", "softmax_0", [(3, N)]),
        O("log_softmax_fn", "log_softmax_1", [(N, 4, 3)]),
    ]
    return c


def reprs():
    """repr() of composite modules, to compare printing line by line."""
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(64, 128, 3, 2, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(128)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(128, 128, kernel_size=3, stride=1, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(128)
            self.downsample = nn.Sequential(nn.Conv2d(64, 128, 1, 2, bias=False), nn.BatchNorm2d(128))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False),
                                      nn.BatchNorm2d(64, eps=1e-3, momentum=0.01), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
            self.blocks = nn.ModuleList([Block()])
            self.dw = nn.Conv2d(128, 128, 3, padding=2, dilation=2, groups=128)
            self.act = nn.Hardswish()
            self.norm = nn.LayerNorm([128])
            self.gn = nn.GroupNorm(32, 128)
            self.pool = nn.AdaptiveAvgPool2d((1, 1))
            self.flatten = nn.Flatten(1)
            self.classifier = nn.Sequential(nn.Dropout(p=0.2, inplace=True), nn.Linear(128, 10))
            self.empty = nn.Sequential()
    net = Net()
    from torchvision.ops import StochasticDepth
    singles = {
        "channel_shuffle": repr(nn.ChannelShuffle(2)),
        "stochastic_depth": repr(StochasticDepth(0.2, "row")),
        "maxpool_tuple": repr(nn.MaxPool2d((3, 3), (2, 1), ceil_mode=True)),
        "adaptive_7": repr(nn.AdaptiveAvgPool2d(7)),
        "bn_cumavg": repr(nn.BatchNorm2d(5, momentum=None, eps=1e-3)),
        "bn_nostats": repr(nn.BatchNorm2d(5, affine=False, track_running_stats=False)),
        "leaky_inplace": repr(nn.LeakyReLU(0.2, True)),
        "relu_inplace": repr(nn.ReLU(inplace=True)),
        "relu6_inplace": repr(nn.ReLU6(inplace=True)),
        "silu_inplace": repr(nn.SiLU(inplace=True)),
        "hardswish_inplace": repr(nn.Hardswish(inplace=True)),
        "dropout_inplace": repr(nn.Dropout(0.2, True)),
        "conv_full": repr(nn.Conv2d(3, 3, 3, 1, (2, 2), dilation=2, groups=3)),
        "avgpool_s1": repr(nn.AvgPool2d(3, 1, 1, ceil_mode=True, count_include_pad=False)),
        "layernorm_noaffine": repr(nn.LayerNorm([3, 4], eps=1e-6, elementwise_affine=False)),
        "groupnorm_noaffine": repr(nn.GroupNorm(4, 8, eps=1e-6, affine=False)),
        "modulelist": repr(nn.ModuleList([nn.ReLU(), nn.Identity()])),
        "softmax_neg": repr(nn.Softmax(dim=-1)),
    }
    return {"singles": singles, "net": {"repr": repr(net),
                    "state_keys": list(net.state_dict().keys()),
                    "param_names": [k for k, _ in net.named_parameters()],
                    "buffer_names": [k for k, _ in net.named_buffers()],
                    "module_names": [k for k, _ in net.named_modules()]}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="testdata/nn/layers.json")
    ap.add_argument("--random-shapes", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    rs = (lambda n: max(1, n + random.randint(-1, 3))) if a.random_shapes else (lambda n: n)
    doc = {"torch": torch.__version__, "seed": a.seed, "cases": cases(rs), "reprs": reprs()}
    with open(a.out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
