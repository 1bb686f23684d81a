#!/usr/bin/python3
"""Evaluate a ckpt finetune run's best.pt in torch, for package train's
interop test (the accuracy metrics.json reports must be torch's).

Usage: finetune_eval_check.py RUN VAL_DIR

Builds torchvision's ARCH(num_classes=N) from RUN/config.json (a ViT with
image_size set to the crop), loads
RUN/best.pt with load_state_dict(strict=True), preprocesses the images of
VAL_DIR (an ImageFolder whose class folders are the run's classes) with
PIL and torchvision's transforms as config.json's "preprocess" records
them, and prints {"top1", "top5", "loss", "n", "confusion"} as JSON, with
"record": best.pt's metadata record (archive/extra/ckpt_metadata.json) as
Python's zipfile and json read it, its "classes" and "preprocess" decoded
from their JSON strings, or null when best.pt has none.
"""
import json, os, sys, zipfile
import torch
import torchvision
from torchvision import transforms as T


def main():
    run, val = sys.argv[1], sys.argv[2]
    cfg = json.load(open(os.path.join(run, "config.json")))
    p = cfg["preprocess"]
    interp = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}[p["interpolation"]]
    tf = T.Compose([T.Resize(p["resize"], interpolation=interp), T.CenterCrop(p["crop"]), T.ToTensor(), T.Normalize(p["mean"], p["std"])])
    classes = cfg["classes"]
    kw = {"image_size": p["crop"]} if cfg["arch"].startswith("vit_") else {}  # ViT: built for the crop
    model = getattr(torchvision.models, cfg["arch"])(num_classes=len(classes), **kw)
    model.load_state_dict(torch.load(os.path.join(run, "best.pt")), strict=True)
    model.eval()
    ds = torchvision.datasets.ImageFolder(val, tf)
    remap = [classes.index(c) for c in ds.classes]
    n, top1, top5, loss = 0, 0, 0, 0.0
    conf = [[0] * len(classes) for _ in classes]
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(ds, batch_size=16):
            y = torch.tensor([remap[int(v)] for v in y])
            out = model(x).double()
            loss += torch.nn.functional.cross_entropy(out, y, reduction="sum").item()
            k = min(5, len(classes))
            top = out.topk(k, 1).indices
            for i in range(len(y)):
                top1 += int(top[i, 0] == y[i])
                top5 += int((top[i] == y[i]).any())
                conf[int(y[i])][int(top[i, 0])] += 1
            n += len(y)
    print(json.dumps({"top1": top1 / n, "top5": top5 / n, "loss": loss / n, "n": n, "confusion": conf,
                      "record": read_record(os.path.join(run, "best.pt"))}))


def read_record(path):
    with zipfile.ZipFile(path) as z:
        name = z.namelist()[0].split("/")[0] + "/extra/ckpt_metadata.json"
        if name not in z.namelist():
            return None
        meta = json.loads(z.read(name))
    assert all(isinstance(v, str) for v in meta.values()), meta
    for k in ("classes", "preprocess"):
        meta[k] = json.loads(meta[k])
    return meta


if __name__ == "__main__":
    main()
