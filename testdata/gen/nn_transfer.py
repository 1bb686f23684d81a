#!/usr/bin/python3
"""A small torch-trained CNN for nn's transfer-learning example and its
end-to-end test: testdata/nn/small_cnn.pt is torch.save(model.state_dict())
(zip format, float32), and testdata/nn/small_cnn.json holds an input batch and
torch's eval-mode output, encoded as in nn_layers.py.

The network is trained for a few steps on a synthetic task (bright vs dark
images) so that its BatchNorm running statistics are non-trivial.

Usage: /usr/bin/python3 testdata/gen/nn_transfer.py
"""
import json
import numpy as np
import torch
import torch.nn as nn


class SmallCNN(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(8, 16, kernel_size=3, padding=1, groups=2),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


def enc(t):
    t = t.detach().contiguous()
    return {"shape": list(t.shape), "data": " ".join(str(np.float32(v)) for v in t.reshape(-1).tolist())}


def main():
    torch.manual_seed(0)
    m = SmallCNN()
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    for _ in range(20):
        x = torch.randn(8, 3, 8, 8)
        y = torch.randint(0, 4, (8,))
        x = x + y.view(-1, 1, 1, 1).float()
        loss = nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    torch.save(m.state_dict(), "testdata/nn/small_cnn.pt")
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        out = m(x)
    # One training-mode forward and backward of the loaded network: batch
    # statistics, running-statistics update, and every parameter's gradient.
    m.train()
    m.zero_grad(set_to_none=True)  # drop the last training step's gradients
    xt = torch.randn(4, 3, 8, 8, requires_grad=True)
    yt = m(xt)
    gt = torch.randn_like(yt)
    yt.backward(gt)
    train = {"input": enc(xt), "output": enc(yt), "grad_output": enc(gt), "input_grad": enc(xt.grad),
             "param_grads": {k: enc(p.grad) for k, p in m.named_parameters()},
             "state_after": {k: enc(v) for k, v in m.state_dict().items() if v.dtype != torch.int64}}
    with open("testdata/nn/small_cnn.json", "w") as f:
        json.dump({"repr": repr(m), "input": enc(x), "output": enc(out), "train": train}, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
