"""How fast a model benchmark runs, against the original's `test-benchmark.py`, at full size (random weights).

    python benchmarks/benchmark_rates.py [--models 2] [--prompts 4] [--per-prompt 5] [--judges ImageReward-v1.0 CLIP BLIP]

Generations laid out as the original reads them (`<model>/<id>_<k>.png`, 512 x 512 PNGs, the size Stable
Diffusion 1.x makes), the judges' files at full size with seeded random weights in their published layouts
(ImageReward's checkpoint from `bench.make_checkpoint`; OpenAI's ViT-L/14 as a TorchScript archive of a traced
`clip.model.CLIP`, `_make_clip_archive.py`; Salesforce's BLIP and LAION's MLP from the fixtures' recorded keys,
shapes and dtypes), all made once under ~/.cache/imagereward-bench. Per judge:
- this package: `imagereward benchmark`'s scoring (`run_benchmark`) in the precision the original's benchmark
  uses (ImageReward and BLIP float32, CLIP float16), after a warm-up on one model;
- the original: its own `test-benchmark.py` (`test_benchmark`) in the reference env, the judge's loading timed
  apart and taken out (`_original_benchmark_worker.py`).
Both on the same files in the same run, with the CPU named and its GEMM peak measured (`machine.py`); the image
encoders' arithmetic per image (ViT matrix products and attention) gives the fraction of that peak. Writes
benchmarks/runs/benchmark_rates.json.
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402

CACHE = Path.home() / ".cache" / "imagereward-bench"
BASELINES = ROOT / "tests" / "fixtures" / "parity-baselines"
REFERENCE = ROOT.parent / "shared" / "reference"
REFENV = Path.home() / ".cache" / "imagereward-refenv" / "bin" / "python"
ORIGINAL_SCRIPT = Path("/tmp/test-benchmark.py")
# The image encoders: (tokens, width, layers) of each judge's ViT at 224 px.
ENCODERS = {"ImageReward-v1.0": (197, 1024, 24), "BLIP": (197, 1024, 24), "CLIP": (257, 1024, 24)}


def encoder_flops(tokens: int, width: int, layers: int) -> float:
    """A ViT's multiply-adds x 2 per image: qkv, projection and the 4x MLP (24 T d^2) and attention (4 T^2 d)."""
    return layers * (24 * tokens * width**2 + 4 * tokens**2 * width)


