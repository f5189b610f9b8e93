"""CPU benchmark: this package against the original `image-reward` 1.5, same weights and inputs, one run.

    python benchmarks/bench.py                      # full-size model, 4 and 16 images, fp32 and bf16
    python benchmarks/bench.py --sizes 4 --repeat 1 # quicker

What it does:
1. Builds a full-size ImageReward (ViT-L/16 + BERT-base) with seeded random weights and saves it once, in
   the original checkpoint layout, as `ImageReward.pt` + `med_config.json` (default
   ~/.cache/imagereward-bench/), so that both implementations load the same file.
2. Times the original (if its env from ../shared/reference is built: `bash ../shared/reference/setup_refenv.sh`)
   and this package, each in a fresh process: load to first score, peak resident memory, and
   `inference_rank` throughput for each size (images decoded and preprocessed from the parity fixture files,
   min of --repeat runs after a warm-up). This package also in bfloat16, and the embedding cache on a repeat.
3. Half-precision accuracy on the parity fixtures (the tiny model): bfloat16 vs float32 rewards.
Prints a table and one JSON object (also written to --json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARITY = ROOT / "tests" / "fixtures" / "parity"
PROMPT = "a painting of an ocean with clouds and birds, day time, low depth field effect"
OTHER_PROMPT = "a cute corgi puppy wearing sunglasses, sitting on a wooden porch at sunset"


def rss_mb(field: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of this process, MiB. Unlike ru_maxrss, VmHWM is
    not inherited from the parent across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} not in /proc/self/status")


def fixture_images() -> list[str]:
    return sorted(str(p) for p in (PARITY / "images").iterdir())


def distinct_images(n: int, folder: Path) -> list[str]:
    """`n` different image files: the parity fixtures, then mirrored copies of them in the same formats.
    Every file differs, so that neither implementation can score a repeat from a cache (this package decodes a
    repeated path once and encodes a repeated picture once)."""
    from PIL import Image, ImageOps

    fixtures = fixture_images()
    paths = []
    for i in range(n):
        source = Path(fixtures[i % len(fixtures)])
        if i < len(fixtures):
            paths.append(str(source))
            continue
        target = folder / "images" / f"{i:03d}_{source.name}"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(source) as image:
                variant = ImageOps.mirror(image) if i // len(fixtures) % 2 else ImageOps.flip(image)
                variant.save(target, format=image.format)
        paths.append(str(target))
    return paths


def make_checkpoint(folder: Path, seed: int = 0) -> Path:
    """A full-size checkpoint with random weights in the original's exact layout (1.8 GB, made once)."""
    import torch

    from imagereward.model.checkpoint import to_original_layout
    from imagereward.model.config import ModelConfig
    from imagereward.model.network import ImageRewardModel

    weights = folder / "ImageReward.pt"
    if weights.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = ImageRewardModel(ModelConfig())
    state = to_original_layout(model.state_dict())
    state["blip.vision_proj.weight"] = torch.randn(256, 1024) * 0.02
    state["blip.vision_proj.bias"] = torch.zeros(256)
    state["blip.text_proj.weight"] = torch.randn(256, 768) * 0.02
    state["blip.text_proj.bias"] = torch.zeros(256)
    state["blip.text_encoder.embeddings.position_ids"] = torch.arange(512).expand((1, -1)).clone()
    torch.save(state, folder / "ImageReward.pt.tmp")
    os.replace(folder / "ImageReward.pt.tmp", weights)
    (folder / "med_config.json").write_text((PARITY / "med_config.full.json").read_text())
    return folder


def timed_rank(model, paths: list[str], repeat: int) -> dict:
    """`inference_rank` on `paths` as the original is timed: min of `repeat` runs after a warm-up, with the
    embedding cache off (every run encodes every image), and the images the image encoder encoded in the timed
    runs counted (`checks.check_all_encoded` asserts it is every one)."""
    from checks import counting_encoded

    model.embedding_cache.resize(0)
    model.inference_rank(PROMPT, paths)
    times, rewards = [], []
    with counting_encoded(model.visual_encoder) as encoded:
        for _ in range(repeat):
            t = time.perf_counter()
            _, rewards = model.inference_rank(PROMPT, paths)
            times.append(time.perf_counter() - t)
    return {"seconds": min(times), "all_seconds": times, "rewards": rewards, "encoded_images": encoded[0]}


