"""Typed architecture configuration for ImageReward.

One frozen dataclass describes every size of the model, from the tiny test models to the published
ImageReward-v1.0 (BLIP ViT-L/16 + BERT-base with cross-attention, Xu et al. 2023, arXiv 2304.05977).
The text part reads the original's ``med_config.json``; the vision part reads an optional
``vision_config.json`` (absent for the published checkpoint, which is ViT-L/16).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

# The original normalises the head's raw output with these constants (ImageReward.py, `self.mean` /
# `self.std`): statistics of the raw reward over the training set, so that 0 is an average generation.
REWARD_MEAN = 0.16717362830052426
REWARD_STD = 1.0333394966054072

# The head's layer widths after its input (ImageReward.py `MLP`): 1024 -> 128 -> 64 -> 16 -> 1.
HEAD_WIDTHS = (1024, 128, 64, 16, 1)

# The prompt is padded and truncated to this many tokens, [CLS] and [SEP] included.
MAX_PROMPT_TOKENS = 35


@dataclass(frozen=True)
class VisionConfig:
    """BLIP's ViT image encoder (timm ``VisionTransformer``, class token, no head)."""

    image_size: int = 224
    patch_size: int = 16
    width: int = 1024
    depth: int = 24
    heads: int = 16
    mlp_ratio: float = 4.0
    layer_norm_eps: float = 1e-6

    @property
    def num_tokens(self) -> int:
        """Patch tokens plus the class token (197 for ViT-L/16 at 224 px)."""
        return (self.image_size // self.patch_size) ** 2 + 1


@dataclass(frozen=True)
class TextConfig:
    """BLIP's BERT text encoder with cross-attention to the image tokens (``med_config.json``)."""

    vocab_size: int = 30524
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0


@dataclass(frozen=True)
class HeadConfig:
    """The original's MLP head on the text CLS feature, and the normalisation of its output."""

    widths: tuple[int, ...] = HEAD_WIDTHS
    reward_mean: float = REWARD_MEAN
    reward_std: float = REWARD_STD


@dataclass(frozen=True)
class ModelConfig:
    """The whole reward model: image encoder, text encoder and head. The head reads the text CLS feature,
    so its input size is the text width."""

    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    head: HeadConfig = field(default_factory=HeadConfig)

    @property
    def head_input_size(self) -> int:
        return self.text.hidden_size


def _known_fields(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in values.items() if k in names}


def text_config_from_med(med: Mapping[str, Any]) -> TextConfig:
    """Reads the original's ``med_config.json`` (a BERT config).

    ``encoder_width`` in that file is ignored on purpose: the original overwrites it with the ViT width
    (``blip_pretrain.py``), so cross-attention keys and values always take the image encoder's width.
    """
    required = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    missing = [k for k in required if k not in med]
    if missing:
        raise ValueError(f"med_config is missing {missing}; it should be the BERT config published with the checkpoint")
    return TextConfig(**_known_fields(TextConfig, med))


def vision_config_from_dict(values: Mapping[str, Any]) -> VisionConfig:
    unknown = sorted(set(values) - {f.name for f in fields(VisionConfig)})
    if unknown:
        raise ValueError(
            f"vision_config has unknown keys {unknown}; valid keys: {[f.name for f in fields(VisionConfig)]}"
        )
    return VisionConfig(**values)


def read_json(source: str | Path | Mapping[str, Any], what: str) -> dict[str, Any]:
    """Reads a JSON config given as a path or returns a copy of a mapping already in memory."""
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {path} is not valid JSON: {e}") from e
