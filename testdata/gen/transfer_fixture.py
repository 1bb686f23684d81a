#!/usr/bin/python3
"""The "pretrained" model of the transfer-learning walkthrough
(nn/optim/example_transfer_test.go).

Usage:
  /usr/bin/python3 testdata/gen/transfer_fixture.py     # writes testdata/transfer/

SmallCNN is a tiny ImageNet-style classifier: a convolutional backbone
(conv-bn-relu-pool, conv-bn-relu, global average pool) and a Linear
classifier over 10 classes. It is trained here for a few hundred Adam steps on
synthetic 3x12x12 images (class = which colour channel carries which pattern:
horizontal stripes, vertical stripes or a checkerboard; class 9 is noise), so
that its backbone has learnt colour and orientation features, then saved:

  backbone.pt   torch.save(model.state_dict())   (the pretrained weights)
  probe.pt      torch.save({"input": x, "logits": model.eval()(x)})
                a fixed batch and torch's eval-mode output for it, so the Go
                walkthrough can check that it computes what torch computes
  repr.txt      print(model), to compare with the Go module's printed tree
  checkpoint.pt torch.save({"model": model.state_dict(), "optimizer":
                opt.state_dict(), "epoch": 300}), a training checkpoint to
                resume from (model and Adam state side by side)
  resume_step.pt
                one more training step from that checkpoint (train mode, a
                batch of 16): {"input", "target", "loss", "model": the
                state_dict after Adam's step}
"""
import os
import torch
import torch.nn as nn


class SmallCNN(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(8, 16, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d((1, 1)),
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


def pattern(kind, size=12):
    i = torch.arange(size)
    if kind == 0:
        return ((i // 2) % 2).float()[:, None].expand(size, size)
    if kind == 1:
        return ((i // 2) % 2).float()[None, :].expand(size, size)
    return (((i[:, None] // 2) + (i[None, :] // 2)) % 2).float()


def batch(n, gen):
    y = torch.randint(0, 10, (n,), generator=gen)
    x = torch.randn(n, 3, 12, 12, generator=gen) * 0.3
    for k in range(n):
        c = int(y[k])
        if c < 9:
            x[k, c % 3] += pattern(c // 3)
    return x, y


def main():
    out = "testdata/transfer"
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = SmallCNN()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    lossf = nn.CrossEntropyLoss()
    model.train()
    for step in range(300):
        x, y = batch(32, gen)
        opt.zero_grad()
        loss = lossf(model(x), y)
        loss.backward()
        opt.step()
    model.eval()
    x, y = batch(256, gen)
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    print(f"pretraining: last loss {loss.item():.3f}, held-out accuracy {acc:.3f}")
    torch.save(model.state_dict(), os.path.join(out, "backbone.pt"))
    probe, _ = batch(4, gen)
    with torch.no_grad():
        logits = model(probe)
    torch.save({"input": probe, "logits": logits}, os.path.join(out, "probe.pt"))
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 300},
               os.path.join(out, "checkpoint.pt"))
    x, y = batch(16, gen)
    model.train()
    opt.zero_grad()
    loss = lossf(model(x), y)
    loss.backward()
    opt.step()
    torch.save({"input": x, "target": y, "loss": loss.detach(), "model": model.state_dict()},
               os.path.join(out, "resume_step.pt"))
    with open(os.path.join(out, "repr.txt"), "w") as f:
        f.write(repr(model) + "\n")


if __name__ == "__main__":
    main()