def worker_ours(args: argparse.Namespace) -> dict:
    """Runs in its own process: load, first score, throughput, cache repeat."""
    import torch

    import imagereward

    images = args.images
    base = rss_mb("VmRSS")
    t0 = time.perf_counter()
    model = imagereward.load(args.checkpoint, device="cpu", dtype=args.dtype)
    load_s = time.perf_counter() - t0
    load_rss = rss_mb()
    model.score(PROMPT, images[0])
    out = {
        "impl": "ours",
        "dtype": args.dtype,
        "load_seconds": load_s,
        "load_to_first_score_seconds": time.perf_counter() - t0,
        "rss_before_load_mb": base,
        "peak_rss_after_load_mb": load_rss,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "runs": {},
    }
    for n in args.sizes:
        out["runs"][str(n)] = timed_rank(model, images[:n], args.repeat)
    model.embedding_cache.resize(256)
    paths = images[: max(args.sizes)]
    t = time.perf_counter()
    model.rewards(PROMPT, paths)
    cold = time.perf_counter() - t
    t = time.perf_counter()
    model.rewards(OTHER_PROMPT, paths)
    warm = time.perf_counter() - t
    out["cache"] = {"n_images": len(paths), "cold_seconds": cold, "repeat_seconds": warm, "speedup": cold / warm}
    out["peak_rss_mb"] = rss_mb()
    return out


def half_precision_accuracy(dtypes: tuple[str, ...] = ("bf16", "fp16"), device: str = "cpu") -> list[dict]:
    """Half precision on `device` vs float32 on the CPU, on the parity fixtures: reward error, and whether
    every pair that float32 separates by more than 0.05 keeps its order."""
    import numpy as np

    import imagereward

    expected = json.loads((PARITY / "expected.json").read_text())
    paths = [str(PARITY / "images" / n) for n in expected["images"]]
    exact = imagereward.load(str(PARITY), device="cpu")
    reference = {prompt: np.array(exact.rewards(prompt, paths)) for prompt in expected["prompts"]}
    report = []
    for dtype in dtypes:
        half = imagereward.load(str(PARITY), device=device, dtype=dtype)
        worst, order_ok = 0.0, True
        for prompt, a in reference.items():
            b = np.array(half.rewards(prompt, paths))
            worst = max(worst, float(np.abs(a - b).max()))
            order_ok &= all(b[i] > b[j] for i in range(len(a)) for j in range(len(a)) if a[i] - a[j] > 0.05)
        report.append(
            {"dtype": dtype, "max_abs_reward_error": worst, "same_order_where_fp32_gap_gt_0.05": bool(order_ok)}
        )
    return report


def versus(run: dict, original: dict | None, n: str) -> tuple[str, str]:
    """Table cells for one timed run of `n` images: speed ratio to the original's run of the same images, and
    the largest reward difference from it (both empty without the original)."""
    if not original:
        return "", ""
    theirs = original["runs"][n]
    delta = max(abs(a - b) for a, b in zip(run["rewards"], theirs["rewards"]))
    return f"{theirs['seconds'] / run['seconds']:.2f}x", f"{delta:.1e}"


