"""Bulk scoring where decoding is the work, as on a GPU node, measured on any machine (no GPU needed).

On a GPU node `imagereward bulk` is bound by decoding (~13 ms of CPU per 512 px file; an H100 scores faster
than 16 cores decode), so its rate is how many decoding tasks Ray Data keeps running beside the model actor.
This runs `bulk_score`'s real pipeline on a node declared as `--cpus` logical CPUs and one logical GPU, with
the model actor holding the tiny test model on the CPU (the GPU is only its reservation, so the model's cost
is near nothing, as a GPU's is beside decoding), and each decoding task recording when it ran. Against it,
the package's own `model.rewards` on the same files with the same tiny model (one decoding process per core).

Reports: the package's images/s; bulk's whole-run and steady (after the first result batch) images/s; the
decoding tasks' peak and mean concurrency and their images/s from the first start to the last end.

    python benchmarks/bulk_schedule.py --cpus 2 --images 8192                   # this machine's real cores
    python benchmarks/bulk_schedule.py --cpus 2 --images 8192 --actor-cpus 1    # the actor reserving a core
    python benchmarks/bulk_schedule.py --cpus 16 --images 4096                  # scheduling of a 16-core node
    python benchmarks/bulk_schedule.py --cpus 2 --images 8192 --actor-start 20  # a GPU actor's start-up
    python benchmarks/bulk_schedule.py --cpus 2 --images 4096 --input parquet   # the images inside a manifest
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import PROMPT  # noqa: E402
from bench_bulk import package_rate  # noqa: E402
from bench_gpu import write_images  # noqa: E402
from bulk_timing import steady_rate, timed  # noqa: E402

import imagereward.bulk as bulk  # noqa: E402

TINY = ROOT / "tests" / "fixtures" / "parity"


class TinyOnCpu(bulk.ScoreActor):
    """The real actor, holding the tiny test model on the CPU whatever device it is given, and taking
    `START_S` seconds more to start (a GPU actor's imports, CUDA start and weights: ~20 s measured on an H100)."""

    START_S = 0.0

    def __init__(self, judges, model, device, dtype, download_root) -> None:
        import torch

        time.sleep(self.START_S)
        super().__init__(judges, str(TINY / "ImageReward.pt"), "cpu", None, None)
        torch.set_num_threads(1)


def pack(work: Path, kind: str) -> Path:
    """The folder `work/images` as bulk's input `kind`: itself, one WebDataset shard, or one Parquet manifest
    holding the images in a single row group."""
    folder = work / "images"
    files = sorted(folder.iterdir())
    if kind == "shard":
        with tarfile.open(work / "shard.tar", "w") as tar:
            for k, path in enumerate(files):
                tar.add(path, arcname=f"{k:06d}{path.suffix}")
        return work / "shard.tar"
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"prompt": [PROMPT] * len(files), "image": [p.read_bytes() for p in files]})
        pq.write_table(table, work / "manifest.parquet", row_group_size=len(files))
        return work / "manifest.parquet"
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpus", type=int, default=16, help="logical CPUs of the node Ray is told about")
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--actor-cpus", type=float, default=bulk.GPU_ACTOR_CPUS, help="CPUs the model actor reserves")
    ap.add_argument("--actor-start", type=float, default=0.0, help="seconds the model actor takes to start, more")
    ap.add_argument(
        "--input",
        choices=["folder", "shard", "parquet"],
        default="folder",
        help="how bulk gets the images: the folder, one WebDataset shard, or one Parquet manifest holding them"
        " in a single row group (the package always reads the folder)",
    )
    ap.add_argument("--json", help="also write the report here")
    args = ap.parse_args()
    import ray

    with tempfile.TemporaryDirectory(prefix="bulk-schedule-") as tmp:  # gigabytes of images: never left behind
        work = Path(tmp)
        (work / "images").mkdir()
        write_images(work / "images", args.images)
        inputs = pack(work, args.input)
        ray.init(
            num_cpus=args.cpus,
            num_gpus=1,
            _temp_dir=str(Path(tempfile.gettempdir()) / f"ray-{os.getuid()}"),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
        paths = [str(p) for p in sorted((work / "images").iterdir())]
        package = package_rate(TINY / "ImageReward.pt", paths, "cpu", args.batch_size)["steady_images_per_s"]
        bulk.GPU_ACTOR_CPUS = args.actor_cpus  # type: ignore[misc]
        TinyOnCpu.START_S = args.actor_start
        arrivals: list[tuple[float, int]] = []
        with timed(bulk, work / "timeline", actor=TinyOnCpu) as timeline:
            t = time.perf_counter()
            summary = bulk.bulk_score(
                [inputs],
                work / "out",
                prompt=PROMPT,
                device="cuda",
                batch_size=args.batch_size,
                progress=False,
                on_batch=lambda _, rows: arrivals.append((time.perf_counter(), rows)),
            )
            wall = time.perf_counter() - t
        report = {
            "cpus_declared": args.cpus,
            "cpus_here": os.cpu_count(),
            "actor_cpus": args.actor_cpus,
            "actor_start_s": args.actor_start,
            "input": args.input,
            "images": args.images,
            "written": summary.written,
            "package_images_per_s": package,
            "bulk_wall_s": wall,
            "bulk_images_per_s": summary.written / wall,
            "bulk_steady_images_per_s": steady_rate(arrivals, wall),
            **timeline.report(),
        }
        report["decode_images_per_s"] = args.images / report["decode"]["first_start_to_last_end_s"]
        print(json.dumps(report, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
