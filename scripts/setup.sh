#!/usr/bin/env bash
# Fresh-machine set-up: a virtual environment in .venv with the pinned torch, this package (editable, with the test,
# comparison and cluster (Ray Tune) extras, every version pinned by constraints.txt) and the deepforest wheel whose data/ folder is
# the embedded demo dataset.
# Nothing downloads after this script: training, tests and the benchmark run offline.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
.venv/bin/python -m pip install -q -c constraints.txt -e ".[dev,compare,cluster]"
# The demo data: only the wheel is fetched (no dependencies); scsa_yolo reads its data/ files, it is never installed.
mkdir -p data_cache
ls data_cache/deepforest-2.1.0-*.whl >/dev/null 2>&1 || \
  .venv/bin/python -m pip download -q --no-deps deepforest==2.1.0 -d data_cache
# Build the fused SCSA CPU kernel now (about a minute, once per environment) instead of at the first CPU forward.
YOLO_OFFLINE=1 .venv/bin/python -c "from scsa_yolo.nn.scsa_fused import kernel_status; print('scsa_yolo:', kernel_status())"
