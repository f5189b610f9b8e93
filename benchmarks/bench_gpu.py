"""GPU benchmark: this package against the original `image-reward` 1.5, in one call of a few minutes.

    bash benchmarks/gpu_kit.sh      # here, once: the original's wheels + harness into .gpukit/
    # on the lent machine (one `run`, carry [".gpukit"]):
    bash benchmarks/gpu_run.sh      # installs the kit into /tmp, runs this script, writes $OUT/gpu.json
    python benchmarks/bench_gpu.py --device cpu --quick   # a dry run of the same code on the CPU

Both implementations load one full-size checkpoint (ViT-L/16 + BERT-base, seeded random weights, the
original's layout; written first, see bench.py) and score the same 512x512 PNG and JPEG files. Measures:
- the original (with `--original SITE`: its wheels installed there): `inference_rank` on the files, one image at
  a time in float32 as it always scores, in its own process; load to first score; GPU memory;
- this package in the compute dtype (float16 by default on CUDA) and in float32 (exact mode):
  `inference_rank` on the same files (ratios against the original, reward differences);
- the model alone: images/s at batch 64 and 256 (uint8 pixels already on the GPU: normalise, both encoders,
  head) and the share of the card's matrix rate at 137 GFLOP per image (`--peak-tflops`);
- end to end from `--files` files on disk (decoding in parallel threads, overlapped with the GPU);
- an 8-image request as the app makes it (`rank_images`), median latency; GPU memory at batch 64;
- half precision on the parity fixtures: rewards vs float32, ranking where float32 gaps exceed 0.05;
- with `--compile`: the model alone and end to end again after `torch.compile` of both encoders.
Prints a table; the JSON report (--json) is rewritten after every stage, so a run cut short keeps what it did.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import imagereward  # noqa: E402
from imagereward.factory import resolve_dtype  # noqa: E402
from imagereward.ranking import rank_images  # noqa: E402
from imagereward.reward import ImageReward  # noqa: E402
from imagereward.tokenizer import tokenize  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench import (  # noqa: E402
    PROMPT,
    fixture_images,
    half_precision_accuracy,
    make_checkpoint,
    run_json,
    timed_rank,
    versus,
)

GFLOP_PER_IMAGE = 137.0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_only(model: ImageReward, batch: int, iters: int, warmup: int = 2) -> float:
    """Images/s of normalise + encoders + head on pixels already on the device (no cache, no decoding)."""
    device = model.device
    pixels = torch.randint(0, 256, (batch, 3, 224, 224), dtype=torch.uint8, device=device)
    tokens = {k: v.to(device) for k, v in tokenize(PROMPT).items()}
    length = int(tokens["attention_mask"].sum())
    ids, mask = (
        tokens["input_ids"][:, :length].expand(batch, -1),
        tokens["attention_mask"][:, :length].expand(batch, -1),
    )

    @torch.inference_mode()
    def step() -> torch.Tensor:
        embeds = model.encode_images(imagereward.images.normalize(pixels).to(model.dtype))
        return model.forward_head(model.encode_text(ids, mask, embeds))

    for _ in range(warmup):
        step()
    sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        step()
    sync(device)
    return batch * iters / (time.perf_counter() - t)


def matmul_tflops(device: torch.device, dtype: torch.dtype, n: int = 8192, iters: int = 10) -> float:
    """The card's dense matrix rate in `dtype`, measured: an n x n x n product, mean of `iters` after 3 warm-ups."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        a @ b
    sync(device)
    return 2 * n**3 * iters / (time.perf_counter() - t) / 1e12


def memory_at(model: ImageReward, batch: int) -> float | None:
    if model.device.type != "cuda":
        return None
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(model.device)
    model_only(model, batch, 1, warmup=0)
    return torch.cuda.max_memory_allocated(model.device) / 2**30


def write_images(folder: Path, n: int) -> list[str]:
    """`n` 512x512 images, alternately JPEG and PNG, written in parallel."""

    def write(i: int) -> str:
        base = np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((512, 512), Image.BILINEAR)
        path = folder / (f"{i:05d}.png" if i % 2 else f"{i:05d}.jpg")
        image.save(path, quality=90) if path.suffix == ".jpg" else image.save(path)
        return str(path)

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        return list(pool.map(write, range(n)))


