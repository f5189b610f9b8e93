#!/usr/bin/env bash
# Packs what a lent GPU machine lacks for `bench_gpu.py --original`, into .gpukit/ (git-ignored locally);
# benchmarks/gpu_run.sh installs and uses it there.
#
#   bash benchmarks/gpu_kit.sh                 # here, where pip reaches the package index
#   PYTHON_VERSION=3.11 KIT=/tmp/kit311 bash benchmarks/gpu_kit.sh   # a kit for this machine's Python (a dry run)
#
# The GPU machine (see the device tool's KINDS.md) has Python 3.12 with torch, torchvision, timm, transformers 5,
# numpy, Pillow, pandas, pyarrow, aiohttp, … but not the original `image-reward` 1.5 nor the old versions it
# needs. This fetches exactly the versions of the reference env (../shared/reference/setup_refenv.sh) that
# differ from or are missing on that machine, as wheels, to be installed there with `--target` into a folder
# that only the original's process puts first on its path (this package keeps the machine's own libraries).
# It also copies the reference harness (_refcommon.py: the tokenizer-source patch) and the BERT vocab it reads.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIT="${KIT:-$ROOT/.gpukit}"
PYTHON_VERSION="${PYTHON_VERSION:-3.12}"
REFERENCE="${REFERENCE:-$ROOT/../shared/reference}"
PYTHON="${PYTHON:-python3}"

[ -f "$REFERENCE/_refcommon.py" ] || { echo "reference harness not found at $REFERENCE (set REFERENCE=...)"; exit 1; }
rm -rf "$KIT"
mkdir -p "$KIT/wheels" "$KIT/ours" "$KIT/reference" "$KIT/parity"

# Pure-Python or abi3 wheels, pinned as in the reference env.
BINARY=(
  image-reward==1.5 timm==0.6.13 transformers==4.46.3 tokenizers==0.20.3 huggingface_hub==0.36.2
  ftfy==6.3.1 wcwidth==0.9.4 diffusers==0.31.0 importlib_metadata==10.2.0 lazy-importer==0.1.0 zipp==4.1.2 accelerate==1.1.1
  datasets==3.1.0 dill==0.3.8 multiprocess==0.70.16 fsspec==2024.9.0 setuptools==80.9.0
)
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYTHON_VERSION" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d "$KIT/wheels" "${BINARY[@]}"
# Published as source only; both are pure Python, so a wheel built here installs there.
"$PYTHON" -m pip wheel -q --no-deps -w "$KIT/wheels" fairscale==0.4.13 openai-clip==1.0.1

# This package runs on the machine's torch and transformers (5.17 there: the tests pass with it) but on the
# timm of requirements.txt (the image encoder is most of the work).
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$KIT/ours" \
  "$(grep -E '^timm==' "$ROOT/requirements.txt")"
# The training extra (diffusers, accelerate, peft: pure Python) for the ReFL benchmarks (training_gpu_run.sh).
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$KIT/ours" -r "$ROOT/requirements-train.txt"

cp "$REFERENCE/_refcommon.py" "$KIT/reference/"
# The original training code (train/src), as a bare git directory bench_train.py archives from.
git clone -q --bare "${ORIGINAL_REPO:-/work/.mirror/THUDM+ImageReward/repo}" "$KIT/ImageReward.git" 2>/dev/null || true
cp "$ROOT/imagereward/vocab/bert-base-uncased-vocab.txt" "$KIT/parity/"
ls "$KIT/wheels" "$KIT/ours"
du -sh "$KIT"
