#!/usr/bin/env bash
# Writes ONNX's own backend conformance test cases into OUTDIR (OUTDIR/node: 922 operator test models
# with test_data_set_*/input_*.pb and output_*.pb TensorProtos; OUTDIR/simple, OUTDIR/real), using
# Debian's python3-onnx 1.12. formats/onnx's TestNodeCasesRoundTrip reads and writes every one of them
# back; it runs this script into a temporary directory (about 30 MB, some seconds), or uses
# $CKPT_ONNX_NODE_CASES when that names a directory made by this script.
# The generator in onnx 1.12 uses numpy aliases that numpy 1.24 removed; they are restored for it alone.
# Usage: onnx_node_cases.sh OUTDIR
set -euo pipefail
OUT=${1:?usage: onnx_node_cases.sh OUTDIR}
/usr/bin/python3 - "$OUT" <<'PY' 2>/dev/null
import sys, warnings
warnings.filterwarnings("ignore")
import numpy as np
for name, alias in (("float", float), ("int", int), ("bool", bool), ("object", object), ("complex", complex)):
    if name not in np.__dict__:
        setattr(np, name, alias)
from onnx.backend.test.cmd_tools import main
sys.argv = ["onnx_node_cases", "generate-data", "-o", sys.argv[1]]
main()
PY
echo "$(ls "$OUT/node" | wc -l) node test cases in $OUT/node"
