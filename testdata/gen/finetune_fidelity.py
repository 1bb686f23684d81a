#!/usr/bin/python3
"""Reference fine-tuning runs in torch for package train's interop test.

Usage:
  /usr/bin/python3 testdata/gen/finetune_fidelity.py --seed S --out-dir D [--arch resnet18]
      [--size 32] [--batch 16] [--steps 100] [--classes 3] [--lr 0.0002]
      [--strategies full,partial,head] [--pretrain 300] [--segment K [--handshake]] [--onnx]

Writes into D:
  backbone.pt   the "pretrained" weights (torch.save(model.state_dict())):
                torchvision's ARCH(num_classes=1000) from seeded random
                weights, pretrained for PRETRAIN SGD steps (batches of 32,
                lr 0.05, momentum 0.9, weight decay 1e-4, BatchNorm in
                training mode; BatchNorm biases drawn apart from 0 first) on
                synthetic images of 1000 classes (see templates), so that fine-tuning starts, as it does in use,
                from a trained network. With --pretrain 0 the random weights
                with perturbed BatchNorm statistics instead: a network that
                fine-tuning does not train smoothly (see losses.json).
  backbone.onnx with --onnx: the same model exported from eval mode with
                training=TrainingMode.PRESERVE and no constant folding (every
                BatchNorm a node of its own, dynamic batch, opset 13), which
                ckpt imports and trains as the same function. With --pretrain
                0, --onnx also sets every BatchNorm's weight and bias apart
                from 1 and 0 (the export would merge equal initializers into
                one), from a generator of its own, so the batches are the
                same as without.
  initial.pt    the same model with its classifier replaced by a new
                nn.Linear(in, CLASSES) in torch's initialisation: what both
                sides start from.
  batches.pt    {"x": [K, B, 3, S, S], "y": [K, B] (int64)}: K distinct batches,
                used in order, cycling, for STEPS steps: synthetic images of
                CLASSES classes (templates, from a generator of their own).
  losses.json   {"head": [...], "partial": [...], "full": [...]}: the loss of
                every SGD step (momentum 0.9, lr LR) for each strategy:
                  head     everything but the classifier frozen
                           (requires_grad False, modules in eval mode);
                  partial  the last stage (resnet's layer4) and the
                           classifier trained, the rest frozen as in head;
                  full     everything trained, BatchNorm in training mode.
                From the pretrained backbone these runs are smooth: torch's
                own float32 and float64 runs of full agree within 1.4e-6
                over 100 steps (seed 1). From --pretrain 0's random backbone
                partial's and full's runs amplify float32 rounding (torch's
                float32 and float64 full runs part by more than 1e-4 within
                about a dozen steps): a test of those restarts them from the
                states below; finetune_fidelity_diag.py replays a run in both
                precisions to look into a miss.
  full_<S>.pt, partial_<S>.pt
                with --segment K, for S = K, 2K, ... up to STEPS (and STEPS
                itself; --segment STEPS writes the final state only): the training state of the (float32) full and
                partial runs after their first S steps,
                torch.save({"model": model.state_dict(),
                "optimizer": opt.state_dict()}) (weights, BatchNorm running
                statistics and SGD momentum buffers): what a teacher-forced
                implementation restarts each K-step segment from, and what
                it is compared with at the segment's end. About 90 MB each
                for resnet18 (partial's too: it saves the whole model).
                With --handshake the script prints each file's path on a
                line of stdout once written, and before writing the next
                one waits for a line on stdin (the reader has loaded and
                removed the last), so at most two are on disk at a time.
"""
import argparse, json, os, sys
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from finetune_onnx_backbone import export  # noqa: E402


def perturb_bn(model, g):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))


