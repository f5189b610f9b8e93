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
from imagereward.judges.imagereward import ImageReward  # noqa: E402
from imagereward.model.factory import resolve_dtype  # noqa: E402
from imagereward.model.tokenizer import tokenize  # noqa: E402
from imagereward.ranking import rank_images  # noqa: E402

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

    @torch.inference_mode()
    def step() -> torch.Tensor:
        return model(
            tokens["input_ids"], tokens["attention_mask"], imagereward.images.reading.normalize(pixels).to(model.dtype)
        )

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


def write_images(folder: Path, n: int, jpeg_only: bool = False) -> list[str]:
    """`n` 512x512 images, alternately JPEG and PNG (or all JPEG), written in parallel."""

    def write(i: int) -> str:
        base = np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((512, 512), Image.BILINEAR)
        path = folder / (f"{i:05d}.png" if i % 2 and not jpeg_only else f"{i:05d}.jpg")
        image.save(path, quality=90) if path.suffix == ".jpg" else image.save(path)
        return str(path)

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        return list(pool.map(write, range(n)))


def end_to_end(model: ImageReward, paths: list[str], batch: int, processes: int | None) -> float:
    """Images/s of `model.rewards` from files (decoding included), with `processes` decoding workers (0:
    threads; None: the package's default)."""
    model.embedding_cache.resize(0)
    model.decode_processes = processes
    model.rewards(PROMPT, paths[: batch * 5], batch_size=batch)  # warm-up: pools up, kernels chosen
    sync(model.device)
    t = time.perf_counter()
    model.rewards(PROMPT, paths, batch_size=batch)
    sync(model.device)
    model.decode_processes = None
    return len(paths) / (time.perf_counter() - t)


