"""The images the pretraining loss denoises (the paper's pretraining data, as pairs of a caption and an image): a
manifest, JSON (`[{"text", "image"}]`, the original's own field names) or JSONL, each `image` a path relative to
the manifest; read as diffusers' text-to-image training reads them (resize the short side to the pipeline's size,
bilinear, centre crop, to [-1, 1]). A row whose image is missing or unreadable is named and left out, never
dropped without a word."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch

from ..errors import InputError


def load_pretrain_data(path: str | Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """The manifest's (caption, image path) pairs, and a sentence for each row left out.

    Raises:
        InputError: not such a manifest, or no usable row (the message says what is expected).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        rows = (
            [json.loads(line) for line in text.splitlines() if line.strip()]
            if path.suffix == ".jsonl"
            else json.loads(text)
        )
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(
            f'cannot read the pretraining data {path}: {e}; give JSON or JSONL rows {{"text", "image"}}'
        ) from None
    if not isinstance(rows, list):
        raise InputError(f'{path}: the pretraining data is a list of {{"text": caption, "image": path}} rows')
    pairs, skipped = [], []
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not isinstance(row.get("image"), str):
            skipped.append(f'{path}, row {number}: not {{"text": caption, "image": path}}')
            continue
        image = path.parent / row["image"]
        if not image.is_file():
            skipped.append(f"{path}, row {number}: no image {row['image']}")
            continue
        pairs.append((row["text"], image))
    if not pairs:
        raise InputError(f"{path} holds no usable row: " + "; ".join(skipped[:3]))
    return pairs, skipped


def pretrain_images(paths: Sequence[Path], size: int) -> torch.Tensor:
    """(B, 3, size, size) in [-1, 1], as diffusers' `train_text_to_image` prepares its images.

    Raises:
        ImageError: an image that cannot be read (named).
    """
    from torchvision.transforms import functional as TF

    from ..images.reading import open_image

    out = []
    for path in paths:
        image = open_image(str(path), name=path.name).convert("RGB")
        image = TF.center_crop(TF.resize(image, [size], interpolation=TF.InterpolationMode.BILINEAR), [size, size])
        out.append(TF.normalize(TF.to_tensor(image), [0.5], [0.5]))
    return torch.stack(out)
