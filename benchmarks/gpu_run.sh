#!/usr/bin/env bash
# The whole GPU benchmark, for one call of the device tool on a lent H100/H200 (a few minutes):
#
#   bash benchmarks/gpu_kit.sh                          # here, first (fills .gpukit/)
#   device run: bash benchmarks/gpu_run.sh             # with carry [".gpukit"], timeout_s 540
#
# Installs the kit into /tmp (the original's wheels in one folder, this package's timm in another), records the
# card and the versions, and runs bench_gpu.py against the original (add --compile for torch.compile). Everything
# goes to $OUT (the device tool brings it back), or benchmarks/results/ elsewhere. Extra arguments go to
# bench_gpu.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT"
[ -d .gpukit/wheels ] || { echo ".gpukit/ is missing: run 'bash benchmarks/gpu_kit.sh' first and carry .gpukit"; exit 1; }
ORIGINAL=/tmp/imagereward-original
OURS=/tmp/imagereward-ours
PIP=(python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade)
"${PIP[@]}" --target "$ORIGINAL" .gpukit/wheels/*.whl
"${PIP[@]}" --target "$OURS" .gpukit/ours/*.whl
export PYTHONPATH="$OURS${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
  python3 -c 'import sys, torch, timm, transformers, PIL, numpy; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "timm", timm.__version__, "transformers", transformers.__version__, "pillow", PIL.__version__, "numpy", numpy.__version__)'
  nproc
} 2>&1 | tee "$OUT/machine.txt"
python3 benchmarks/bench_gpu.py --original "$ORIGINAL" --reference .gpukit/reference --files 2048 \
  --json "$OUT/gpu.json" "$@" 2>&1 | tee "$OUT/gpu.log"
