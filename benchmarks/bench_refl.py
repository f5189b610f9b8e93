"""One ReFL step, this package's against the original trainer's, on the same pipeline, the same CPU and the same
torch, side by side in one run: seconds per optimizer step and peak memory, with and without gradient
checkpointing.

    python benchmarks/bench_refl.py [--size tiny|mid] [--steps 4] [--threads 2] [--batch 2] [--device cpu|cuda]

`--size tiny`: the parity fixture's pipeline. `--size mid`: a UNet of about 300 million parameters (SD 1.5's
layout at 0.6 of its widths) with SD 1.5's text encoder and a three-block VAE, random weights, so that the
original's hard-coded 64 x 64 latents make 256 px images; built once into ~/.cache/imagereward-bench/refl-mid.
`--device cuda` runs both sides on the GPU (the original's accelerate picks it) and records the GPU's peak memory
too; the GPU run the issue asks for is `--size mid --device cuda --batch 8` (and SD 1.5's size:
`refl_sd15_cost.py --device cuda --batch 8`).

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


PROMPTS = ROOT / "tests" / "fixtures" / "refl" / "prompts.json"
MID = Path.home() / ".cache" / "imagereward-bench" / "refl-mid"


def build_mid(folder: Path) -> Path:
    """The mid-size pipeline (see the module doc), built once (`refl_sd15_cost.build_pipeline` at 0.6 of SD 1.5's
    UNet widths, with a three-block VAE)."""
    from refl_sd15_cost import build_pipeline

    if (folder / "model_index.json").is_file():
        return folder
    return build_pipeline(folder, unet_widths=(192, 384, 768, 768), vae_widths=(128, 256, 512))


def ours(pipeline: str, steps: int, threads: int, checkpointing: bool, batch: int, device: str) -> dict:
    import torch

    from imagereward.refl import ReFLConfig, ReFLTrainer

    torch.set_num_threads(threads)
    config = ReFLConfig.original(
        learning_rate=1e-3,
        grad_scale=1000.0,
        gradient_accumulation_steps=1,
        train_batch_size=batch,
        seed=1234,
        gradient_checkpointing=checkpointing,
    )
    trainer = ReFLTrainer(pipeline, str(ROOT / "tests" / "fixtures" / "parity"), config, device=device)
    prompts = [p["text"] for p in json.loads(PROMPTS.read_text())]
    times = []
    for k in range(steps):
        t = time.perf_counter()
        trainer.step([prompts[(batch * k + j) % len(prompts)] for j in range(batch)])
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    return {"step_seconds": times, "peak_rss_mb": peak_mb(), "peak_gpu_mb": gpu, "torch": torch.__version__}


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


def original(
    pipeline: str, steps: int, threads: int, checkpointing: bool, batch: int, python: str, path: str | None
) -> dict:
    """The original trainer's run: the reference env's Python with this torch linked first (here), or on a lent
    GPU machine the machine's Python with the kit's wheels first (`training_gpu_run.sh`)."""
    worker = Path(__file__).parent / "_original_refl_worker.py"
    command = [
        python,
        str(worker),
        "--pipeline",
        pipeline,
        "--prompts",
        str(PROMPTS),
    ]
    command += ["--steps", str(steps), "--threads", str(threads), "--batch", str(batch)] + (
        ["--gradient-checkpointing"] if checkpointing else []
    )
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path or str(torch_links())}
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", choices=["tiny", "mid"], default="tiny")
    parser.add_argument("--pipeline", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--original-python", default=str(REFENV), help="the Python that runs the original")
    parser.add_argument("--original-path", default=None, help="its PYTHONPATH (default: this torch linked first)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pipeline is None:
        tiny = ROOT / "tests" / "fixtures" / "refl" / "pipeline"
        args.pipeline = str(tiny if args.size == "tiny" else build_mid(MID))
    if args.child:
        mode = args.child[1] == "checkpointing"
        print(json.dumps(ours(args.pipeline, args.steps, args.threads, mode, args.batch, args.device)))
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
                "--batch",
                str(args.batch),
                "--device",
                args.device,
                "--child",
                "ours",
                mode,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        mine = json.loads(done.stdout.strip().splitlines()[-1])
        theirs = original(
            args.pipeline, args.steps, args.threads, checkpointing, args.batch, args.original_python, args.original_path
        )
        row = {
            "gradient_checkpointing": checkpointing,
            "ours_step_s": statistics.median(mine["step_seconds"][1:]),
            "original_step_s": statistics.median(theirs["step_seconds"][1:]),
            "ours_peak_mb": mine["peak_rss_mb"],
            "original_peak_mb": theirs["peak_rss_mb"],
            "ours_peak_gpu_mb": mine.get("peak_gpu_mb"),
            "original_peak_gpu_mb": theirs.get("peak_gpu_mb"),
            "torch": [mine["torch"], theirs["torch"]],
        }
        row["speedup"] = row["original_step_s"] / row["ours_step_s"]
        print(json.dumps(row), flush=True)
        runs.append(row)
    name = "refl_step" + ("" if args.size == "tiny" else "_mid") + ("" if args.device == "cpu" else "_cuda")
    out = ROOT / "benchmarks" / "runs" / f"{name}.json"
    setup = {
        "size": args.size,
        "pipeline": args.pipeline,
        "steps": args.steps,
        "threads": args.threads,
        "batch": args.batch,
        "device": args.device,
    }
    out.write_text(json.dumps({"machine": describe(peaks=False), "setup": setup, "runs": runs}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
