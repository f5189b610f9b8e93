"""What listing a bulk run's inputs costs the machine that runs `imagereward bulk`: time and peak memory.

    python benchmarks/bulk_listing.py --images 2048

Writes 512x512 files (half JPEG, half PNG), packs them into one WebDataset shard (`<key>.<ext>` + `<key>.txt`)
and into a Parquet manifest holding the bytes (row groups of 100, as Hugging Face `datasets` writes images),
then lists each input (`bulk.read_rows`) in a fresh process: its seconds, and its peak resident memory against
a process that only imports `imagereward.bulk`. Listing reads headers and prompts, never the images, so the
peak should stay at the import's whatever the inputs weigh.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import PROMPT  # noqa: E402
from bench_gpu import write_images  # noqa: E402

# argv: the prompt ("" for none), then the inputs (none: only the import is measured). The peak is VmHWM (Linux),
# not ru_maxrss, which a child inherits from the process that forked it.
LIST = """
import json, re, sys, time
import imagereward.bulk as bulk
t = time.perf_counter()
rows = bulk.read_rows(sys.argv[2:], sys.argv[1] or None) if sys.argv[2:] else []
print(json.dumps({"rows": len(rows), "seconds": time.perf_counter() - t,
                  "peak_mb": int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read())[1]) / 1024}))
"""


def make_inputs(work: Path, images: int) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = work / "images"
    folder.mkdir()
    paths = sorted(Path(p) for p in write_images(folder, images))
    shard = work / "shard-000.tar"
    with tarfile.open(shard, "w") as tar:
        for k, path in enumerate(paths):
            tar.add(path, arcname=f"{k:06d}{path.suffix}")
            prompt = work / f"{k:06d}.txt"
            prompt.write_text(PROMPT)
            tar.add(prompt, arcname=prompt.name)
            prompt.unlink()
    manifest = work / "manifest.parquet"
    table = pa.table({"prompt": [PROMPT] * len(paths), "image": [p.read_bytes() for p in paths]})
    pq.write_table(table, manifest, row_group_size=100)
    return {"shard": shard, "parquet_bytes": manifest, "folder": folder}


def listing(*inputs: Path, prompt: str = "") -> dict:
    """`bulk.read_rows(inputs, prompt)` in a fresh process: rows, seconds, peak resident MB."""
    command = [sys.executable, "-c", LIST, prompt, *map(str, inputs)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--json", help="also write the report here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bulk-listing-"))
    inputs = make_inputs(work, args.images)
    report: dict = {"images": args.images, "import_only": listing()}
    for name, path in inputs.items():
        size = sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size
        report[name] = {"input_mb": size / 2**20, **listing(path, prompt=PROMPT if name == "folder" else "")}
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
