"""A training step of the reward model, this package's against the original training code's, on the same model,
the same pairs, the same CPU and the same torch, side by side in one run: pairs per second and peak memory; and
this package's with the frozen ViT blocks' output cached, first pass against second.

    python benchmarks/bench_train.py [--size tiny|full] [--steps 4] [--batch 8] [--threads 2]

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


def make_pairs(count: int) -> list[list[str]]:
    """`count` (prompt, better, worse) pairs over the parity images and prompts, fixed."""
    images = sorted(str(p) for p in (PARITY / "images").iterdir())[:9]
    prompts = [p["prompt"] for p in json.loads((PARITY / "expected.json").read_text())["rank"] if p["prompt"].strip()]
    return [[prompts[k % len(prompts)], images[k % 9], images[(3 * k + 1) % 9]] for k in range(count)]


def ours(model: str, pairs_file: str, steps: int, batch: int, threads: int, cache: bool) -> dict:
    import torch

    import imagereward
    from imagereward.training import RewardTrainer, TrainConfig

    torch.set_num_threads(threads)
    torch.manual_seed(1234)
    pairs = [tuple(p) for p in json.loads(Path(pairs_file).read_text())]
    config = TrainConfig.original(batch_size=batch, accumulation_steps=1, total_steps=100, cache_features=cache)
    trainer = RewardTrainer(imagereward.load(model, device="cpu", dtype="float32"), config)
    batches = [pairs[i : i + batch] for i in range(0, len(pairs), batch)]
    times = []
    for step in range(steps):
        start = time.perf_counter()
        trainer.step(batches[step % len(batches)])
        times.append(time.perf_counter() - start)
    return {"step_seconds": times, "peak_rss_mb": peak_mb(), "torch": torch.__version__, "batches": len(batches)}


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


def original(size: str, model: Path, pairs_file: str, steps: int, batch: int, threads: int, repo: Path) -> dict:
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
        command = [str(REFENV), str(Path(__file__).parent / "_original_train_worker.py"), "--src", str(src)]
        command += ["--config", str(config), "--preload", str(model / "ImageReward.pt"), "--pairs", pairs_file]
        command += ["--vocab", str(PARITY / "bert-base-uncased-vocab.txt"), "--steps", str(steps)]
        command += ["--batch", str(batch), "--threads", str(threads)]
        env = {**os.environ, "PYTHONPATH": str(torch_links())}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode:
            raise RuntimeError(done.stderr[-3000:])
        return json.loads(done.stdout.strip().splitlines()[-1])


def child(args: argparse.Namespace) -> None:
    model, pairs_file, mode = args.child
    print(json.dumps(ours(model, pairs_file, args.steps, args.batch, args.threads, mode == "cache")))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--original-repo", type=Path, default=MIRROR, help="the THUDM/ImageReward git directory")
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
        pairs_file.write_text(json.dumps(make_pairs(2 * args.batch)))
        base = [sys.executable, __file__, "--steps", str(args.steps), "--batch", str(args.batch)]
        base += ["--threads", str(args.threads), "--child", str(model), str(pairs_file)]
        runs = {}
        for mode in ("plain", "cache"):
            done = subprocess.run(base + [mode], capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(done.stderr[-3000:])
            runs[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        runs["original"] = original(
            args.size, model, str(pairs_file), args.steps, args.batch, args.threads, args.original_repo
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
    print(json.dumps(summary, indent=1))
    out = ROOT / "benchmarks" / "runs" / f"train_step{'' if args.size == 'tiny' else '_full'}.json"
    setup = {"size": args.size, "steps": args.steps, "batch": args.batch, "threads": args.threads}
    record = {"machine": describe(peaks=False), "setup": setup, "summary": summary, "runs": runs}
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
