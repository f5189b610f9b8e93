#!/usr/bin/env bash
# Packs what a lent GPU machine lacks for `bench_bulk.py --device cuda` into .bulkkit/ (git-ignored):
# Ray (its wheel is 79 MB, over what a device call may carry, so its site folder travels trimmed of the Java
# worker jar and the dashboard's source maps, xz-compressed, ~31 MB), the jsonschema family Ray needs, and
# this package's timm. The machine has Python 3.12 with torch, pandas, pyarrow, click, msgpack, protobuf, ...
#
#   bash benchmarks/bulk_kit.sh           # here, where pip reaches the package index
#   device run: bash benchmarks/bulk_gpu_run.sh    with carry [".bulkkit"], tests/fixtures moved away first
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIT="$ROOT/.bulkkit"
PY=3.12
rm -rf "$KIT" && mkdir -p "$KIT/wheels"
WORK="$(mktemp -d)"
DL=(python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" --implementation cp
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64)
"${DL[@]}" -d "$WORK" ray==2.60.0
mkdir "$WORK/site" && (cd "$WORK/site" && unzip -q "$WORK"/ray-*.whl && rm -rf ray/jars && find . -name '*.js.map' -delete)
tar -cJf "$KIT/ray-site.tar.xz" -C "$WORK/site" .
"${DL[@]}" -d "$KIT/wheels" jsonschema==4.25.1 jsonschema-specifications==2025.9.1 referencing==0.37.0 \
  rpds-py==0.28.0 timm==1.0.31
rm -rf "$WORK"
du -sh "$KIT"
