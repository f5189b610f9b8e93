"""GPU benchmark of this package, all in one call of a few minutes (made for a lent H100/H200).

    python benchmarks/bench_gpu.py                 # on a CUDA machine
    python benchmarks/bench_gpu.py --device cpu --quick   # a dry run of the same code path on the CPU

Full-size ImageReward (ViT-L/16 + BERT-base) with seeded random weights, built directly on the device in the
compute dtype (default float16, the CUDA default). Measures:
- model alone: images/s at batch 64 and 256 (uint8 pixels already on the device: normalise, both encoders,
  head), and the share of the card's bf16/fp16 matrix rate at 137 GFLOP per image (`--peak-tflops`);
- end to end from 512x512 PNG and JPEG files on disk (decoding in parallel threads, overlapped with the GPU);
- an 8-image request as the app makes it (files, one prompt), median latency;
- GPU memory at batch 64;
- half-precision accuracy on the parity fixtures: rewards vs float32, ranking where fp32 gaps exceed 0.05.
Prints a table and a JSON object (also written to --json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import imagereward  # noqa: E402
from imagereward.config import ModelConfig  # noqa: E402
from imagereward.factory import resolve_dtype  # noqa: E402
from imagereward.kernels import use_onednn_linears  # noqa: E402
from imagereward.ranking import rank_images  # noqa: E402
from imagereward.reward import ImageReward  # noqa: E402
from imagereward.tokenizer import tokenize  # noqa: E402

PARITY = ROOT / "tests" / "fixtures" / "parity"
PROMPT = "a painting of an ocean with clouds and birds, day time, low depth field effect"
GFLOP_PER_IMAGE = 137.0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_model(device: torch.device, dtype: torch.dtype, config: ModelConfig) -> ImageReward:
    torch.manual_seed(0)
    with torch.device(device):
        model = ImageReward(config, name="random full-size")
    model.visual_encoder.to(dtype)
    model.text_encoder.to(dtype)
    use_onednn_linears(model)
    return model.eval()


def model_only(model: ImageReward, batch: int, iters: int) -> float:
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

    for _ in range(2):
        step()
    sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        step()
    sync(device)
    return batch * iters / (time.perf_counter() - t)


def memory_at(model: ImageReward, batch: int) -> float | None:
    if model.device.type != "cuda":
        return None
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(model.device)
    model_only(model, batch, 1)
    return torch.cuda.max_memory_allocated(model.device) / 2**30


def write_images(folder: Path, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        base = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((512, 512), Image.BILINEAR)
        path = folder / (f"{i:05d}.png" if i % 2 else f"{i:05d}.jpg")
        image.save(path, quality=90) if path.suffix == ".jpg" else image.save(path)
        paths.append(str(path))
    return paths


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
    for k in range(repeats + 2):
        t = time.perf_counter()
        rank_images(model, PROMPT, paths)
        times.append(time.perf_counter() - t)
    return statistics.median(times[2:])


def parity_accuracy(device: torch.device, dtype: torch.dtype) -> dict:
    expected = json.loads((PARITY / "expected.json").read_text())
    paths = [str(PARITY / "images" / n) for n in expected["images"]]
    exact = imagereward.load(str(PARITY), device="cpu")
    half = imagereward.load(str(PARITY), device=device, dtype=dtype)
    worst, order_ok = 0.0, True
    for prompt in expected["prompts"]:
        a, b = np.array(exact.rewards(prompt, paths)), np.array(half.rewards(prompt, paths))
        worst = max(worst, float(np.abs(a - b).max()))
        order_ok &= all(b[i] > b[j] for i in range(len(a)) for j in range(len(a)) if a[i] - a[j] > 0.05)
    return {
        "dtype": str(dtype).replace("torch.", ""),
        "max_abs_reward_error": worst,
        "same_order_where_fp32_gap_gt_0.05": bool(order_ok),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default=None, help="default float16 on CUDA, float32 on CPU")
    ap.add_argument("--batches", nargs="+", type=int, default=[64, 256])
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--files", type=int, default=2048, help="512x512 files for the end-to-end run")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the card's dense fp16/bf16 matrix rate")
    ap.add_argument("--compile", action="store_true", help="torch.compile both encoders first (slow to start)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for checking the script on a CPU")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "gpu.json"))
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    config = ModelConfig()
    if args.quick:
        args.batches, args.iters, args.files = [2, 4], 1, 8
    report: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "dtype": str(dtype),
        "model_only": {},
    }
    model = build_model(device, dtype, config)
    if args.compile:
        model.visual_encoder.compile()
        model.text_encoder.compile()
        report["compiled"] = True
    for batch in args.batches:
        rate = model_only(model, batch, args.iters)
        report["model_only"][str(batch)] = {
            "images_per_s": rate,
            "tflops": rate * GFLOP_PER_IMAGE / 1000,
            "share_of_peak": rate * GFLOP_PER_IMAGE / 1000 / args.peak_tflops if args.peak_tflops else None,
        }
    report["memory_gib_at_batch_64"] = memory_at(model, 64 if not args.quick else 2)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(Path(tmp), args.files)
        report["end_to_end_images_per_s"] = end_to_end(model, paths, max(args.batches))
        report["request_8_images_ms"] = 1000 * request_latency(model, paths[:8], 10 if not args.quick else 1)
    report["workers"] = model.workers
    report["half_precision"] = parity_accuracy(device, dtype)
    print(f"\n{report['device']}, torch {report['torch']}, {report['dtype']}")
    for batch, r in report["model_only"].items():
        share = f", {100 * r['share_of_peak']:.0f}% of peak" if r["share_of_peak"] else ""
        print(f"model alone, batch {batch:>4}: {r['images_per_s']:8.1f} images/s ({r['tflops']:.0f} TFLOP/s{share})")
    print(
        f"end to end from files: {report['end_to_end_images_per_s']:.1f} images/s ({report['workers']} decode threads)"
    )
    print(f"8-image request: {report['request_8_images_ms']:.1f} ms (median)")
    if report["memory_gib_at_batch_64"] is not None:
        print(f"GPU memory at batch 64: {report['memory_gib_at_batch_64']:.2f} GiB")
    print(f"half precision on the parity fixtures: {report['half_precision']}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(json.dumps(report))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
