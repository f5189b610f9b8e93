"""The BLIP baseline of the paper's Table 2, as `image-reward` 1.5 computes it (`models/BLIPScore.py`):
BLIP's ViT-L/16 and its BERT in text-only mode (no cross-attention), score = cosine of
`text_proj(text CLS)` and `vision_proj(image CLS)`, prompts padded and truncated to 35 BERT tokens.

The network is the one ImageReward is built from (`model.py`), loaded from Salesforce's `model_large.pth`:
only `checkpoint['model']` is read, no position-embedding interpolation. The original loads it with
`strict=False`; here every key is loaded strictly except a named allow-list of what BLIP's scorer never uses.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from ..images import reading as imgs
from ..images.transforms import ORIGINAL_224, RESIZE_CROP, Preprocessing
from ..model.checkpoint import load_converted, read_state_dict
from ..model.config import MAX_PROMPT_TOKENS, ModelConfig, read_json, text_config_from_med, vision_config_from_dict
from ..model.factory import resolve_device, resolve_dtype
from ..model.network import build_text_encoder, build_vision_encoder, text_cls
from ..model.tokenizer import PromptTokens, encode_prompt, prompt_pieces
from . import sources
from .base import Baseline, JudgeSpec

# What BLIP pre-training saved besides the scorer: momentum encoders and projections, the contrastive queues
# and temperature, the image-text matching head, the captioning decoder; the text encoder's cross-attention
# (unused in text-only mode) and its position-id buffer (rebuilt).
IGNORED = re.compile(
    r"^(?:visual_encoder_m\.|text_encoder_m\.|vision_proj_m\.|text_proj_m\.|itm_head\.|text_decoder\."
    r"|temp$|image_queue$|text_queue$|queue_ptr$|idx_queue$|ptr_queue$"
    r"|text_encoder\.encoder\.layer\.\d+\.crossattention\.|text_encoder\.embeddings\.position_ids$)"
)


def is_ignored(key: str) -> bool:
    return IGNORED.match(key) is not None


class BlipScore(Baseline):
    """BLIP score: cosine of BLIP's projected text and image CLS features (about -1 to 1)."""

    tokens_type = PromptTokens

    def __init__(self, config: ModelConfig, embed_dim: int, name: str = "") -> None:
        super().__init__(name)
        self.config = config
        self.preprocessing = Preprocessing(RESIZE_CROP, config.vision.image_size)
        self.visual_encoder = build_vision_encoder(config.vision)
        self.text_encoder = build_text_encoder(config, cross_attention=False)
        self.vision_proj = nn.Linear(config.vision.width, embed_dim)
        self.text_proj = nn.Linear(config.text.hidden_size, embed_dim)

    @property
    def device(self) -> torch.device:
        return self.visual_encoder.cls_token.device

    @property
    def dtype(self) -> torch.dtype:
        return self.visual_encoder.cls_token.dtype

    def tokenize(self, prompt: str) -> PromptTokens:
        return encode_prompt(prompt)

    def prompt_pieces(self, text: str) -> list[str]:
        return prompt_pieces(text)

    def features_from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, 224, 224) -> normalised `vision_proj(image CLS)` (N, embed) float32."""
        cls = self.visual_encoder(imgs.normalize(pixels).to(self.dtype))[:, 0, :]
        return F.normalize(self.vision_proj(cls), dim=-1).float()

    @torch.inference_mode()
    def text_features(self, tokens: PromptTokens) -> torch.Tensor:
        ids, mask = tokens.input_ids.to(self.device), tokens.attention_mask.to(self.device)
        return F.normalize(self.text_proj(text_cls(self.text_encoder, ids, mask))).float()

    @torch.inference_mode()
    def scores_from_features(self, tokens: PromptTokens, features: torch.Tensor) -> torch.Tensor:
        return (features.float() * self.text_features(tokens)).sum(dim=1).cpu()


def blip_config(med_config: Path, vision_config: Path | None = None) -> ModelConfig:
    """BLIP's dims: the BERT of `med_config.json`; the ViT of `vision_config.json`, else ViT-L/16."""
    config = ModelConfig(text=text_config_from_med(read_json(med_config, "med_config")))
    if vision_config is not None:
        config = dataclasses.replace(config, vision=vision_config_from_dict(read_json(vision_config, "vision_config")))
    return config


def blip_from_state(state: dict[str, torch.Tensor], config: ModelConfig, source: str | Path) -> BlipScore:
    """BLIP's scorer built on the meta device with `state` (`model_large.pth['model']`) loaded strictly, but
    for the named `IGNORED` keys; errors name the file's keys. Meta tensors give a meta model."""
    state = {k: v for k, v in state.items() if not is_ignored(k)}
    if "vision_proj.weight" not in state:
        raise CheckpointError(f"{source} is not a BLIP checkpoint: missing keys [vision_proj.weight]")
    with torch.device("meta"):
        model = BlipScore(config, embed_dim=state["vision_proj.weight"].shape[0])
    load_converted(
        model,
        state,
        advice=f"{source} should be Salesforce's BLIP model_large.pth, with THUDM's med_config.json beside it.",
    )
    model.text_encoder.embeddings.position_ids = torch.arange(config.text.max_position_embeddings).expand((1, -1))
    return model


def load_blip(
    weights: Path, med_config: Path, device: torch.device, dtype: torch.dtype, vision_config: Path | None = None
) -> BlipScore:
    """BLIP's scorer from `model_large.pth` (only its `model` entry is read) and `med_config.json`."""
    model = blip_from_state(read_state_dict(weights), blip_config(med_config, vision_config), weights)
    return model.to(device=device, dtype=dtype).eval()


def load(
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    download_root: str | Path | None = None,
) -> BlipScore:
    """BLIP score from Salesforce's `model_large.pth` and THUDM's `med_config.json` in `download_root`
    (downloaded there if missing; an optional `vision_config.json` there gives the ViT's dims).

    Raises:
        imagereward.WeightsUnavailableError: a file is missing and could not be downloaded.
        imagereward.CheckpointError: a file is corrupt or does not fit (named).
    """
    target = resolve_device(device)
    weights, med_config = fetch(download_root)
    vision = sources.download_root(download_root) / "vision_config.json"
    model = load_blip(weights, med_config, target, resolve_dtype(dtype, target), vision if vision.is_file() else None)
    model.name = SPEC.name
    return model


def fetch(download_root: str | Path | None) -> tuple[Path, Path]:
    """Salesforce's `model_large.pth` and THUDM's `med_config.json` in `download_root`."""
    weights, med_config = (sources.fetch_file(w, download_root, SPEC.name) for w in SPEC.weights)
    return weights, med_config


SPEC = JudgeSpec(
    name="BLIP",
    label="BLIP",
    load=load,
    fetch=fetch,
    preprocessing=ORIGINAL_224,
    meaning="cosine of BLIP's projected text and image features, -1..1",
    # Salesforce's file and THUDM's BERT config (kept in the download root), as the original fetches them.
    weights=(
        sources.WeightsFile("https://storage.googleapis.com/sfr-vision-language-research/BLIP/models/model_large.pth"),
        sources.HubFile(sources.HubRepo("THUDM/ImageReward"), ("med_config.json",), in_root=True, original_cache=True),
    ),
    prompt_tokens=MAX_PROMPT_TOKENS,
    paper_accuracy=57.76,
    # The original's benchmark: `load_score` keeps BLIP's float32 on every device.
    benchmark_dtype="fp32",
)
BlipScore.spec = SPEC
