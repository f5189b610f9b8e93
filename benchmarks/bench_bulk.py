"""`imagereward bulk` (Ray Data) against the package's own end-to-end scoring of the same files, in one run.

    python benchmarks/bench_bulk.py --images 512 --device cpu          # this machine
    python benchmarks/bench_bulk.py --images 32768 --device cuda       # a GPU machine (bulk_gpu_run.sh)

Both sides load one full-size checkpoint (ViT-L/16 + BERT-base, seeded random weights, made once by
bench.make_checkpoint) and score the same folder of 512x512 files (half JPEG, half PNG) for one prompt:

- `score`: `imagereward score FOLDER` as the command line runs it (model load included), and the package's
  steady rate (`model.rewards` on the files, decoding included, after a warm-up);
- `bulk`: `bulk_score` on one batch of the files first (its wall time is the start-up cost: Ray starting, the
  actor loading the model), then on the whole folder (its images/s include the actor loading the model again).
  `bulk_vs_score_cli_wall` compares the command line's wall time with both bulk runs together. The whole-folder
  run is timed inside (`bulk_timing.py`): its steady rate off the result batches' arrivals, when the decoding
  tasks ran (how many at once, their images/s), when the model actor was ready, its rows per busy second.

Prints and writes a JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import PROMPT, make_checkpoint  # noqa: E402
from bench_gpu import write_images  # noqa: E402
from bulk_timing import steady_rate, timed  # noqa: E402


def package_rate(checkpoint: Path, paths: list[str], device: str, batch: int) -> dict:
    import torch

    import imagereward

    t = time.perf_counter()
    model = imagereward.load(str(checkpoint), device=device)
    load_s = time.perf_counter() - t
    model.embedding_cache.resize(0)
    model.rewards(PROMPT, paths[: 2 * batch], batch_size=batch)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    model.rewards(PROMPT, paths, batch_size=batch)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    model.close()  # its decoding processes would sit idle beside Ray's workers
    return {"load_s": load_s, "steady_images_per_s": len(paths) / seconds}


def cli_wall(checkpoint: Path, folder: Path, device: str, out: Path) -> float:
    from imagereward import cli

    t = time.perf_counter()
    code = cli.main(
        [
            "score",
            "-p",
            PROMPT,
            str(folder),
            "--model",
            str(checkpoint),
            "--device",
            device,
            "-q",
            "-f",
            "jsonl",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    return time.perf_counter() - t


def bulk_run(checkpoint: Path, folder: Path, device: str, batch: int | None, out: Path) -> dict:
    """Two runs in one process: a first one on one batch of the files (its wall time is the start-up: Ray,
    the actor loading the model, one batch), then the whole folder (Ray already up; the actor loads the model
    again, which stays in its rate)."""
    from imagereward import bulk

    few = out.parent / "few"
    few.mkdir()
    size = batch or (256 if device.startswith("cuda") else 32)
    for path in sorted(folder.iterdir())[:size]:
        (few / path.name).symlink_to(path)
    options = {"prompt": PROMPT, "model": str(checkpoint), "device": device, "batch_size": batch, "progress": False}
    t = time.perf_counter()
    bulk.bulk_score([few], out.parent / "few.parquet", **options)
    startup = time.perf_counter() - t
    arrivals: list[tuple[float, int]] = []  # (time, rows written) as each batch reaches the driver
    with timed(bulk, out.parent / "timeline") as timeline:
        t = time.perf_counter()
        summary = bulk.bulk_score(
            [folder], out, on_batch=lambda _, rows: arrivals.append((time.perf_counter(), rows)), **options
        )
        wall = time.perf_counter() - t
    return {
        "first_batch_after_s": arrivals[0][0] - t,
        "steady_images_per_s": steady_rate(arrivals, wall),
        "first_run_wall_s": startup,
        "first_run_images": size,
        "wall_s": wall,
        "images_per_s": summary.written / wall,
        "written": summary.written,
        "errors": summary.errors,
        **timeline.report(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--checkpoint", default=str(Path(tempfile.gettempdir()) / "imagereward-bench"))
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "bulk.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp:  # the images and outputs: never left behind
        work = Path(tmp)
        folder = work / "images"
        folder.mkdir()
        paths = write_images(folder, args.images)
        checkpoint = make_checkpoint(Path(args.checkpoint))
        batch = args.batch_size or (256 if args.device.startswith("cuda") else 32)
        report: dict = {
            "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "device": args.device,
            "images": args.images,
            "batch": batch,
        }
        if args.device.startswith("cuda"):
            import torch

            report["gpu"] = torch.cuda.get_device_name(0)
        report["package"] = package_rate(checkpoint, paths, args.device, batch)
        print(json.dumps(report), flush=True)
        report["score_cli_wall_s"] = cli_wall(checkpoint, folder, args.device, work / "score.jsonl")
        print(json.dumps(report), flush=True)
        report["bulk"] = bulk_run(checkpoint, folder, args.device, args.batch_size, work / "bulk.parquet")
        package = report["package"]["steady_images_per_s"]
        report["bulk_vs_package_steady"] = report["bulk"]["images_per_s"] / package
        if report["bulk"]["steady_images_per_s"]:
            report["bulk_steady_vs_package_steady"] = report["bulk"]["steady_images_per_s"] / package
        report["bulk_vs_score_cli_wall"] = report["score_cli_wall_s"] / (
            report["bulk"]["wall_s"] + report["bulk"]["first_run_wall_s"]
        )
        print(json.dumps(report, indent=1))
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
