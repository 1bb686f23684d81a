#!/usr/bin/python3
"""Fashion-MNIST transfer-learning walkthrough: the torch side.

The data is Debian's dataset-fashion-mnist package
(/usr/share/datasets/fashion-mnist; scripts/setup-interop.sh installs it).
Classes 0-4 (T-shirt/top, Trouser, Pullover, Dress, Coat) pretrain a
backbone; the walkthrough transfers it to classes 5-9 (Sandal, Shirt,
Sneaker, Bag, Ankle boot).

Usage:
  fashion_transfer.py pretrain [--out testdata/fashion/shufflenet_fashion5.pt]
      Trains torchvision's shufflenet_v2_x0_5 (num_classes=5) from scratch on
      classes 0-4 (PER images of each, 64x64 crops of the upscaled 28x28
      images, ImageNet mean/std: ckpt's --image-size 64 preprocessing) and
      saves its state_dict in float16 (~2.8 MB). Committed.
  fashion_transfer.py export --out DIR [--train-per 200] [--val-per 100]
      Writes classes 5-9 as DIR/train/<class>/<n>.png (from the training
      set) and DIR/val/<class>/<n>.png (from the test set): the ImageFolder
      ckpt finetune reads.
  fashion_transfer.py torch --data DIR --weights W --strategy head|partial|full|scratch
      [--epochs 10] [--lr 0.01] [--batch 32] [--seed 0] [--threads N]
      The same recipe done the way PyTorch's transfer-learning tutorial does
      it (torchvision ImageFolder and transforms, the frozen backbone run on
      every batch of every epoch, no augmentation), printing one JSON line:
      strategy, val top-1, seconds.
"""
import argparse, gzip, json, os, time
import numpy as np
import torch
import torchvision
from torchvision import transforms as T

SRC = "/usr/share/datasets/fashion-mnist"
NAMES = ["tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"]
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def idx(name):
    with gzip.open(os.path.join(SRC, name)) as f:
        b = f.read()
    if b[2] == 8 and b[3] == 3:
        n, h, w = np.frombuffer(b[4:16], ">i4")
        return np.frombuffer(b[16:], np.uint8).reshape(n, h, w)
    return np.frombuffer(b[8:], np.uint8)


def transform():
    # ckpt's preprocessing at --image-size 64 for a 256/224 architecture:
    # resize round(64*256/224) = 73, center crop 64.
    return T.Compose([T.Grayscale(3), T.Resize(73), T.CenterCrop(64), T.ToTensor(), T.Normalize(MEAN, STD)])


def pretrain(a):
    from PIL import Image
    torch.manual_seed(0)
    x, y = idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz")
    tf = transform()
    sel = np.concatenate([np.flatnonzero(y == c)[: a.per] for c in range(5)])
    xs = torch.stack([tf(Image.fromarray(x[i])) for i in sel])
    ys = torch.tensor(y[sel], dtype=torch.long)
    model = torchvision.models.shufflenet_v2_x0_5(num_classes=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, a.epochs)
    for epoch in range(a.epochs):
        model.train()
        perm = torch.randperm(len(ys))
        total, right = 0.0, 0
        for k in range(0, len(ys), 64):
            b = perm[k:k + 64]
            opt.zero_grad()
            out = model(xs[b])
            loss = torch.nn.functional.cross_entropy(out, ys[b])
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
            right += (out.argmax(1) == ys[b]).sum().item()
        sched.step()
        print(f"epoch {epoch + 1}: loss {total / len(ys):.4f} top-1 {right / len(ys):.4f}", flush=True)
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    torch.save(sd, a.out)


def export(a):
    from PIL import Image
    for split, img, lab, per in [("train", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", a.train_per),
                                 ("val", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", a.val_per)]:
        x, y = idx(img), idx(lab)
        for c in range(5, 10):
            d = os.path.join(a.out, split, NAMES[c])
            os.makedirs(d, exist_ok=True)
            for n, i in enumerate(np.flatnonzero(y == c)[:per]):
                Image.fromarray(x[i]).save(os.path.join(d, f"{n:05d}.png"))


def torch_run(a):
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    start = time.time()
    tf = transform()
    train = torchvision.datasets.ImageFolder(os.path.join(a.data, "train"), tf)
    val = torchvision.datasets.ImageFolder(os.path.join(a.data, "val"), tf)
    tl = torch.utils.data.DataLoader(train, batch_size=a.batch, shuffle=True, num_workers=0)
    vl = torch.utils.data.DataLoader(val, batch_size=a.batch, num_workers=0)
    model = torchvision.models.shufflenet_v2_x0_5(num_classes=5)
    if a.strategy != "scratch":
        sd = torch.load(a.weights)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    model.fc = torch.nn.Linear(model.fc.in_features, len(train.classes))
    if a.strategy in ("head", "partial"):
        for p in model.parameters():
            p.requires_grad_(False)
        keep = [model.fc] + ([model.conv5] if a.strategy == "partial" else [])
        for m in keep:
            for p in m.parameters():
                p.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=a.lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, a.epochs)
    for epoch in range(a.epochs):
        model.train()
        if a.strategy in ("head", "partial"):
            model.eval()  # frozen BatchNorms: the tutorial's model.eval() on the backbone
            for m in ([model.fc] + ([model.conv5] if a.strategy == "partial" else [])):
                m.train()
        for x, y in tl:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    right = n = 0
    with torch.no_grad():
        for x, y in vl:
            right += (model(x).argmax(1) == y).sum().item()
            n += len(y)
    print(json.dumps({"strategy": a.strategy, "epochs": a.epochs, "val_top1": right / n, "n": n,
                      "seconds": round(time.time() - start, 2), "threads": torch.get_num_threads()}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pretrain")
    p.add_argument("--out", default="testdata/fashion/shufflenet_fashion5.pt")
    p.add_argument("--per", type=int, default=1200)
    p.add_argument("--epochs", type=int, default=3)
    e = sub.add_parser("export")
    e.add_argument("--out", required=True)
    e.add_argument("--train-per", type=int, default=200)
    e.add_argument("--val-per", type=int, default=100)
    t = sub.add_parser("torch")
    t.add_argument("--data", required=True)
    t.add_argument("--weights", default="testdata/fashion/shufflenet_fashion5.pt")
    t.add_argument("--strategy", default="head")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--lr", type=float, default=0.01)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    a = ap.parse_args()
    {"pretrain": pretrain, "export": export, "torch": torch_run}[a.cmd](a)


if __name__ == "__main__":
    main()
