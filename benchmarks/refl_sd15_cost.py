"""What a ReFL step costs at Stable Diffusion 1.5's real size on this CPU (512 px, batch 1), the rollout without
gradients and the trained step apart, with and without gradient checkpointing.

    python benchmarks/refl_sd15_cost.py [--threads 2] [--device cpu|cuda] [--batch 1]

On a GPU (`--device cuda --batch 8`) it also records the GPU's peak memory and the steps per second.

SD 1.5's architecture with seeded random weights, built in memory (no download): the UNet (320-640-1280-1280,
cross-attention 768, 860 M parameters), the VAE (128-256-512-512), CLIP ViT-L/14's text encoder, and ImageReward
at full size (`bench.make_checkpoint`). Each variant in a fresh process (its peak resident memory, VmHWM, its
own). Times: the `mid_timestep` steps without gradients (per UNet call), and the trained step (its UNet call,
the VAE decode, the reward, the backward pass, clipping and AdamW). Writes benchmarks/runs/refl_sd15_cost.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402

MID = 35


SD15_UNET = (320, 640, 1280, 1280)
SD15_VAE = (128, 256, 512, 512)


def build_pipeline(
    folder: Path, unet_widths: tuple[int, ...] = SD15_UNET, vae_widths: tuple[int, ...] = SD15_VAE
) -> Path:
    """SD 1.5's parts with random weights (the UNet's and the VAE's widths as given: SD 1.5's by default), saved
    as a diffusers folder with the tiny pipeline's tokenizer and scheduler (they do not change the cost); the
    VAE makes 64 x 64 latents into `64 * 2 ** (len(vae_widths) - 1)` px. `model_index.json` is written last, so a
    folder that has it is whole."""
    import shutil

    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tiny = ROOT / "tests" / "fixtures" / "refl" / "pipeline"
    for part in ("tokenizer", "scheduler"):
        shutil.copytree(tiny / part, folder / part)
    UNet2DConditionModel(
        sample_size=64,
        cross_attention_dim=768,
        attention_head_dim=8,
        block_out_channels=unet_widths,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    ).save_pretrained(folder / "unet")
    AutoencoderKL(
        block_out_channels=vae_widths,
        down_block_types=("DownEncoderBlock2D",) * len(vae_widths),
        up_block_types=("UpDecoderBlock2D",) * len(vae_widths),
        layers_per_block=2,
        latent_channels=4,
        sample_size=64 * 2 ** (len(vae_widths) - 1),
    ).save_pretrained(folder / "vae")
    config = CLIPTextConfig(
        vocab_size=770,
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
    )
    CLIPTextModel(config).save_pretrained(folder / "text_encoder")
    shutil.copy(tiny / "model_index.json", folder / "model_index.json")
    return folder


def child(folder: str, reward: str, checkpointing: bool, threads: int, device: str, batch: int) -> dict:
    import torch

    from imagereward.refl import ReFLConfig, ReFLTrainer

    torch.set_num_threads(threads)
    config = ReFLConfig.original(
        gradient_accumulation_steps=1, train_batch_size=batch, seed=0, gradient_checkpointing=checkpointing
    )
    trainer = ReFLTrainer(folder, reward, config, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    calls: list[float] = []
    unet = trainer.accelerator.unwrap_model(trainer.unet)

    def mark(module: torch.nn.Module, args: tuple) -> None:  # returns None: the call's arguments unchanged
        sync()
        calls.append(time.perf_counter())

    unet.register_forward_pre_hook(mark)
    prompts = ["a photograph of an astronaut riding a horse"] * batch
    generator = torch.Generator(device=device).manual_seed(0)
    start = time.perf_counter()
    trainer.step(prompts, mid_timestep=MID, generator=generator)
    sync()
    end = time.perf_counter()
    rollout = calls[MID] - start  # up to the trained step's UNet call
    peak = next(
        int(line.split()[1]) / 1024
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmHWM")
    )
    return {
        "rollout_s": rollout,
        "per_unet_call_s": rollout / MID,
        "trained_step_s": end - calls[MID],
        "total_s": end - start,
        "peak_rss_mb": peak,
        "unet_parameters": sum(p.numel() for p in unet.parameters()),
        "steps_per_second": 1 / (end - start),
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        found = child(args.child[0], args.child[1], args.child[2] == "1", args.threads, args.device, args.batch)
        print(json.dumps(found))
        return
    from bench import make_checkpoint

    reward = make_checkpoint(Path.home() / ".cache" / "imagereward-bench")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sd15"
        build_pipeline(folder)
        for checkpointing in ("0", "1"):
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--threads",
                    str(args.threads),
                    "--device",
                    args.device,
                    "--batch",
                    str(args.batch),
                    "--child",
                    str(folder),
                    str(reward),
                    checkpointing,
                ],
                capture_output=True,
                text=True,
            )
            if done.returncode:
                raise RuntimeError(done.stderr[-3000:])
            row = {"gradient_checkpointing": checkpointing == "1", **json.loads(done.stdout.strip().splitlines()[-1])}
            print(json.dumps(row), flush=True)
            runs.append(row)
    out = ROOT / "benchmarks" / "runs" / ("refl_sd15_cost.json" if args.device == "cpu" else "refl_sd15_cost_cuda.json")
    setup = {"mid_timestep": MID, "device": args.device, "batch": args.batch}
    out.write_text(json.dumps({"machine": describe(peaks=False), **setup, "runs": runs}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
