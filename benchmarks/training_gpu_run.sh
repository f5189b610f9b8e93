#!/usr/bin/env bash
# The training GPU measurements, for one call of the device tool on a lent H100/H200 (about 6 minutes):
#
#   bash benchmarks/gpu_kit.sh                                # here, first (fills .gpukit/)
#   device run: bash benchmarks/training_gpu_run.sh          # with carry [".gpukit"], timeout_s 540
#
# A ReFL step at batch 8, with and without gradient checkpointing: this package's against the original trainer's
# (its wheels from the kit, first on its own path) on the mid-size pipeline (bench_refl.py --size mid: seconds a
# step and both peak memories), then this package's at Stable Diffusion 1.5's size (refl_sd15_cost.py: the rollout,
# the trained step, steps per second, the GPU's peak memory); then the reward model's training step at full size,
# batch 64, against the original train/ code (bench_train.py --size full: pairs per second, peak memory, the
# frozen-feature cache's second pass; the original's source from the kit's copy). Results go to $OUT.
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
export IMAGEREWARD_REFERENCE="$PWD/.gpukit/reference"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/machine.txt" || true
python3 benchmarks/bench_refl.py --size mid --device cuda --batch 8 --steps 4 --threads "$(nproc)" \
  --original-python python3 --original-path "$ORIGINAL" 2>&1 | tee "$OUT/refl_mid.log"
python3 benchmarks/refl_sd15_cost.py --device cuda --batch 8 --threads "$(nproc)" 2>&1 | tee "$OUT/refl_sd15.log"
python3 benchmarks/bench_train.py --size full --device cuda --batch 64 --steps 5 --threads "$(nproc)" \
  --original-python python3 --original-path "$ORIGINAL" --original-repo .gpukit/ImageReward.git 2>&1 | tee "$OUT/train_full.log"
cp benchmarks/runs/refl_step_mid_cuda.json benchmarks/runs/refl_sd15_cost_cuda.json \
  benchmarks/runs/train_step_full_cuda.json "$OUT/" 2>/dev/null || true