def make_baselines(folder: Path) -> Path:
    """OpenAI's ViT-L-14.pt, Salesforce's model_large.pth, LAION's MLP and THUDM's med_config.json, full size,
    seeded random weights in the recorded layouts (made once)."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    keys = json.loads((BASELINES / "full_state_dict_keys.json").read_text())["files"]
    generator = torch.Generator().manual_seed(0)
    clip_file = folder / "ViT-L-14.pt"
    if not clip_file.is_file():  # a TorchScript archive, as OpenAI's (the original's `clip.load` reads no other)
        maker = Path(__file__).parent / "_make_clip_archive.py"
        subprocess.run([str(REFENV), str(maker), str(clip_file)], check=True)
    for part, entries in keys.items():
        name = part.split("[")[0]
        if (folder / name).is_file():
            continue
        state = {}
        for e in entries:
            dtype = getattr(torch, e["dtype"])
            if dtype.is_floating_point:
                value = torch.randn(e["shape"], generator=generator) * 0.02
                if e["key"].endswith(
                    ("ln_1.weight", "ln_2.weight", "LayerNorm.weight", "norm.weight", "norm1.weight", "norm2.weight")
                ):
                    value = torch.ones(e["shape"])
                state[e["key"]] = value.to(dtype)
            else:
                state[e["key"]] = torch.zeros(e["shape"], dtype=dtype)
                if e["key"].endswith("position_ids"):
                    state[e["key"]] = torch.arange(e["shape"][-1]).expand(e["shape"]).clone()
        torch.save({"model": state} if "['model']" in part else state, folder / f"{name}.tmp")
        os.replace(folder / f"{name}.tmp", folder / name)
    (folder / "med_config.json").write_text((BASELINES / "med_config.full.json").read_text())
    return folder


def make_generations(folder: Path, models: int, prompts: list[dict], per_prompt: int) -> list[str]:
    """512 x 512 PNGs of coloured shapes (each different), as the original lays them out."""
    import numpy as np
    from PIL import Image, ImageDraw

    names = [f"model{m}" for m in range(models)]
    rng = np.random.default_rng(0)
    for name in names:
        (folder / name).mkdir(parents=True, exist_ok=True)
        for item in prompts:
            for k in range(per_prompt):
                path = folder / name / f"{item['id']}_{k}.png"
                if path.is_file():
                    continue
                image = Image.new("RGB", (512, 512), tuple(int(c) for c in rng.integers(0, 256, 3)))
                draw = ImageDraw.Draw(image)
                for _ in range(6):
                    x, y = (int(v) for v in rng.integers(0, 400, 2))
                    draw.ellipse((x, y, x + 100, y + 100), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
                image.save(path)
    return names


def ours(
    judge: str, images: Path, prompts_path: Path, models: list[str], checkpoint: Path, root: Path, device: str = "cpu"
) -> dict:
    import torch

    from imagereward.benchmark import load_prompts, original_dtype, run_benchmark
    from imagereward.judges import load_judge, spec

    torch.set_num_threads(os.cpu_count() or 1)
    prompts = load_prompts(prompts_path)
    options = {"device": device, "dtype": original_dtype(judge), "download_root": str(root)}
    if spec(judge).primary:
        options = {**options, "weights": str(checkpoint), "download_root": None}
    loaded = load_judge(judge, **options)
    loaded.embedding_cache.resize(0)  # every run encodes every image, as the original does
    run_benchmark(images, [(judge, loaded)], prompts, models[:1])  # warm-up
    t = time.perf_counter()
    bench = run_benchmark(images, [(judge, loaded)], prompts, models)
    seconds = time.perf_counter() - t
    n = sum(int((~torch.isnan(torch.from_numpy(t.rewards))).sum()) for t in bench.tables.values())
    return {"seconds": seconds, "images": n, "scores": bench.tables[judge].scores()}


def original(judge: str, images: Path, prompts_path: Path, models: list[str], checkpoint: Path, root: Path) -> dict:
    worker = Path(__file__).parent / "_original_benchmark_worker.py"
    command = [str(REFENV), str(worker), "--reference", str(REFERENCE), "--script", str(ORIGINAL_SCRIPT)]
    command += ["--judge", judge, "--images", str(images), "--prompts", str(prompts_path), "--models", ",".join(models)]
    command += ["--checkpoint", str(checkpoint), "--root", str(root)]
    # The original runs on this package's torch (its torch and torchvision linked first on its path, the rest
    # of the reference env its own), so that the two differ in their code, not in torch's kernels.
    links = CACHE / "torch-links"
    if not links.is_dir():
        links.mkdir(parents=True)
        site = Path(torch_site())
        for entry in site.iterdir():
            if entry.name in (
                "torch",
                "torchgen",
                "functorch",
                "torchvision",
                "torchvision.libs",
                "nvidia",
                "triton",
            ) or (entry.name.startswith(("torch-", "torchvision-")) and entry.name.endswith(".dist-info")):
                (links / entry.name).symlink_to(entry)
    env = {**os.environ, "PYTHONPATH": str(links)}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def torch_site() -> str:
    import torch

    return str(Path(torch.__file__).resolve().parent.parent)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--per-prompt", type=int, default=5)
    parser.add_argument("--judges", nargs="+", default=["ImageReward-v1.0", "CLIP", "BLIP"])
    parser.add_argument("--no-original", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the original is timed on the CPU only)")
    args = parser.parse_args()
    from bench import make_checkpoint

    checkpoint = make_checkpoint(CACHE)
    root = make_baselines(CACHE / "baselines")
    work = CACHE / f"generations-{args.models}x{args.prompts}x{args.per_prompt}"
    prompts = json.loads((ROOT / "imagereward" / "benchmark" / "benchmark-prompts.json").read_text())[: args.prompts]
    work.mkdir(parents=True, exist_ok=True)
    prompts_path = work / "prompts.json"
    prompts_path.write_text(json.dumps(prompts))
    images = work / "images"
    models = make_generations(images, args.models, prompts, args.per_prompt)
    machine = describe(peaks=True)
    runs = []
    for judge in args.judges:
        mine = ours(judge, images, prompts_path, models, checkpoint, root, args.device)
        row = {"judge": judge, "ours_s": mine["seconds"], "images": mine["images"]}
        row["ours_images_per_s"] = mine["images"] / mine["seconds"]
        flops = encoder_flops(*ENCODERS[judge])
        row["encoder_gflop_per_image"] = flops / 1e9
        # against the fp32 GEMM peak (CLIP computes in fp16, whose peak is not measured: the same reference)
        row["fraction_of_fp32_peak"] = row["ours_images_per_s"] * flops / (machine["gemm_peak_gflops"]["fp32"] * 1e9)
        if not args.no_original and args.device == "cpu":
            theirs = original(judge, images, prompts_path, models, checkpoint, root)
            row["original_s"] = theirs["scoring_seconds"]
            row["original_torch"] = theirs["torch"]
            row["original_images_per_s"] = mine["images"] / theirs["scoring_seconds"]
            row["speedup"] = theirs["scoring_seconds"] / mine["seconds"]
            row["max_score_difference"] = max(abs(mine["scores"][m] - theirs["scores"][m]) for m in models)
        print(json.dumps(row), flush=True)
        runs.append(row)
    out = ROOT / "benchmarks" / "runs" / "benchmark_rates.json"
    setup = {"models": args.models, "prompts": args.prompts, "per_prompt": args.per_prompt, "size": 512}
    out.write_text(json.dumps({"machine": machine, "setup": setup, "runs": runs}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