def end_to_end(model: ImageReward, paths: list[str], batch: int) -> float:
    model.embedding_cache.resize(0)
    model.rewards(PROMPT, paths[: batch * 2], batch_size=batch)  # warm-up, thread pool up
    sync(model.device)
    t = time.perf_counter()
    model.rewards(PROMPT, paths, batch_size=batch)
    sync(model.device)
    return len(paths) / (time.perf_counter() - t)


def request_latency(model: ImageReward, paths: list[str], repeats: int) -> float:
    model.embedding_cache.resize(0)
    times = []
    for _ in range(repeats + 2):
        t = time.perf_counter()
        rank_images(model, PROMPT, paths)
        times.append(time.perf_counter() - t)
    return statistics.median(times[2:])


def load_timed(checkpoint: Path, device: torch.device, dtype: torch.dtype) -> tuple[ImageReward, float]:
    """The model from `checkpoint`, and the seconds from the call to `load` to the first score."""
    t = time.perf_counter()
    model = imagereward.load(str(checkpoint), device=str(device), dtype=dtype)
    model.score(PROMPT, fixture_images()[0])
    sync(device)
    return model, time.perf_counter() - t


def run_original(args: argparse.Namespace, checkpoint: Path, paths: list[str], sizes: list[int]) -> dict:
    """The original's worker in its own process, with the kit's site folder first on its path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([args.original, os.environ.get("PYTHONPATH", "")]))
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "_original_worker.py"),
        "--native-torchvision",
        "--reference",
        args.reference,
        "--checkpoint",
        str(checkpoint),
        "--device",
        args.device,
        "--prompt",
        PROMPT,
        "--sizes",
        *map(str, sizes),
        "--repeat",
        str(args.repeat),
        "--images",
        *paths,
    ]
    return run_json(cmd, env=env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default=None, help="default float16 on CUDA, float32 on CPU")
    ap.add_argument("--batches", nargs="+", type=int, default=[64, 256])
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--files", type=int, default=1024, help="512x512 files for the end-to-end run")
    ap.add_argument("--compare", type=int, default=64, help="files that both implementations score")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--checkpoint", default=str(Path(tempfile.gettempdir()) / "imagereward-bench"))
    ap.add_argument("--original", default=None, help="site folder holding the original's wheels (gpu_run.sh)")
    ap.add_argument("--reference", default=str(ROOT / ".gpukit" / "reference"), help="folder of _refcommon.py")
    ap.add_argument(
        "--peak-tflops", type=float, default=None, help="the card's dense matrix rate (default: measured on CUDA)"
    )
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of both encoders")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for checking the script on a CPU")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "gpu.json"))
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    if args.quick:
        args.batches, args.iters, args.files, args.compare, args.repeat = [2, 4], 1, 8, 4, 1
    sizes = sorted({min(8, args.compare), args.compare})
    report: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "dtype": str(dtype),
    }

    def save() -> None:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))

    def stage(name: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {name} …", file=sys.stderr, flush=True)

    if args.peak_tflops is None and device.type == "cuda" and dtype != torch.float32:
        stage("the card's matrix rate")
        args.peak_tflops = report["card_matmul_tflops"] = matmul_tflops(device, dtype)
    stage("checkpoint")
    checkpoint = make_checkpoint(Path(args.checkpoint))
    with tempfile.TemporaryDirectory() as tmp:
        stage("files")
        paths = write_images(Path(tmp), max(args.files, args.compare))
        compare = paths[: args.compare]
        if args.original:
            stage("the original")
            try:
                report["original"] = run_original(args, checkpoint, compare, sizes)
            except (RuntimeError, ValueError, IndexError) as e:  # keep this package's figures from the same call
                report["original_error"] = str(e)
                print(f"the original could not be timed:\n{e}", file=sys.stderr)
            save()

        stage(f"this package, {dtype}")
        model, first = load_timed(checkpoint, device, dtype)
        report["ours"] = {"load_to_first_score_seconds": first, "runs": {}}
        for n in sizes:
            report["ours"]["runs"][str(n)] = timed_rank(model, compare[:n], args.repeat)
        report["model_only"] = {}
        for batch in args.batches:
            rate = model_only(model, batch, args.iters)
            report["model_only"][str(batch)] = {
                "images_per_s": rate,
                "tflops": rate * GFLOP_PER_IMAGE / 1000,
                "share_of_peak": rate * GFLOP_PER_IMAGE / 1000 / args.peak_tflops if args.peak_tflops else None,
            }
        report["memory_gib_at_batch_64"] = memory_at(model, 64 if not args.quick else 2)
        report["end_to_end_images_per_s"] = end_to_end(model, paths[: args.files], max(args.batches))
        report["request_8_images_ms"] = 1000 * request_latency(model, paths[:8], 10 if not args.quick else 1)
        report["workers"] = model.workers
        save()

        if dtype != torch.float32:
            stage("this package, float32")
            exact, first = load_timed(checkpoint, device, torch.float32)
            report["ours_fp32"] = {"load_to_first_score_seconds": first, "runs": {}}
            for n in sizes:
                report["ours_fp32"]["runs"][str(n)] = timed_rank(exact, compare[:n], args.repeat)
            del exact
            save()

        if args.compile:
            stage("torch.compile")
            model.visual_encoder.compile()
            model.text_encoder.compile()
            batch = max(args.batches)
            t = time.perf_counter()
            model_only(model, batch, 1, warmup=1)
            report["compiled"] = {"compile_seconds": time.perf_counter() - t}
            rate = model_only(model, batch, args.iters)
            report["compiled"]["model_only"] = {
                str(batch): {"images_per_s": rate, "tflops": rate * GFLOP_PER_IMAGE / 1000}
            }
            report["compiled"]["end_to_end_images_per_s"] = end_to_end(model, paths[: args.files], batch)
            save()

    stage("half precision on the parity fixtures")
    report["half_precision"] = half_precision_accuracy((str(dtype).removeprefix("torch."),), str(device))[0]
    save()
    print_report(report, args)
    print(json.dumps(report))


def print_report(report: dict, args: argparse.Namespace) -> None:
    print(f"\n{report['device']}, {report['cpu_count']} CPU cores, torch {report['torch']}, {report['dtype']}")
    if "card_matmul_tflops" in report:
        print(f"the card's 8192^3 matrix product: {report['card_matmul_tflops']:.0f} TFLOP/s")
    original = report.get("original")
    if "original_error" in report:
        print("the original could not be timed: see original_error in the JSON report")
    rows = [("original", "float32", original)] if original else []
    rows += [("this package", report["dtype"].replace("torch.", ""), report["ours"])]
    if "ours_fp32" in report:
        rows.append(("this package", "float32", report["ours_fp32"]))
    print(f"{'impl':13} {'dtype':8} {'N':>4} {'img/s':>8} {'vs orig':>8} {'max|Δ| vs orig':>15} {'load→1st score':>15}")
    for impl, dtype, result in rows:
        for n, run in result["runs"].items():
            ratio, delta = versus(run, original, n)
            print(
                f"{impl:13} {dtype:8} {n:>4} {int(n) / run['seconds']:8.1f} {ratio:>8} {delta:>15} "
                f"{result['load_to_first_score_seconds']:14.2f}s"
            )
    if original and "peak_gpu_memory_gib" in original:
        print(f"original: peak GPU memory {original['peak_gpu_memory_gib']:.2f} GiB")
    for batch, r in report["model_only"].items():
        share = f", {100 * r['share_of_peak']:.0f}% of peak" if r["share_of_peak"] else ""
        print(f"model alone, batch {batch:>4}: {r['images_per_s']:8.1f} images/s ({r['tflops']:.0f} TFLOP/s{share})")
    print(
        f"end to end from {args.files} files: {report['end_to_end_images_per_s']:.1f} images/s ({report['workers']} decode threads)"
    )
    print(f"8-image request: {report['request_8_images_ms']:.1f} ms (median)")
    if report["memory_gib_at_batch_64"] is not None:
        print(f"GPU memory at batch 64: {report['memory_gib_at_batch_64']:.2f} GiB")
    if "compiled" in report:
        c = report["compiled"]
        ((batch, r),) = c["model_only"].items()
        print(
            f"compiled ({c['compile_seconds']:.0f} s to compile): model alone, batch {batch}: {r['images_per_s']:.1f} "
            f"images/s; end to end {c['end_to_end_images_per_s']:.1f} images/s"
        )
    print(f"half precision on the parity fixtures: {report['half_precision']}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
