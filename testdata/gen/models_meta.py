#!/usr/bin/python3
"""Writes nn/models/torchvision_meta.json from torchvision itself: for every
ImageNet classification builder, the transforms and metadata of each of its
weights (resize size, crop size, interpolation, mean, std, parameter count,
accuracy), and the 1000 ImageNet class names
(torchvision.models._meta._IMAGENET_CATEGORIES).

Run with the interpreter that has torchvision 0.14:
    /usr/bin/python3 testdata/gen/models_meta.py [--out nn/models/torchvision_meta.json]
"""
import argparse
import json
import math
import os

import torchvision
import torchvision.models as M
from torchvision.models._meta import _IMAGENET_CATEGORIES


def weights_entry(w):
    t = w.transforms()
    entry = {
        "resize_size": int(t.resize_size[0]),
        "crop_size": int(t.crop_size[0]),
        "interpolation": t.interpolation.value,
        "mean": [float(v) for v in t.mean],
        "std": [float(v) for v in t.std],
        "num_params": int(w.meta["num_params"]),
    }
    if w.meta.get("categories"):
        entry["num_classes"] = len(w.meta["categories"])
    metrics = w.meta.get("_metrics", {}).get("ImageNet-1K", {})
    for k in ("acc@1", "acc@5"):
        if k in metrics and math.isfinite(metrics[k]):  # vgg16 IMAGENET1K_FEATURES reports NaN
            entry[k.replace("@", "")] = float(metrics[k])
    return entry


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "nn", "models", "torchvision_meta.json"))
    args = ap.parse_args()

    models = {}
    for name in M.list_models(module=M):
        ws = list(M.get_model_weights(name))
        names = [w.name for w in ws]
        default = "IMAGENET1K_V1" if "IMAGENET1K_V1" in names else M.get_model_weights(name).DEFAULT.name
        models[name] = {
            "default": default,
            "weights": {w.name: weights_entry(w) for w in ws},
        }
    out = {
        "generator": "testdata/gen/models_meta.py",
        "torchvision": torchvision.__version__,
        "models": models,
        "categories": list(_IMAGENET_CATEGORIES),
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True, allow_nan=False)
        f.write("\n")


if __name__ == "__main__":
    main()
