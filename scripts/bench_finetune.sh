#!/usr/bin/env bash
# bench_finetune.sh measures `ckpt finetune --strategy head` with cached
# features against the same recipe done the way PyTorch's transfer-learning
# tutorial does it (the frozen backbone run on every batch of every epoch),
# and ckpt with the cache against ckpt without it, on the README's
# Fashion-MNIST walkthrough (shufflenet_v2_x0_5 pretrained on classes 0-4 by
# testdata/gen/fashion_transfer.py, transferred to classes 5-9 at 64x64).
# It prints both ratios; the issue's targets are <= 0.2 and >= 10.
#
# Usage: scripts/bench_finetune.sh [DATA_DIR]   (default /tmp/ckpt-fashion, exported on first use)
# Needs: scripts/setup-interop.sh (torch, torchvision, dataset-fashion-mnist).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-/tmp/ckpt-fashion}
py=${CKPT_PYTHON:-/usr/bin/python3}
weights=testdata/fashion/shufflenet_fashion5.pt
[ -d "$data/train" ] || "$py" testdata/gen/fashion_transfer.py export --out "$data"
bin=$(mktemp -d)/ckpt
go build -o "$bin" ./cmd/ckpt
runs=$(mktemp -d)
trap 'rm -rf "$runs" "$(dirname "$bin")"' EXIT
seconds() { "$py" -c 'import json,sys; print(json.load(sys.stdin)["seconds"])'; }
top1() { "$py" -c 'import json,sys; d=json.load(sys.stdin); print(d["val"]["top1"] if "val" in d else d["val_top1"])'; }

ckpt() { # strategy epochs extra-flags...
	local st=$1 ep=$2; shift 2
	"$bin" finetune --arch shufflenet_v2_x0_5 --weights "$weights" --data "$data" --out "$runs/$st-$ep-$RANDOM" \
		--strategy "$st" --epochs "$ep" --image-size 64 --no-augment --lr 0.01 --batch-size 32 --json "$@" 2>/dev/null
}

c10=$(ckpt head 10)
t10=$("$py" testdata/gen/fashion_transfer.py torch --data "$data" --weights "$weights" --strategy head --epochs 10)
c30=$(ckpt head 30)
u30=$(ckpt head 30 --no-cache)
cs10=$(seconds <<<"$c10"); ts10=$(seconds <<<"$t10"); cs30=$(seconds <<<"$c30"); us30=$(seconds <<<"$u30")
printf 'head, 10 epochs   ckpt (cached) %7.1fs top-1 %.4f   torch tutorial way %7.1fs top-1 %.4f   ratio %.3f (target <= 0.2)\n' \
	"$cs10" "$(top1 <<<"$c10")" "$ts10" "$(top1 <<<"$t10")" "$("$py" -c "print($cs10/$ts10)")"
printf 'head, 30 epochs   ckpt cached   %7.1fs top-1 %.4f   ckpt uncached      %7.1fs top-1 %.4f   ratio %.1f (target >= 10)\n' \
	"$cs30" "$(top1 <<<"$c30")" "$us30" "$(top1 <<<"$u30")" "$("$py" -c "print($us30/$cs30)")"
