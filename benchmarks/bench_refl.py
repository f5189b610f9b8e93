"""One ReFL step, this package's against the original trainer's, on the same pipeline, the same CPU and the same
torch, side by side in one run: seconds per optimizer step and peak memory, with and without gradient
checkpointing.

    python benchmarks/bench_refl.py [--pipeline tests/fixtures/refl/pipeline] [--steps 4] [--threads 2]

Each variant runs in a fresh process (its peak resident memory, VmHWM, is its own): this package's
`ReFLTrainer.step` on the original's settings (batch 2, accumulation 1, float32), and the original's own
`ReFL.Trainer.train` in the reference env (`_original_refl_worker.py`, given this package's torch first on its
path). The first step (warm-up) is left out of the median. Writes benchmarks/runs/refl_step.json with the CPU
named.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402

REFENV = Path.home() / ".cache" / "imagereward-refenv" / "bin" / "python"
TORCH_PACKAGES = ("torch", "torchgen", "functorch", "torchvision", "torchvision.libs", "nvidia", "triton")


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def ours(pipeline: str, steps: int, threads: int, checkpointing: bool) -> dict:
    import torch

    from imagereward.refl import ReFLConfig, ReFLTrainer

    torch.set_num_threads(threads)
    config = ReFLConfig.original(
        learning_rate=1e-3,
        grad_scale=1000.0,
        gradient_accumulation_steps=1,
        seed=1234,
        gradient_checkpointing=checkpointing,
    )
    trainer = ReFLTrainer(pipeline, str(ROOT / "tests" / "fixtures" / "parity"), config, device="cpu")
    prompts = [p["text"] for p in json.loads((Path(pipeline).parent / "prompts.json").read_text())]
    times = []
    for k in range(steps):
        t = time.perf_counter()
        trainer.step(prompts[2 * k % len(prompts) : 2 * k % len(prompts) + 2])
        times.append(time.perf_counter() - t)
    return {"step_seconds": times, "peak_rss_mb": peak_mb(), "torch": torch.__version__}


def torch_links() -> Path:
    import torch

    site = Path(torch.__file__).resolve().parent.parent
    links = Path.home() / ".cache" / "imagereward-bench" / "torch-links"
    if not links.is_dir():
        links.mkdir(parents=True)
        for entry in site.iterdir():
            if entry.name in TORCH_PACKAGES or (
                entry.name.startswith(("torch-", "torchvision-")) and entry.name.endswith(".dist-info")
            ):
                (links / entry.name).symlink_to(entry)
    return links


def original(pipeline: str, steps: int, threads: int, checkpointing: bool) -> dict:
    worker = Path(__file__).parent / "_original_refl_worker.py"
    command = [
        str(REFENV),
        str(worker),
        "--pipeline",
        pipeline,
        "--prompts",
        str(Path(pipeline).parent / "prompts.json"),
    ]
    command += ["--steps", str(steps), "--threads", str(threads)] + (
        ["--gradient-checkpointing"] if checkpointing else []
    )
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(torch_links())})
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pipeline", default=str(ROOT / "tests" / "fixtures" / "refl" / "pipeline"))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(ours(args.pipeline, args.steps, args.threads, args.child[1] == "checkpointing")))
        return
    runs = []
    for checkpointing in (False, True):
        mode = "checkpointing" if checkpointing else "plain"
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--pipeline",
                args.pipeline,
                "--steps",
                str(args.steps),
                "--threads",
                str(args.threads),
                "--child",
                "ours",
                mode,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        mine = json.loads(done.stdout.strip().splitlines()[-1])
        theirs = original(args.pipeline, args.steps, args.threads, checkpointing)
        row = {
            "gradient_checkpointing": checkpointing,
            "ours_step_s": statistics.median(mine["step_seconds"][1:]),
            "original_step_s": statistics.median(theirs["step_seconds"][1:]),
            "ours_peak_mb": mine["peak_rss_mb"],
            "original_peak_mb": theirs["peak_rss_mb"],
            "torch": [mine["torch"], theirs["torch"]],
        }
        row["speedup"] = row["original_step_s"] / row["ours_step_s"]
        print(json.dumps(row), flush=True)
        runs.append(row)
    out = ROOT / "benchmarks" / "runs" / "refl_step.json"
    setup = {"pipeline": args.pipeline, "steps": args.steps, "threads": args.threads, "batch": 2}
    out.write_text(json.dumps({"machine": describe(peaks=False), "setup": setup, "runs": runs}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
