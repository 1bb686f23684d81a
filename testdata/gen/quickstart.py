#!/usr/bin/python3
"""Writes the small model the README's quick start verifies (testdata/quickstart/):

  squeezenet1_1.pt   torchvision's squeezenet1_1 with 10 classes and random
                     weights, saved as a float16 state_dict (1.4 MB)
  io.pt              {"input": a batch of two 96x96 images,
                      "output": what torch computes for them in eval mode
                                with those weights widened to float32}
  predict.json       top-5 classes and softmax probabilities for
                     testdata/transforms/wide.png, preprocessed by the
                     squeezenet1_1 weights' own torchvision transform

`ckpt verify testdata/quickstart/squeezenet1_1.pt --arch squeezenet1_1
 --input testdata/quickstart/io.pt:input --reference testdata/quickstart/io.pt:output`
must then report agreement.

Usage: /usr/bin/python3 quickstart.py [--out DIR] [--seed N]
"""
import argparse, json, os

import torch
import torchvision


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "quickstart"))
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(a.seed)
    model = torchvision.models.squeezenet1_1(num_classes=10).eval()
    # Store float16 weights; the reference runs on exactly those values.
    half = {k: v.half() for k, v in model.state_dict().items()}
    torch.save(half, os.path.join(a.out, "squeezenet1_1.pt"))
    model.load_state_dict({k: v.float() for k, v in half.items()})
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        y = model(x)
    torch.save({"input": x, "output": y}, os.path.join(a.out, "io.pt"))
    print("top-1 classes:", y.argmax(1).tolist())

    from PIL import Image
    image = os.path.join(os.path.dirname(__file__), "..", "transforms", "wide.png")
    preprocess = torchvision.models.SqueezeNet1_1_Weights.IMAGENET1K_V1.transforms()
    with torch.no_grad():
        p = model(preprocess(Image.open(image).convert("RGB")).unsqueeze(0)).softmax(1)[0]
    top = p.topk(5)
    with open(os.path.join(a.out, "predict.json"), "w") as f:
        json.dump({"image": "testdata/transforms/wide.png",
                   "top": [{"index": int(i), "prob": float(v)} for v, i in zip(top.values, top.indices)]}, f, indent=1)


if __name__ == "__main__":
    main()