def templates(n, classes, size, g):
    """n synthetic images of `classes` classes and their labels: each class a
    smooth random pattern (4x4 Gaussian values, bilinearly upsampled), plus
    per-image smooth noise (at a quarter of the size, upsampled) of half its
    scale and fine Gaussian noise of a tenth."""
    up = lambda t: torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    t = up(torch.randn(classes, 3, 4, 4, generator=g))
    y = torch.randint(0, classes, (n,), generator=g)
    noise = up(torch.randn(n, 3, max(size // 4, 1), max(size // 4, 1), generator=g))
    return t[y] + 0.5 * noise + 0.1 * torch.randn(n, 3, size, size, generator=g), y


def pretrain(model, steps, size, seed):
    """Trains model (1000 classes) for steps SGD steps on templates."""
    g = torch.Generator().manual_seed(seed)
    x, y = templates(32 * steps, 1000, size, g)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    model.train()
    for s in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[32 * s:32 * (s + 1)]), y[32 * s:32 * (s + 1)]).backward()
        opt.step()


def classifier_path(arch):
    return {"resnet18": "fc", "mobilenet_v2": "classifier.1", "mobilenet_v3_small": "classifier.3"}[arch]


def get(model, path):
    for p in path.split("."):
        model = getattr(model, p) if not p.isdigit() else model[int(p)]
    return model


def set_(model, path, new):
    parts = path.split(".")
    parent = get(model, ".".join(parts[:-1])) if len(parts) > 1 else model
    if parts[-1].isdigit():
        parent[int(parts[-1])] = new
    else:
        setattr(parent, parts[-1], new)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--distinct", type=int, default=100)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.0002)
    ap.add_argument("--strategies", default="full,partial,head",
                    help="comma-separated runs to make, in order (default all three)")
    ap.add_argument("--pretrain", type=int, default=300, help="pretraining steps of the backbone (0: random weights)")
    ap.add_argument("--segment", type=int, default=0, help="write full's and partial's training state every K steps")
    ap.add_argument("--handshake", action="store_true", help="announce each state file and wait for it to be taken")
    ap.add_argument("--onnx", action="store_true", help="also write backbone.onnx, the BatchNorm-preserving export")
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed + 1)
    model = getattr(torchvision.models, a.arch)(num_classes=1000)
    if a.pretrain > 0:
        # BatchNorm biases apart from 0 before pretraining: a block's bn2 and
        # its downsample's BatchNorm get the same bias gradient, so from equal
        # biases they stay equal, and the ONNX export would merge the two.
        with torch.no_grad():
            gb = torch.Generator().manual_seed(a.seed + 2)
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.bias.copy_(0.01 * torch.randn(m.bias.shape, generator=gb))
        pretrain(model, a.pretrain, a.size, a.seed + 3)
    else:
        with torch.no_grad():
            perturb_bn(model, g)
    with torch.no_grad():
        if a.onnx and a.pretrain == 0:
            ga = torch.Generator().manual_seed(a.seed + 2)
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=ga))
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=ga))
    torch.save(model.state_dict(), os.path.join(a.out_dir, "backbone.pt"))
    if a.onnx:
        export(model.eval(), os.path.join(a.out_dir, "backbone.onnx"), a.size, True)
        model.train()
    head = classifier_path(a.arch)
    old = get(model, head)
    set_(model, head, torch.nn.Linear(old.in_features, a.classes))
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(model.state_dict(), os.path.join(a.out_dir, "initial.pt"))
    x, y = templates(a.distinct * a.batch, a.classes, a.size, g)
    x = x.view(a.distinct, a.batch, 3, a.size, a.size)
    y = y.view(a.distinct, a.batch)
    torch.save({"x": x, "y": y}, os.path.join(a.out_dir, "batches.pt"))

    losses = {}
    announced = False  # a state file is out, not yet taken
    for strategy in a.strategies.split(","):
        if strategy not in ("head", "partial", "full"):
            sys.exit("finetune_fidelity.py: unknown strategy %r (want head, partial or full)" % strategy)
        model.load_state_dict(initial, strict=True)
        strategy_name = strategy
        for p in model.parameters():
            p.requires_grad_(strategy == "full")
        keep = [head] + (["layer4"] if strategy == "partial" else [])
        for k in keep:
            for p in get(model, k).parameters():
                p.requires_grad_(True)
        model.train()
        if strategy != "full":
            for name, m in model.named_modules():
                inside = any(name == k or name.startswith(k + ".") for k in keep)
                above = any(k.startswith(name + ".") for k in keep) or name == ""
                if not inside and not above:
                    m.eval()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=a.lr, momentum=0.9)
        crit = torch.nn.CrossEntropyLoss()
        out = []
        segment = a.segment if strategy_name in ("full", "partial") else 0
        for step in range(a.steps):
            k = step % a.distinct
            opt.zero_grad()
            loss = crit(model(x[k]), y[k])
            loss.backward()
            opt.step()
            out.append(loss.item())
            if segment > 0 and ((step + 1) % segment == 0 or step + 1 == a.steps):
                if a.handshake and announced and not sys.stdin.readline():
                    sys.exit("finetune_fidelity.py: stdin closed before the last state was taken")
                path = os.path.join(a.out_dir, "%s_%d.pt" % (strategy_name, step + 1))
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, path)
                if a.handshake:
                    print(path, flush=True)
                    announced = True
        losses[strategy_name] = out
    with open(os.path.join(a.out_dir, "losses.json"), "w") as f:
        json.dump({"arch": a.arch, "seed": a.seed, "lr": a.lr, "classes": a.classes, "pretrain": a.pretrain,
                   "losses": losses}, f)


if __name__ == "__main__":
    main()
