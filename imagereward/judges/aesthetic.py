"""The Aesthetic baseline of the paper's Table 2, as `image-reward` 1.5 computes it (`models/AestheticScore.py`):
the LAION improved-aesthetic-predictor MLP (768-1024-128-64-16-1, Dropouts, **no** activation) on CLIP ViT-L/14's
normalised image feature; the prompt is ignored.

It reads its features from the CLIP tower CLIP score uses (`clip.ClipTower`): loaded with the same file, device
and dtype, the two judges encode an image once between them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from ..images.transforms import ORIGINAL_224
from ..model.checkpoint import load_converted, read_state_dict
from . import clip, sources
from .base import JudgeSpec

AESTHETIC_INPUT = 768  # the original's `MLP(768)`, hard-coded
AESTHETIC_WIDTHS = (1024, 128, 64, 16, 1)


def build_aesthetic_mlp(input_size: int = AESTHETIC_INPUT) -> nn.Sequential:
    """The original `MLP(768).layers`: Linear, Dropout, Linear, Dropout, Linear, Dropout, Linear, Linear (its
    ReLUs are commented out), so that the file's keys `layers.{0,2,4,6,7}` are this module's own."""
    w = (input_size, *AESTHETIC_WIDTHS)
    return nn.Sequential(
        nn.Linear(w[0], w[1]),
        nn.Dropout(0.2),
        nn.Linear(w[1], w[2]),
        nn.Dropout(0.2),
        nn.Linear(w[2], w[3]),
        nn.Dropout(0.1),
        nn.Linear(w[3], w[4]),
        nn.Linear(w[4], w[5]),
    )


def aesthetic_from_state(state: dict[str, torch.Tensor], source: str | Path) -> nn.Module:
    """The aesthetic MLP with every tensor of `state` loaded strictly (the original loads it with
    `strict=False`, which leaves a mis-keyed file's layers random without a word)."""
    mlp = nn.Module()
    mlp.layers = build_aesthetic_mlp()
    load_converted(mlp, state, advice=f"{source} should be the LAION improved-aesthetic-predictor MLP.")
    return mlp


class AestheticScore(clip.TowerJudge):
    """The LAION aesthetic predictor on CLIP ViT-L/14 image features (about 1 to 10); ignores the prompt."""

    tokens_type = type(None)  # its "tokens": the prompt does not count

    def __init__(self, name: str, tower: clip.ClipTower, mlp_path: Path) -> None:
        super().__init__(name, tower)
        if tower.embed_dim != AESTHETIC_INPUT:
            raise CheckpointError(
                f"the aesthetic predictor reads {AESTHETIC_INPUT}-wide CLIP features; this CLIP gives {tower.embed_dim}"
            )
        self.mlp = aesthetic_from_state(read_state_dict(mlp_path), mlp_path).to(self.device).eval()

    def tokenize(self, prompt: str) -> None:
        return None  # the prompt does not count

    @torch.inference_mode()
    def scores_from_features(self, tokens: None, features: torch.Tensor) -> torch.Tensor:
        return self.mlp.layers(features.float()).squeeze(-1).cpu()


def load(
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    download_root: str | Path | None = None,
) -> AestheticScore:
    """The aesthetic predictor: LAION's MLP file and OpenAI's ViT-L/14 file in `download_root` (downloaded
    there if missing); the CLIP tower is shared with a CLIP score loaded alike.

    Raises:
        imagereward.WeightsUnavailableError: a file is missing and could not be downloaded.
        imagereward.CheckpointError: a file is corrupt or does not fit (named).
    """
    mlp = fetch(download_root)
    return AestheticScore(SPEC.name, clip.load_tower(download_root, device, dtype), mlp)


def fetch(download_root: str | Path | None) -> Path:
    """LAION's MLP (and OpenAI's ViT-L/14, which it reads features from) in `download_root`."""
    clip.fetch(download_root)
    return sources.fetch_file(SPEC.weights[1], download_root, SPEC.name)


SPEC = JudgeSpec(
    name="Aesthetic",
    label="Aesthetic",
    load=load,
    fetch=fetch,
    preprocessing=ORIGINAL_224,
    meaning="LAION aesthetic predictor: about 1..10 (5 is average); ignores the prompt",
    # The features' CLIP file (CLIP's own), and LAION's MLP as the original downloads it.
    weights=(
        clip.SPEC.weights[0],
        sources.WeightsFile(
            "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/sac%2Blogos%2Bava1-l14-linearMSE.pth"
        ),
    ),
    prompt_tokens=0,
    paper_accuracy=57.35,
    # The original's benchmark: CLIP's float16 tower, as for CLIP (the MLP stays float32).
    benchmark_dtype="fp16",
)
AestheticScore.spec = SPEC
