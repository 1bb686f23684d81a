#!/bin/sh
# bench-readme.sh runs the benchmarks whose figures the README quotes, one
# after the other, on an otherwise idle machine:
#   1. reading: listing and hashing a ResNet-50 state_dict (pickle)
#   2. converting ResNet-50 .pt -> .safetensors next to cp of the same bytes
#   3. the GEMM tables (nn/gemm/benchtable.sh)
#   4. model forward passes through PyTorch, ONNX Runtime and ckpt
#      (scripts/bench_reference.py)
# Needs scripts/setup-interop.sh's tools (torch makes the ResNet-50 file).
# Only ratios measured side by side in one run are worth quoting.
set -eu
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "== 1. listing and hashing ResNet-50 (pickle)"
go test -run '^$' -bench 'OpenResNet50|HashesResNet50|HashResNet50' -benchtime 20x -count 3 ./pickle/
echo "== 1b. the same through the CLI, end to end"
/usr/bin/python3 scripts/bench_cli.py
echo "== 2. converting ResNet-50 .pt -> .safetensors vs cp"
go test -run '^$' -bench 'ConvertResNet50' -benchtime 5x -count 3 ./formats/
echo "== 3. GEMM"
COUNT=3 sh nn/gemm/benchtable.sh
echo "== 4. forward passes: PyTorch, ONNX Runtime, ckpt (2 threads each)"
/usr/bin/python3 scripts/bench_reference.py --arch resnet18,resnet50,mobilenet_v2,efficientnet_b0,vgg16 --batch 1,8 --iters 12 --rounds 4 --warmup 2