def decode_ceiling(paths: list[str], threads: int, processes: int) -> dict:
    """Images/s of the exact preprocessing alone (`images.load_pixels` + content key, no model): in a thread
    pool, and in worker processes with one torch thread each."""
    from imagereward.images.decoding import ProcessDecoder, content_key
    from imagereward.images.reading import load_pixels
    from imagereward.images.transforms import ORIGINAL_224

    def one(path: str) -> bytes:
        return content_key(load_pixels(path))

    out = {"threads": threads, "processes": processes}
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, paths[:64]))
        t = time.perf_counter()
        list(pool.map(one, paths))
        out["threads_images_per_s"] = len(paths) / (time.perf_counter() - t)
    t = time.perf_counter()
    decoder = ProcessDecoder(processes)
    for _ in decoder.decoded_batches(paths[:processes], paths[:processes], ORIGINAL_224, 64):
        pass
    out["process_start_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    for _ in decoder.decoded_batches(paths, paths, ORIGINAL_224, 256):
        pass
    out["processes_images_per_s"] = len(paths) / (time.perf_counter() - t)
    t = time.perf_counter()
    single = [one(p) for p in paths[:64]]
    out["one_thread_ms_per_image"] = 1000 * (time.perf_counter() - t) / len(single)
    decoder.close()
    return out


def request_latency(model: ImageReward, paths: list[str], repeats: int) -> dict:
    """Median ms of a request as the app makes it (`rank_images`: tokenize, decode, score, rank) and of its
    parts, embedding cache off, in three set-ups: eager with decoding threads (the package before CUDA graphs),
    CUDA graphs with threads, and CUDA graphs with warm decoding processes (the app's set-up on a GPU server).
    Also the largest reward difference between the graphed and the eager model."""
    from imagereward.model.tokenizer import encode_prompt

    model.embedding_cache.resize(0)
    names = [Path(p).name for p in paths]
    setups = {"eager, threads": (False, 0), "graphs, threads": (None, 0), "graphs, processes": (None, 8)}
    out: dict = {}
    rewards = {}
    for label, (graphs, processes) in setups.items():
        model.cuda_graphs, model.decode_processes = graphs, processes
        parts: dict[str, list[float]] = {"total": [], "tokenize": [], "decode": [], "model": []}
        for k in range(repeats + 3):
            t = time.perf_counter()
            rank_images(model, PROMPT, paths)
            total = time.perf_counter() - t
            t = time.perf_counter()
            tokens = encode_prompt(PROMPT)
            t1 = time.perf_counter()
            decoded = model.decode(paths, names)
            t2 = time.perf_counter()
            results = model.score_decoded(tokens, decoded, names)
            t3 = time.perf_counter()
            if k >= 3:
                parts["total"].append(total)
                parts["tokenize"].append(t1 - t)
                parts["decode"].append(t2 - t1)
                parts["model"].append(t3 - t2)
        rewards[label] = np.array([r.reward for r in results])
        out[label] = {name: 1000 * statistics.median(times) for name, times in parts.items()}
    out["graphs_vs_eager_max_difference"] = float(np.abs(rewards["graphs, threads"] - rewards["eager, threads"]).max())
    model.cuda_graphs, model.decode_processes = None, None
    return out


def profile_model(model: ImageReward, batch: int, top: int = 15) -> dict:
    """Where the time of the model alone goes at `batch`: CUDA time by kernel, top entries, and by kind."""
    from torch.profiler import ProfilerActivity, profile

    device = model.device
    pixels = torch.randint(0, 256, (batch, 3, 224, 224), dtype=torch.uint8, device=device)
    tokens = {k: v.to(device) for k, v in tokenize(PROMPT).items()}
    with torch.inference_mode():

        def run() -> torch.Tensor:
            return model(
                tokens["input_ids"],
                tokens["attention_mask"],
                imagereward.images.reading.normalize(pixels).to(model.dtype),
            )

        run()
        sync(device)
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                run()
            sync(device)
    events = [e for e in prof.key_averages() if e.device_time_total > 0]
    total = sum(e.self_device_time_total for e in events)
    kinds: dict[str, float] = {}
    for e in events:
        name = e.key.lower()
        kind = (
            "matrix products (GEMM)"
            if any(k in name for k in ("gemm", "sm90", "cutlass", "cublas", "xmma", "matmul"))
            else "attention"
            if any(k in name for k in ("flash", "fmha", "attention", "efficient"))
            else "layer norm"
            if "norm" in name
            else "GELU"
            if "gelu" in name
            else "other elementwise and copies"
        )
        kinds[kind] = kinds.get(kind, 0.0) + e.self_device_time_total
    rows = sorted(events, key=lambda e: -e.self_device_time_total)[:top]
    return {
        "batch": batch,
        "gpu_ms_per_batch": total / 3 / 1000,
        "by_kind_share": {k: v / total for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
        "top_kernels": [
            {"name": e.key[:120], "share": e.self_device_time_total / total, "calls": e.count // 3} for e in rows
        ],
    }


def gpu_decode_run(model: ImageReward, jpegs: list[str], batch: int) -> dict:
    """The approximate path (JPEG decoded and resized on the GPU) from JPEG files: images/s, and its rewards
    against the exact path's on the same files and on the parity fixtures' JPEGs."""
    from imagereward.judges.imagereward import approximate_results

    model.embedding_cache.resize(0)
    approximate_results(model, PROMPT, jpegs[: batch * 2], batch_size=batch)  # warm-up
    sync(model.device)
    t = time.perf_counter()
    fast = approximate_results(model, PROMPT, jpegs, batch_size=batch)
    sync(model.device)
    rate = len(jpegs) / (time.perf_counter() - t)
    from concurrent.futures import ThreadPoolExecutor as Pool

    from imagereward.images.gpu import _prepare

    with Pool(16) as readers:  # reading and GPU decoding alone, no model: the path's own ceiling
        t = time.perf_counter()
        for start in range(0, len(jpegs), batch):
            _prepare(
                start, jpegs[start : start + batch], jpegs[start : start + batch], 224, model.device, readers, None
            )
        sync(model.device)
        decode_only = len(jpegs) / (time.perf_counter() - t)
        t = time.perf_counter()
        for start in range(0, len(jpegs), batch):
            list(readers.map(open_read, jpegs[start : start + batch]))
        read_only = len(jpegs) / (time.perf_counter() - t)
    sample = jpegs[:256]
    exact = model.rewards(PROMPT, sample, batch_size=batch)
    diff = np.abs(np.array([r.reward for r in fast[: len(sample)]]) - np.array(exact))
    fixtures = [p for p in fixture_images() if p.endswith(".jpg")]
    fx_fast = [r.reward for r in approximate_results(model, PROMPT, fixtures)]
    fx_exact = model.rewards(PROMPT, fixtures)
    return {
        "images_per_s": rate,
        "read_and_decode_only_images_per_s": decode_only,
        "read_only_images_per_s": read_only,
        "files": len(jpegs),
        "reward_difference_vs_exact": {"max": float(diff.max()), "mean": float(diff.mean()), "files": len(sample)},
        "order_agreement_vs_exact": pairwise_agreement(exact, [r.reward for r in fast[: len(sample)]]),
        "fixtures_max_difference": float(np.abs(np.array(fx_fast) - np.array(fx_exact)).max()),
    }


def open_read(path: str) -> int:
    with open(path, "rb") as f:
        return len(f.read())


def pairwise_agreement(a: list[float], b: list[float]) -> float:
    """Share of pairs that `a` and `b` order the same way."""
    x, y = np.array(a), np.array(b)
    i, j = np.triu_indices(len(x), 1)
    return float(np.mean(np.sign(x[i] - x[j]) == np.sign(y[i] - y[j])))


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
    ap.add_argument(
        "--workers", type=int, default=None, help="decoding threads/processes (default: the cores, at most 32)"
    )
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
        save()
        workers = args.workers or min(32, os.cpu_count() or 1)
        stage("decode ceiling")
        report["decode_ceiling"] = decode_ceiling(paths[: args.files], workers, workers)
        save()
        stage("end to end")
        batch = max(args.batches)
        report["end_to_end"] = {
            "threads_images_per_s": end_to_end(model, paths[: args.files], batch, 0),
            "processes_images_per_s": end_to_end(model, paths[: args.files], batch, workers),
            "processes_minus_two_images_per_s": end_to_end(model, paths[: args.files], batch, workers - 2),
            "default_images_per_s": end_to_end(model, paths[: args.files], batch, None),
            "batch": batch,
            "processes": workers,
        }
        save()
        stage("request latency")
        repeats = 10 if not args.quick else 1
        report["request_ms"] = {str(n): request_latency(model, paths[:n], repeats) for n in (1, 8)}
        save()
        if device.type == "cuda":
            stage("where the model's time goes")
            report["profile"] = profile_model(model, batch)
            save()
        stage("GPU decoding (approximate)")
        jpeg_dir = Path(tmp) / "jpeg"
        jpeg_dir.mkdir()
        jpegs = write_images(jpeg_dir, args.files, jpeg_only=True)
        report["request_ms_jpeg"] = {"8": request_latency(model, jpegs[:8], repeats)}
        try:
            report["gpu_decode"] = gpu_decode_run(model, jpegs, batch)
        except (RuntimeError, ImportError) as e:
            report["gpu_decode_error"] = f"{type(e).__name__}: {e}"
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
            report["compiled"]["end_to_end_images_per_s"] = end_to_end(model, paths[: args.files], batch, None)
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
    d = report["decode_ceiling"]
    print(
        f"decode ceiling (exact preprocessing alone): {d['threads_images_per_s']:.0f} images/s in {d['threads']} threads, "
        f"{d['processes_images_per_s']:.0f} in {d['processes']} processes ({d['one_thread_ms_per_image']:.1f} ms/image in one thread)"
    )
    e = report["end_to_end"]
    print(
        f"end to end from {args.files} files, batch {e['batch']}: threads {e['threads_images_per_s']:.0f}, "
        f"processes {e['processes_images_per_s']:.0f}, default {e['default_images_per_s']:.0f} images/s"
    )
    for n, setups in report["request_ms"].items():
        for label, r in setups.items():
            if isinstance(r, dict):
                parts = ", ".join(f"{k} {v:.1f}" for k, v in r.items() if k != "total")
                print(f"{n}-image request, {label}: {r['total']:.1f} ms median ({parts})")
        print(
            f"{n}-image request: CUDA graphs vs eager, max reward difference {setups['graphs_vs_eager_max_difference']:.1e}"
        )
    for n, setups in report.get("request_ms_jpeg", {}).items():
        r = setups["graphs, threads"]
        print(
            f"{n}-image request of JPEG files, graphs, threads: {r['total']:.1f} ms median (decode {r['decode']:.1f}, model {r['model']:.1f})"
        )
    if "profile" in report:
        kinds = ", ".join(f"{k} {100 * v:.0f}%" for k, v in report["profile"]["by_kind_share"].items())
        print(
            f"model alone, batch {report['profile']['batch']}: {report['profile']['gpu_ms_per_batch']:.1f} ms of GPU time: {kinds}"
        )
    if "gpu_decode" in report:
        g = report["gpu_decode"]
        r = g["reward_difference_vs_exact"]
        print(
            f"GPU decoding (approximate), {g['files']} JPEG files: {g['images_per_s']:.0f} images/s (reading and "
            f"decoding alone {g['read_and_decode_only_images_per_s']:.0f}, reading alone {g['read_only_images_per_s']:.0f}); rewards vs exact: "
            f"max {r['max']:.4f}, mean {r['mean']:.4f}; pair order agreement {100 * g['order_agreement_vs_exact']:.1f}%; "
            f"fixtures max {g['fixtures_max_difference']:.4f}"
        )
    elif "gpu_decode_error" in report:
        print(f"GPU decoding failed: {report['gpu_decode_error']}")
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