def run_json(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """Runs `cmd` from the repository root and parses the JSON object on the last line of its output."""
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}… failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--accuracy-only", action="store_true", help="only the half-precision check on the fixtures")
    ap.add_argument("--checkpoint", default=str(Path.home() / ".cache" / "imagereward-bench"))
    ap.add_argument("--sizes", nargs="+", type=int, default=[4, 16])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], help="this package's dtypes to time")
    ap.add_argument("--refenv", default=os.environ.get("REFENV", str(Path.home() / ".cache" / "imagereward-refenv")))
    ap.add_argument("--reference", default=str(ROOT.parent / "shared" / "reference"))
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "cpu.json"))
    ap.add_argument("--images", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.accuracy_only:
        print(json.dumps(half_precision_accuracy()))
        return
    if args.worker:
        print(json.dumps(worker_ours(args)))
        return

    import checks
    from machine import describe

    from imagereward.model.config import ModelConfig

    machine = describe()  # the GEMM peaks, measured before the runs (and again after)
    ckpt = make_checkpoint(Path(args.checkpoint))
    size_mb = (ckpt / "ImageReward.pt").stat().st_size / 2**20
    images = distinct_images(max(args.sizes), ckpt)
    keys = content_keys(images)
    checks.check_distinct(keys, "the benchmark's images")
    common = ["--checkpoint", str(ckpt), "--sizes", *map(str, args.sizes), "--repeat", str(args.repeat)]
    results = []
    ref_python = Path(args.refenv) / "bin" / "python"
    if ref_python.is_file() and Path(args.reference, "_refcommon.py").is_file():
        print("timing the original …", file=sys.stderr)
        results.append(
            run_json(
                [
                    str(ref_python),
                    "benchmarks/_original_worker.py",
                    "--reference",
                    args.reference,
                    "--images",
                    *images,
                    "--prompt",
                    PROMPT,
                    *common,
                ]
            )
        )
    else:
        print(f"original's env not found at {args.refenv}: timing this package only", file=sys.stderr)
    for dtype in args.dtypes:
        print(f"timing this package, {dtype} …", file=sys.stderr)
        results.append(run_json([sys.executable, __file__, "--worker", "--dtype", dtype, *common, "--images", *images]))
    accuracy = half_precision_accuracy()
    after = describe()["gemm_peak_gflops"]
    peaks = {k: max(v, after[k]) for k, v in machine["gemm_peak_gflops"].items()}
    machine["gemm_peak_gflops"] = peaks
    gflop = checks.gflop_per_image(ModelConfig())

    original = next((r for r in results if r["impl"] == "original"), None)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine,
        "cpu_model": machine["cpu_model"],
        "amx_bf16": "amx_bf16" in machine["cpu_flags"],
        "checkpoint_mb": size_mb,
        "gflop_per_image": gflop,
        "results": results,
        "half_precision": accuracy,
    }
    print(
        f"\nCPU: {machine['cpu_model']}, {machine['cores']} cores, flags {' '.join(machine['cpu_flags'])}; torch "
        f"{machine['torch']} ({machine['cpu_capability']}, oneDNN {'on' if machine['onednn'] else 'off'}), "
        f"{machine['threads']} threads; the original's torch {original['torch'] if original else '-'}\n"
        f"GEMM peak on the model's shapes, measured in this run: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 "
        f"{peaks['bf16']:.0f} GFLOP/s; {gflop:.1f} GFLOP per image (from the model's shapes); checkpoint "
        f"{size_mb:.0f} MiB; min of {args.repeat} runs (spread: the slowest of them over the fastest), every timed "
        "image encoded (checked)\n"
    )
    print(
        f"{'impl':9} {'dtype':6} {'N':>3} {'img/s':>7} {'s/img':>7} {'spread':>7} {'vs orig':>8} {'GFLOP/s':>8} "
        f"{'of peak':>8} {'max|Δ| vs orig':>15}"
    )
    refused = []
    for r in results:
        kind = "bf16" if r["dtype"] in ("bf16", "bfloat16") else "fp32"
        for n, run in r["runs"].items():
            checks.check_all_encoded(run["encoded_images"], int(n), args.repeat, f"{r['impl']} {r['dtype']} {n} images")
            ratio, delta = versus(run, original, n)
            run["gflops"] = gflop * int(n) / run["seconds"]
            try:
                run["fraction_of_peak"] = checks.rate(
                    gflop * int(n), run["seconds"], peaks[kind], f"{r['impl']} {r['dtype']} {n}"
                )
                share = f"{100 * run['fraction_of_peak']:7.0f}%"
                rate_text = f"{run['gflops']:8.0f}"
            except checks.AbovePeak as e:
                refused.append(str(e))
                share, rate_text, ratio = "ABOVE PEAK", "-", "-"
            # How far the slowest of the --repeat runs was from the fastest: this run's own noise.
            run["spread"] = max(run["all_seconds"]) / run["seconds"] - 1
            print(
                f"{r['impl']:9} {r['dtype']:6} {n:>3} {int(n) / run['seconds']:7.2f} {run['seconds'] / int(n):7.3f} "
                f"{100 * run['spread']:6.0f}% {ratio:>8} {rate_text:>8} {share:>8} {delta:>15}"
            )
    print(
        f"\n{'impl':9} {'dtype':6} {'load→1st score':>15} {'RSS before':>11} {'peak in load':>13} "
        f"{'load adds':>10} {'peak overall':>13}"
    )
    for r in results:
        added = r["peak_rss_after_load_mb"] - r["rss_before_load_mb"]
        r["load_adds_mb"], r["load_adds_vs_checkpoint"] = added, added / size_mb
        print(
            f"{r['impl']:9} {r['dtype']:6} {r['load_to_first_score_seconds']:14.2f}s {r['rss_before_load_mb']:8.0f} MB "
            f"{r['peak_rss_after_load_mb']:10.0f} MB {added / size_mb:9.2f}x {r['peak_rss_mb']:10.0f} MB"
        )
    if original:
        for r in results[1:]:
            r["load_speedup"] = original["load_to_first_score_seconds"] / r["load_to_first_score_seconds"]
            print(f"load to first score, {r['dtype']}: {r['load_speedup']:.1f}x faster than the original")
    for r in results:
        if "cache" in r:
            c = r["cache"]
            print(
                f"cache ({r['dtype']}): {c['n_images']} images, first prompt {c['cold_seconds']:.2f}s, "
                f"another prompt {c['repeat_seconds']:.3f}s: {c['speedup']:.0f}x"
            )
    for entry in accuracy:
        print(f"half precision on the parity fixtures: {entry}")
    report["above_peak"] = refused
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    if refused:
        sys.exit("refused, above the measured peak (a measuring error, not a result):\n" + "\n".join(refused))


def content_keys(paths: list[str]) -> list[bytes]:
    """The content key of each image as ImageReward preprocesses it (equal keys: the same picture)."""
    from imagereward.images.decoding import Decoder
    from imagereward.judges import primary

    preprocessing = primary().preprocessing
    decoder = Decoder()
    try:
        decoded = decoder.decode(paths, [Path(p).name for p in paths], [preprocessing])[preprocessing]
    finally:
        decoder.close()
    return [d.key for d in decoded]


if __name__ == "__main__":
    main()
