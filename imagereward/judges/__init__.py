"""Judges besides ImageReward, by name: the paper's Table 2 baselines (CLIP, BLIP, Aesthetic), a drop-in for
the original's `ImageReward.load_score`; and `load_judge`, which takes any judge's name, ImageReward's too.

Each judge is a `scorer.BatchedScorer`: the same `score` / `inference_rank` as its original, plus batched
`rewards` / `try_rewards` / `results`, parallel decoding and a cache of image features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..factory import resolve_device, resolve_dtype
from ..scorer import BatchedScorer
from . import sources
from .blip import BlipScore, load_blip
from .clip import AestheticScore, ClipScore, shared_tower

BASELINES = ("CLIP", "BLIP", "Aesthetic")
IMAGEREWARD = "ImageReward-v1.0"

# What each judge's score means, for people reading a table of them.
MEANINGS = {
    IMAGEREWARD: "ImageReward: predicted human preference; 0 is an average generation, most scores in -2..2",
    "CLIP": "CLIP score: cosine of CLIP ViT-L/14 text and image features, -1..1 (typically 0.1..0.4)",
    "BLIP": "BLIP score: cosine of BLIP's projected text and image features, -1..1",
    "Aesthetic": "LAION aesthetic predictor: about 1..10 (5 is average); ignores the prompt",
}


def available_scores() -> list[str]:
    """The baselines `load_score` knows, as the original's `ImageReward.available_scores()`."""
    return list(BASELINES)


def available_judges() -> list[str]:
    """Every judge `load_judge` knows: ImageReward and the baselines."""
    return [IMAGEREWARD, *BASELINES]


def load_score(
    name: str = "CLIP",
    device: str | torch.device | None = None,
    download_root: str | Path | None = None,
    dtype: str | torch.dtype | None = None,
) -> BatchedScorer:
    """Loads a Table 2 baseline, a drop-in for the original's `ImageReward.load_score`.

    Args:
        name: one of `available_scores()`.
        device: default CUDA when available, else the CPU.
        download_root: the folder that holds (or receives) the original's files under their original names:
            `ViT-L-14.pt` (CLIP, Aesthetic), `sac%2Blogos%2Bava1-l14-linearMSE.pth` (Aesthetic),
            `model_large.pth` and `med_config.json` (BLIP; an optional `vision_config.json` gives BLIP's ViT
            dims); default `~/.cache/ImageReward`, as the original. A file found there is used as it is.
        dtype: default float32 on the CPU (the original's numbers) and float16 on CUDA (CLIP's own
            precision there; BLIP and the aesthetic MLP read float32 features either way).

    Raises:
        ValueError: unknown name, device or dtype.
        imagereward.WeightsUnavailableError: a file is missing and could not be downloaded.
        imagereward.CheckpointError: a file that is corrupt or whose keys or shapes do not fit, named.
    """
    if name not in BASELINES:
        raise ValueError(f"unknown score {name!r}; available scores: {available_scores()}")
    target = resolve_device(device)
    target_dtype = resolve_dtype(dtype, target)
    if name == "BLIP":
        root = sources.download_root(download_root)
        weights = sources.find_or_download(sources.BLIP_FILE, download_root, "BLIP")
        vision = root / "vision_config.json"
        model = load_blip(
            weights, sources.med_config(download_root), target, target_dtype, vision if vision.is_file() else None
        )
        return model
    tower = shared_tower(sources.find_or_download(sources.CLIP_FILE, download_root, "CLIP"), target, target_dtype)
    if name == "CLIP":
        return ClipScore("CLIP", tower)
    mlp = sources.find_or_download(sources.AESTHETIC_FILE, download_root, "Aesthetic")
    return AestheticScore("Aesthetic", tower, mlp)


def load_judge(name: str, download_root: str | Path | None = None, **kwargs: Any) -> BatchedScorer:
    """Any judge by name: ImageReward (`imagereward.load`: a registry name or a local path) or a baseline.

    Raises:
        ValueError: an unknown name (the message lists the judges).
    """
    if name in BASELINES:
        return load_score(name, download_root=download_root, **kwargs)
    from ..factory import load

    try:
        return load(name, download_root=download_root, **kwargs)
    except ValueError as e:
        if "unknown model" in str(e):
            raise ValueError(
                f"unknown judge {name!r}; available judges: {available_judges()} (or a checkpoint path)"
            ) from e
        raise


__all__ = [
    "AestheticScore",
    "BlipScore",
    "ClipScore",
    "available_judges",
    "available_scores",
    "load_judge",
    "load_score",
]
