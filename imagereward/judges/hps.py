"""HPSv2.1 (Wu et al., 2023), as `hpsv2.score(images, prompt, hps_version="v2.1")` computes it (hpsv2 1.2.0):

- open_clip's `ViT-H-14` (exact GELU, pre-LN blocks, causal text mask, pooling at the first end id) with
  every tensor from `HPS_v2.1_compressed.pt` (`{"state_dict": ...}`, loaded strictly: LAION's weights, which
  the original downloads first and then overwrites, are never needed);
- score = cosine of the normalised image and text features (the stored `logit_scale` is not used);
- tokens: the open_clip tokenizer HPSv2 vendors (`bpe.OPEN_CLIP`: ftfy, `html.unescape` twice, zero padding,
  a literal `<end_of_text>` is the end id);
- pixels: `preprocessing.LETTERBOX` (with its two documented differences: RGBA is scored as RGB, and a
  non-square image whose long side is 224 is padded like any other).

The original scores one image at a time, re-reading the checkpoint at every call and, on CUDA, under
`torch.cuda.amp.autocast()`; here images are batched and the weights loaded once, float16 on CUDA by default
(within ~1e-3 of float32, like the original's autocast).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..images.transforms import LETTERBOX, Preprocessing
from ..model.checkpoint import load_converted, read_state_dict
from ..model.factory import resolve_device, resolve_dtype
from . import sources
from .base import JudgeSpec
from .bpe import CONTEXT_LENGTH, OPEN_CLIP
from .clip import ClipScore, ClipTower, placed

ARCHITECTURE = "ViT-H-14"
HPS_CONFIG = "open_clip_config.json"  # optional, in a download_root only: the architecture if not ViT-H-14


def architecture(config_file: Path | None) -> dict[str, Any]:
    """open_clip's model config: `open_clip_config.json` (`{"model_cfg": {...}}`, as open_clip lays out its
    own) when given, else open_clip's `ViT-H-14` (HPSv2's architecture; heads cannot be read off weights).

    Raises:
        CheckpointError: the file is unreadable or has no `model_cfg`.
    """
    if config_file is None:
        import open_clip

        return open_clip.get_model_config(ARCHITECTURE)
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"could not read {config_file} ({e})") from e
    cfg = raw.get("model_cfg", raw) if isinstance(raw, dict) else None
    if not isinstance(cfg, dict) or not {"embed_dim", "vision_cfg", "text_cfg"} <= set(cfg):
        raise CheckpointError(
            f"{config_file} should hold an open_clip model config: "
            '{"model_cfg": {"embed_dim": ..., "vision_cfg": {...}, "text_cfg": {...}}}'
        )
    return cfg


def hps_from_state(state: dict[str, torch.Tensor], config: dict[str, Any], source: str | Path) -> nn.Module:
    """open_clip's CLIP built on the meta device from `config`, every tensor of `state` assigned strictly
    (errors name the file's keys). Meta tensors give a meta model (for checking layouts)."""
    from open_clip.model import CLIP

    with torch.device("meta"):
        model = CLIP(**config)
    load_converted(model, state, advice=f"{source} should be HPSv2's HPS_v2.1_compressed.pt (open_clip ViT-H-14).")
    n = model.context_length
    model.attn_mask = torch.full((n, n), float("-inf")).triu_(1)  # the causal mask: a buffer not in the file
    return model


class HpsScore(ClipScore):
    """HPSv2.1: cosine of its ViT-H/14 text and image features (about 0.2..0.35 for typical generations): CLIP
    score's computation with HPSv2's tokenizer flavour and letterboxed pixels."""

    flavour = OPEN_CLIP
    preprocessing_kind = LETTERBOX


def load_hps(
    weights: Path, config_file: Path | None, device: torch.device, dtype: torch.dtype, name: str = ""
) -> HpsScore:
    """HPSv2.1 from its checkpoint (float16 or float32 tensors: upcast in float32) and optional config; in
    half precision with CLIP's mixed layout (see `clip.placed`)."""
    model = hps_from_state(read_state_dict(weights), architecture(config_file), weights)
    return HpsScore(name, ClipTower(placed(model, device, dtype)))


def load(
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    download_root: str | Path | None = None,
) -> HpsScore:
    """HPSv2.1 from `HPS_v2.1_compressed.pt` (`SPEC.weights`: the Hugging Face cache, or `download_root`),
    fetched if missing.

    Raises:
        imagereward.WeightsUnavailableError: the file is missing and could not be downloaded.
        imagereward.CheckpointError: the file is corrupt or does not fit (named).
    """
    target = resolve_device(device)
    weights, config = fetch(download_root)
    return load_hps(weights, config, target, resolve_dtype(dtype, target), SPEC.name)


def fetch(download_root: str | Path | None) -> tuple[Path, Path | None]:
    """HPSv2.1's checkpoint and optional architecture (`SPEC.weights`; the architecture from `HPS_CONFIG`, optional)."""
    weights = sources.fetch_file(SPEC.weights[0], download_root, SPEC.name)
    folder = sources.download_root(download_root) if download_root is not None else None
    config = folder / HPS_CONFIG if folder is not None and (folder / HPS_CONFIG).is_file() else None
    return weights, config


SPEC = JudgeSpec(
    name="HPSv2.1",
    label="HPSv2.1",
    load=load,
    fetch=fetch,
    preprocessing=Preprocessing(LETTERBOX, 224),
    meaning="cosine of its CLIP ViT-H/14 features, -1..1 (typically 0.2..0.35)",
    # The checkpoint `hpsv2.score` fetches, kept as it is in a download root (not in a subfolder).
    weights=(sources.HubFile(sources.HubRepo("xswu/HPSv2"), ("HPS_v2.1_compressed.pt",), in_root=True),),
    prompt_tokens=CONTEXT_LENGTH,
    differentiable=True,
)
HpsScore.spec = SPEC
