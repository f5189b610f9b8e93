"""What listing a bulk run's inputs costs the machine that runs `imagereward bulk`: time and peak memory.

    python benchmarks/bulk_listing.py --images 2048
    python benchmarks/bulk_listing.py --images 0 --manifest-rows 1000000     # a large manifest of paths

Writes 512x512 files (half JPEG, half PNG), packs them into one WebDataset shard (`<key>.<ext>` + `<key>.txt`)
and into a Parquet manifest holding the bytes (row groups of 100, as Hugging Face `datasets` writes images),
then lists each input (`bulk.read_rows`) in a fresh process: its seconds, and its peak resident memory against
a process that only imports what listing needs (`imagereward.bulk`, `imagereward.images.reading`). Listing reads
headers and prompts, never the images, so the peak should stay at the import's whatever the inputs weigh.
`--manifest-rows N`: a Parquet manifest of N paths
(the images need not exist), listed and then made into the Ray dataset a run starts from (`bulk.rows_dataset`,
on a local Ray): what the number of rows, not their images, costs the driver.
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

# argv: "dataset" or "", the prompt ("" for none), then the inputs (none: only the import is measured). The peak
# is VmHWM (Linux), not ru_maxrss, which a child inherits from the process that forked it.
LIST = """
import json, os, re, sys, tempfile, time
import imagereward.bulk as bulk, imagereward.images.reading  # all that listing imports (torch, for the image suffixes)
peak = lambda: int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read())[1]) / 1024
t = time.perf_counter()
rows = bulk.read_rows(sys.argv[3:], sys.argv[2] or None) if sys.argv[3:] else []
report = {"rows": len(rows), "seconds": time.perf_counter() - t, "peak_mb": peak()}
if sys.argv[1]:
    import ray
    ray.init(num_cpus=os.cpu_count(), _temp_dir=os.path.join(tempfile.gettempdir(), f"ray-{os.getuid()}"),
             include_dashboard=False, log_to_driver=False, configure_logging=False)
    t = time.perf_counter()
    bulk.rows_dataset(rows)
    report.update(dataset_seconds=time.perf_counter() - t, dataset_peak_mb=peak())
print(json.dumps(report))
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


def paths_manifest(work: Path, rows: int) -> Path:
    """A Parquet manifest of `rows` ids, prompts (5,000 distinct) and image paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    manifest = work / "paths.parquet"
    table = {
        "id": [f"gen-{k:09d}" for k in range(rows)],
        "prompt": [f"{PROMPT}, variation {k % 5000}" for k in range(rows)],
        "image": [f"images/{k // 1000:06d}/{k:09d}.png" for k in range(rows)],
    }
    pq.write_table(pa.table(table), manifest)
    return manifest


def listing(*inputs: Path, prompt: str = "", dataset: bool = False) -> dict:
    """`bulk.read_rows(inputs, prompt)` in a fresh process: rows, seconds, peak resident MB; with `dataset`, then
    `bulk.rows_dataset` of them, its seconds and the peak after it."""
    command = [sys.executable, "-c", LIST, "dataset" if dataset else "", prompt, *map(str, inputs)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--manifest-rows", type=int, default=0, help="also a Parquet manifest of this many paths")
    ap.add_argument("--json", help="also write the report here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bulk-listing-") as tmp:  # a 1.5 GB shard and manifest
        work = Path(tmp)
        report: dict = {"images": args.images, "import_only": listing()}
        for name, path in (make_inputs(work, args.images) if args.images else {}).items():
            size = sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size
            report[name] = {"input_mb": size / 2**20, **listing(path, prompt=PROMPT if name == "folder" else "")}
        if args.manifest_rows:
            report["manifest_of_paths"] = listing(paths_manifest(work, args.manifest_rows), dataset=True)
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
