"""A training step of the reward model, this package's against the original training code's, on the same model,
the same pairs, the same CPU and the same torch, side by side in one run: pairs per second and peak memory; and
this package's with the frozen ViT blocks' output cached, first pass against second.

    python benchmarks/bench_train.py [--size tiny|full] [--steps 4] [--batch 8] [--threads 2] [--device cpu|cuda]

On a GPU (`--device cuda --size full --batch 64`, in `training_gpu_run.sh`) both sides train there, and the GPU's
peak memory is recorded too.

`--size tiny`: the parity fixture's model; `--size full`: ViT-L/16 + BERT-base at full size with random weights
(`bench.make_checkpoint`, the original's layout). The original runs in the reference env (its `train/src` taken
from the THUDM/ImageReward checkout, `--original-repo`, as `git archive` gives it; for the tiny model with the
fixture's size patches, tests/fixtures/train/original_patches.diff), given this package's torch first on its path
(`_original_train_worker.py`). Both train with the original's recipe: fix_rate 0.7, Adam, dropout on; batches of
`--batch` pairs from the parity images, one optimizer step each. The original's steps start from preprocessed
tensors (its pair store); this package's decode and preprocess their images in the step. Each variant runs in a
fresh process (its peak resident memory, VmHWM, is its own); the first step is left out of the medians. Writes
benchmarks/runs/train_step[_full].json with the CPU named.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))

from bench_refl import REFENV, peak_mb, torch_links  # noqa: E402
from machine import describe  # noqa: E402

PARITY = ROOT / "tests" / "fixtures" / "parity"
MIRROR = Path("/work/.mirror/THUDM+ImageReward/repo")


def make_pairs(count: int, folder: Path) -> list[list[str]]:
    """`count` (prompt, better, worse) pairs over the parity images and prompts, fixed; each image a file of its
    own in `folder` (copies), so that a first pass meets every image for the first time."""
    import shutil

    images = sorted((PARITY / "images").iterdir())[:9]
    prompts = [p["prompt"] for p in json.loads((PARITY / "expected.json").read_text())["rank"] if p["prompt"].strip()]
    pairs = []
    for k in range(count):
        files = []
        for j, source in enumerate((images[k % 9], images[(3 * k + 1) % 9])):
            copy = folder / f"{k}-{j}{source.suffix}"
            shutil.copy(source, copy)
            files.append(str(copy))
        pairs.append([prompts[k % len(prompts)], *files])
    return pairs


def step_flops(trainer, batch) -> float:  # noqa: ANN001 - RewardTrainer, pairs
    """The arithmetic of one training step (forward and backward, `torch.utils.flop_counter`)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        trainer.step(batch)
    return float(counter.get_total_flops())


def ours(model: str, pairs_file: str, steps: int, batch: int, threads: int, cache: bool, device: str) -> dict:
    import torch

    import imagereward
    from imagereward.training import RewardTrainer, TrainConfig

    torch.set_num_threads(threads)
    torch.manual_seed(1234)
    pairs = [tuple(p) for p in json.loads(Path(pairs_file).read_text())]
    config = TrainConfig.original(batch_size=batch, accumulation_steps=1, total_steps=100, cache_features=cache)
    trainer = RewardTrainer(imagereward.load(model, device=device, dtype="float32"), config)
    batches = [pairs[i : i + batch] for i in range(0, len(pairs), batch)]
    times = []
    for step in range(steps):
        start = time.perf_counter()
        trainer.step(batches[step % len(batches)])
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    flops = step_flops(trainer, batches[0]) if not cache else None
    return {
        "step_seconds": times,
        "step_flops": flops,
        "peak_rss_mb": peak_mb(),
        "peak_gpu_mb": gpu,
        "torch": torch.__version__,
        "batches": len(batches),
    }


