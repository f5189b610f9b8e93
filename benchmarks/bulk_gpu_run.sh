#!/usr/bin/env bash
# `imagereward bulk` on one GPU against the package's own end-to-end rate, in one device call (see bulk_kit.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT" /tmp/site
tar -xJf .bulkkit/ray-site.tar.xz -C /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .bulkkit/wheels/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  python3 -c 'import sys, torch, ray, timm, transformers; print(sys.version.split()[0], "torch", torch.__version__, "ray", ray.__version__, "timm", timm.__version__, "transformers", transformers.__version__)'
  nproc
} 2>&1 | tee "$OUT/machine.txt"
python3 benchmarks/bench_bulk.py --device cuda --images "${IMAGES:-32768}" --json "$OUT/bulk_gpu.json" "$@" 2>&1 | tee "$OUT/bulk_gpu.log"
