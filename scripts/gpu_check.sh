#!/usr/bin/env bash
# One-command GPU check, from a fresh checkout: set-up as the README does, the GPU tests, the GPU speed table.
#
#   bash scripts/gpu_check.sh [OUT_DIR]        (default OUT_DIR: gpu_check/)
#
# Writes OUT_DIR/card.txt (nvidia-smi and torch's view of the card), OUT_DIR/tests.txt and OUT_DIR/speed.md (the
# markdown tables of `scsa-yolo speed --device cuda`, to paste into docs/speed.md). Aims at under 5 minutes on one
# GPU after set-up (set-up time is pip's download time: torch alone is several GB).
# SKIP_SETUP=1 uses an existing .venv (or PYTHON=/path/to/python with this package installed) instead of
# scripts/setup.sh, for machines without network access.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu_check}
mkdir -p "$OUT"

if [ "${SKIP_SETUP:-0}" != "1" ]; then
  bash scripts/setup.sh
fi
PY=${PYTHON:-.venv/bin/python}
# Ultralytics resolves two DNS names at import unless told it is offline: on a machine without network that can
# stall every Python start below for the resolver's timeouts.
export YOLO_OFFLINE=1

# The card, and a clear stop where torch sees none (the tests would only skip and the bench would refuse).
{ command -v nvidia-smi >/dev/null && nvidia-smi -L; "$PY" - <<'EOF'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit(f"gpu_check: torch {torch.__version__} sees no CUDA device; nothing to check")
props = torch.cuda.get_device_properties(0)
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}: {props.name}, {props.total_memory / 2**30:.0f} GiB, "
      f"compute capability {props.major}.{props.minor}")
EOF
} | tee "$OUT/card.txt"

# GPU tests: the Triton kernel on CUDA tensors (the same tests that run under the interpreter elsewhere, plus the
# CUDA-only ones), the CPU kernel and PyTorch-op paths against the reference, and the speed bench's bookkeeping.
# A test failure does not stop the speed table; it sets the exit status.
set +e
SCSA_YOLO_CUDA_KERNEL=1 "$PY" -m pytest -q -rs tests/test_scsa_triton.py tests/test_scsa_fast.py tests/test_speed.py \
  2>&1 | tee "$OUT/tests.txt"
tests_status=${PIPESTATUS[0]}
set -e

# The speed table: module (3 neck shapes, batch 1 and 16, fp32 and AMP, fwd and fwd+bwd) and whole model
# (inference batch 1 and 32, AMP train step at batch 16), plain vs SCSA fused / ops / reference.
"$PY" scripts/bench_speed.py --device cuda 2>&1 | tee "$OUT/speed.md"
echo "gpu_check: tests exit status $tests_status; results in $OUT/"
exit "$tests_status"