def original_source(folder: Path, size: str, repo: Path) -> Path:
    """The original's `train/src`, extracted (`git archive`), with the tiny model's size patches when tiny."""
    archive = subprocess.run(
        ["git", "--git-dir", str(repo), "archive", "HEAD", "train/src"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    if size == "tiny":
        patch = ROOT / "tests" / "fixtures" / "train" / "original_patches.diff"
        subprocess.run(["git", "apply", "-p1", str(patch)], cwd=folder, check=True)
    return folder / "train" / "src"


def original(
    size: str,
    model: Path,
    pairs_file: str,
    steps: int,
    batch: int,
    threads: int,
    repo: Path,
    device: str = "cpu",
    python: str = str(REFENV),
    path: str | None = None,
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        src = original_source(Path(tmp), size, repo)
        med = PARITY / "med_config.json" if size == "tiny" else src / "config" / "med_config.json"
        config = Path(tmp) / "config.yaml"
        lines = [
            "blip_path: ''",
            f"med_config: {med}",
            f"checkpoint_base: {tmp}/checkpoint",
            f"visual_base: {tmp}/visual",
            f"log_base: {tmp}/log",
            f"data_base: {tmp}/data",
            f"image_base: {tmp}/images",
            f"pair_store_base: {tmp}/pairs",
            "BLIP:",
            "  vit: 'large'",
            "  image_size: 224",
            "ImageReward:",
            f"  mlp_dim: {64 if size == 'tiny' else 768}",
        ]
        config.write_text("\n".join(lines) + "\n")
        command = [python, str(Path(__file__).parent / "_original_train_worker.py"), "--src", str(src)]
        command += ["--config", str(config), "--preload", str(model / "ImageReward.pt"), "--pairs", pairs_file]
        command += ["--vocab", str(PARITY / "bert-base-uncased-vocab.txt"), "--steps", str(steps)]
        command += ["--batch", str(batch), "--threads", str(threads), "--device", device]
        env = {**os.environ, "PYTHONPATH": path or str(torch_links())}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode:
            raise RuntimeError(done.stderr[-3000:])
        return json.loads(done.stdout.strip().splitlines()[-1])


def child(args: argparse.Namespace) -> None:
    model, pairs_file, mode = args.child
    print(json.dumps(ours(model, pairs_file, args.steps, args.batch, args.threads, mode == "cache", args.device)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--original-repo", type=Path, default=MIRROR, help="the THUDM/ImageReward git directory")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--original-python", default=str(REFENV), help="the Python that runs the original")
    parser.add_argument("--original-path", default=None, help="its PYTHONPATH (default: this torch linked first)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.size == "tiny":
        model = PARITY
    else:
        from bench import make_checkpoint

        model = make_checkpoint(Path.home() / ".cache" / "imagereward-bench")
    with tempfile.TemporaryDirectory() as tmp:
        pairs_file = Path(tmp) / "pairs.json"
        pairs_file.write_text(json.dumps(make_pairs(2 * args.batch, Path(tmp))))
        base = [sys.executable, __file__, "--steps", str(args.steps), "--batch", str(args.batch)]
        base += ["--threads", str(args.threads), "--device", args.device, "--child", str(model), str(pairs_file)]
        runs = {}
        for mode in ("plain", "cache"):
            done = subprocess.run(base + [mode], capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(done.stderr[-3000:])
            runs[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        runs["original"] = original(
            args.size,
            model,
            str(pairs_file),
            args.steps,
            args.batch,
            args.threads,
            args.original_repo,
            args.device,
            args.original_python,
            args.original_path,
        )
    median = {k: statistics.median(v["step_seconds"][1:]) for k, v in runs.items()}
    cached = runs["cache"]["step_seconds"]
    summary = {
        "ours_pairs_per_s": args.batch / median["plain"],
        "original_pairs_per_s": args.batch / median["original"],
        "ratio": median["original"] / median["plain"],
        "ours_peak_mb": runs["plain"]["peak_rss_mb"],
        "original_peak_mb": runs["original"]["peak_rss_mb"],
        # the cache: the first pass over the two batches (steps 1-2: every image encoded, kept), the second
        # (steps 3-4: the frozen blocks read from the cache)
        "cache_first_pass_s": statistics.mean(cached[:2]),
        "cache_second_pass_s": statistics.mean(cached[2:4]),
        "cache_peak_mb": runs["cache"]["peak_rss_mb"],
    }
    summary["cache_speedup"] = summary["cache_first_pass_s"] / summary["cache_second_pass_s"]
    machine = describe(peaks=args.device == "cpu")
    peak = (
        machine.get("gemm_peak_gflops", {}).get("fp32") if isinstance(machine.get("gemm_peak_gflops"), dict) else None
    )
    flops = runs["plain"]["step_flops"]
    summary["step_gflop"] = flops / 1e9
    if peak:  # the same arithmetic for both: the fraction of the measured fp32 GEMM peak each reaches
        summary["ours_of_peak"] = flops / median["plain"] / 1e9 / peak
        summary["original_of_peak"] = flops / median["original"] / 1e9 / peak
    print(json.dumps(summary, indent=1))
    name = f"train_step{'' if args.size == 'tiny' else '_full'}{'' if args.device == 'cpu' else '_cuda'}"
    out = ROOT / "benchmarks" / "runs" / f"{name}.json"
    setup = {
        "size": args.size,
        "steps": args.steps,
        "batch": args.batch,
        "threads": args.threads,
        "device": args.device,
    }
    record = {"machine": machine, "setup": setup, "summary": summary, "runs": runs}
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
