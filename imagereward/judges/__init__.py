"""Judges besides ImageReward, by name: the paper's Table 2 baselines (CLIP, BLIP, Aesthetic), a drop-in for
the original's `ImageReward.load_score`, and the modern judges PickScore and HPSv2.1; and `load_judge`, which
takes any judge's name, ImageReward's too.

Each judge is a `scorer.BatchedScorer`: the same `score` / `inference_rank` as its original, plus batched
`rewards` / `try_rewards` / `results`, parallel decoding and a cache of image features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..factory import resolve_device, resolve_dtype
from ..preprocessing import LETTERBOX, ORIGINAL_224, RGB_RESIZE_CROP, Preprocessing
from ..scorer import BatchedScorer
from . import sources
from .blip import BlipScore, load_blip
from .clip import AestheticScore, ClipScore, shared_tower
from .hps import HpsScore, load_hps
from .pickscore import PickScore, load_pickscore, softmax

BASELINES = ("CLIP", "BLIP", "Aesthetic")
MODERN = ("PickScore", "HPSv2.1")
SCORES = BASELINES + MODERN
IMAGEREWARD = "ImageReward-v1.0"

# What each judge's score means, for people reading a table of them.
MEANINGS = {
    IMAGEREWARD: "ImageReward: predicted human preference; 0 is an average generation, most scores in -2..2",
    "CLIP": "CLIP score: cosine of CLIP ViT-L/14 text and image features, -1..1 (typically 0.1..0.4)",
    "BLIP": "BLIP score: cosine of BLIP's projected text and image features, -1..1",
    "Aesthetic": "LAION aesthetic predictor: about 1..10 (5 is average); ignores the prompt",
    "PickScore": "PickScore v1: 100 x cosine of its CLIP ViT-H/14 features, typically 15..25; its choice is the "
    "softmax of the scores over the images compared",
    "HPSv2.1": "HPSv2.1: cosine of its CLIP ViT-H/14 features, -1..1 (typically 0.2..0.35)",
}


# How each judge's original prepares an image, known before the judge is loaded (bulk scoring decodes in other
# processes than the judges'); a loaded judge's `preprocessing` says the same.
PREPROCESSING = {
    **{name: ORIGINAL_224 for name in (IMAGEREWARD, *BASELINES)},
    "PickScore": Preprocessing(RGB_RESIZE_CROP, 224),
    "HPSv2.1": Preprocessing(LETTERBOX, 224),
}

# A judge's "choice" among the images scored together, where its original defines one: PickScore's README
# turns its scores into probabilities with a softmax ("PickScore's choice").
CHOICES = {"PickScore": softmax}


def available_scores() -> list[str]:
    """The judges `load_score` knows: the original's `ImageReward.available_scores()` (the Table 2 baselines),
    then PickScore and HPSv2.1."""
    return list(SCORES)


def available_judges() -> list[str]:
    """Every judge `load_judge` knows: ImageReward, the baselines, PickScore and HPSv2.1."""
    return [IMAGEREWARD, *SCORES]


def load_score(
    name: str = "CLIP",
    device: str | torch.device | None = None,
    download_root: str | Path | None = None,
    dtype: str | torch.dtype | None = None,
) -> BatchedScorer:
    """Loads a Table 2 baseline (a drop-in for the original's `ImageReward.load_score`), PickScore or HPSv2.1.

    Args:
        name: one of `available_scores()`.
        device: default CUDA when available, else the CPU.
        download_root: the folder that holds (or receives) the original's files under their original names:
            `ViT-L-14.pt` (CLIP, Aesthetic), `sac%2Blogos%2Bava1-l14-linearMSE.pth` (Aesthetic),
            `model_large.pth` and `med_config.json` (BLIP; an optional `vision_config.json` gives BLIP's ViT
            dims); default `~/.cache/ImageReward`, as the original. A file found there is used as it is.
            PickScore: `<root>/yuvalkirstain-PickScore_v1/` (`config.json`, `model.safetensors`) and
            `<root>/laion-CLIP-ViT-H-14-laion2B-s32B-b79K/` (`tokenizer.json`, `preprocessor_config.json`);
            HPSv2.1: `<root>/HPS_v2.1_compressed.pt` and optionally `<root>/open_clip_config.json` (the
            architecture, when not ViT-H-14). For these two the default is the Hugging Face cache, as their
            originals use.
        dtype: default float32 on the CPU (the original's numbers) and float16 on CUDA (CLIP's own
            precision there; BLIP and the aesthetic MLP read float32 features either way).

    Raises:
        ValueError: unknown name, device or dtype.
        imagereward.WeightsUnavailableError: a file is missing and could not be downloaded.
        imagereward.CheckpointError: a file that is corrupt or whose keys or shapes do not fit, named.
    """
    if name not in SCORES:
        raise ValueError(f"unknown score {name!r}; available scores: {available_scores()}")
    target = resolve_device(device)
    target_dtype = resolve_dtype(dtype, target)
    if name == "PickScore":
        model_dir, processor_dir = sources.pickscore_folders(download_root)
        return load_pickscore(model_dir, processor_dir, target, target_dtype)
    if name == "HPSv2.1":
        weights, config = sources.hps_files(download_root)
        return load_hps(weights, config, target, target_dtype)
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
    if name in SCORES:
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
    "HpsScore",
    "PickScore",
    "available_judges",
    "available_scores",
    "load_judge",
    "load_score",
]
