#!/usr/bin/env bash
# setup-interop.sh installs the reference implementations that ckpt's interop
# tests and benchmarks compare against, and prints the environment to use them:
#
#   PyTorch 1.13, torchvision 0.14 and onnx 1.12   Debian packages, for /usr/bin/python3
#   OpenBLAS (OpenMP build)                         Debian's libopenblas0-openmp: without it Debian's torch
#                                                   runs Linear/matmul on the reference BLAS, 4-7x slower
#                                                   (vit_b_16: 12.7 s of CPU a pass against 1.9 s)
#   Pillow with WebP (libwebp), and cwebp           Debian's python3-pil and webp, for the image decoding tests
#   Fashion-MNIST                                   Debian's dataset-fashion-mnist (the README's
#                                                   transfer-learning walkthrough)
#   ONNX Runtime 1.20.1 for Node.js                 npm package onnxruntime-node (CPU library inside)
#
# It is idempotent: what is already installed is left alone. Run it as root
# (apt-get). Afterwards:  eval "$(scripts/setup-interop.sh --env)"
#
# Usage: scripts/setup-interop.sh [--env]
# Env:   CKPT_ORT_DIR  where onnxruntime-node goes (default $HOME/.cache/ckpt-interop/ort)
set -euo pipefail

ort_dir=${CKPT_ORT_DIR:-${HOME:-/root}/.cache/ckpt-interop/ort}
py=/usr/bin/python3

print_env() {
	echo "export CKPT_PYTHON=$py"
	# OpenBLAS 0.3.21 takes CPUs it does not know (VMs report odd models)
	# for a Prescott and runs SSE3 kernels: name the core from the flags
	# (197x768x3072 on one thread: 20 GFLOP/s as Prescott, 85 as SkylakeX).
	if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
		echo "export OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE"
	elif grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
		echo "export OPENBLAS_CORETYPE=SkylakeX"
	elif grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
		echo "export OPENBLAS_CORETYPE=Haswell"
	fi
	echo "export CKPT_ORT_DIR=$ort_dir"
	echo "export NODE_PATH=$ort_dir/node_modules"
}

have_torch() { [ -x "$py" ] && "$py" -c 'import torch, torchvision, onnx, numpy' >/dev/null 2>&1; }
have_pil_webp() { [ -x "$py" ] && "$py" -c 'import sys, PIL.features; sys.exit(not PIL.features.check("webp"))' >/dev/null 2>&1 && command -v cwebp >/dev/null; }
have_ort() { [ -f "$ort_dir/node_modules/onnxruntime-node/package.json" ]; }
have_openblas() { dpkg -s libopenblas0-openmp >/dev/null 2>&1; }
have_fashion() { [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; }

if ! have_torch; then
	echo "setup-interop: installing python3-torch, python3-torchvision, python3-onnx (apt-get)" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends \
		python3-torch python3-torchvision python3-onnx python3-numpy >&2
fi
if ! have_openblas; then
	echo "setup-interop: installing libopenblas0-openmp, torch's BLAS (apt-get)" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends libopenblas0-openmp >&2
fi
if ! have_pil_webp; then
	echo "setup-interop: installing python3-pil, libwebp and cwebp (apt-get)" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends python3-pil libwebp7 libwebpdemux2 libwebpmux3 webp >&2
fi
if ! have_fashion; then
	echo "setup-interop: installing dataset-fashion-mnist (apt-get)" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >&2
fi
if ! have_ort; then
	command -v npm >/dev/null || { echo "setup-interop: npm is required for onnxruntime-node" >&2; exit 1; }
	echo "setup-interop: installing onnxruntime-node@1.20.1 into $ort_dir (npm, --ignore-scripts)" >&2
	mkdir -p "$ort_dir"
	# --ignore-scripts: the package's install script would try to download GPU builds;
	# the CPU library is already inside the package.
	(cd "$ort_dir" && { [ -f package.json ] || echo '{"private": true}' > package.json; } &&
		npm install --silent --no-audit --no-fund --ignore-scripts onnxruntime-node@1.20.1 >&2)
fi
have_torch || { echo "setup-interop: torch still not importable by $py" >&2; exit 1; }
have_pil_webp || { echo "setup-interop: Pillow for $py still lacks WebP, or cwebp is missing" >&2; exit 1; }
have_ort || { echo "setup-interop: onnxruntime-node missing in $ort_dir" >&2; exit 1; }
have_openblas || { echo "setup-interop: libopenblas0-openmp is not installed" >&2; exit 1; }

if [ "${1:-}" = "--env" ]; then
	print_env
else
	"$py" -c 'import torch, torchvision, onnx; print("torch", torch.__version__, "torchvision", torchvision.__version__, "onnx", onnx.__version__)' >&2
	echo "onnxruntime-node in $ort_dir/node_modules" >&2
	print_env
fi
