"""What the app needs besides widgets: settings from the environment, loading the model without ever
crashing the page, a label saying which weights run where, and one request turned into a `Ranking`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from . import formatting
from .errors import ImageRewardError
from .factory import load
from .pretrained import available_models
from .ranking import Ranking, rank_images
from .reward import ImageReward

DEFAULT_MAX_IMAGES = 32


@dataclass(frozen=True)
class Settings:
    """`IMAGEREWARD_MODEL` (registry name or local path), `IMAGEREWARD_DEVICE`, `IMAGEREWARD_DTYPE`,
    `IMAGEREWARD_MAX_IMAGES`."""

    model: str = "ImageReward-v1.0"
    device: str | None = None
    dtype: str | None = None
    max_images: int = DEFAULT_MAX_IMAGES

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        raw_max = env.get("IMAGEREWARD_MAX_IMAGES", str(DEFAULT_MAX_IMAGES))
        if not raw_max.isdigit() or int(raw_max) < 1:
            raise ValueError(f"IMAGEREWARD_MAX_IMAGES must be a positive whole number, got {raw_max!r}")
        return cls(
            model=env.get("IMAGEREWARD_MODEL") or cls.model,
            device=env.get("IMAGEREWARD_DEVICE") or None,
            dtype=env.get("IMAGEREWARD_DTYPE") or None,
            max_images=int(raw_max),
        )


@dataclass(frozen=True)
class LoadedModel:
    """The model, or why there is none; `label` is what the page shows either way."""

    model: ImageReward | None
    label: str
    error: str | None = None


def model_label(model: ImageReward) -> str:
    """E.g. `ImageReward-v1.0 on cuda (float16)`."""
    dtype = str(model.dtype).replace("torch.", "")
    return f"{model.name} on {model.device.type} ({dtype})"


def load_for_serving(settings: Settings) -> LoadedModel:
    """Loads the configured weights, or returns the reason they could not be loaded and what to do.
    Never substitutes other weights."""
    try:
        model = load(settings.model, device=settings.device, dtype=settings.dtype)
    except (ImageRewardError, OSError, ValueError) as e:
        advice = (
            "Set IMAGEREWARD_MODEL to a local folder holding ImageReward.pt and med_config.json, "
            "or to a registry name whose files are in the Hugging Face cache "
            f"(available: {', '.join(available_models())}), then restart the app."
        )
        return LoadedModel(None, f"{settings.model} (not loaded)", f"The model could not be loaded: {e} {advice}")
    return LoadedModel(model, model_label(model))


def warm_up(model: ImageReward) -> None:
    """One pass on a blank image so that the first visitor does not pay for lazy initialisation."""
    model.rewards("warm-up", [Image.new("RGB", (224, 224)), Image.new("RGB", (256, 224), "white")])
    model.embedding_cache.clear()


def gallery_paths(value: Sequence[Any] | None) -> list[str]:
    """File paths from a `gr.Gallery(type="filepath")` value: `[(path, caption), ...]` or plain paths."""
    paths = []
    for item in value or []:
        path = item[0] if isinstance(item, (list, tuple)) else item
        if isinstance(path, dict):  # the API may pass file data dicts
            path = path.get("path") or (path.get("image") or {}).get("path")
        paths.append(str(path))
    return paths


def rank_request(
    model: ImageReward, prompt: str, images: Sequence[Any] | None, max_images: int
) -> tuple[Ranking, list[str]]:
    """Ranks one request's images (at most `max_images`) and lists the warnings to show.

    Raises:
        imagereward.ranking.InputError: nothing could be scored; the message says why.
    """
    paths = gallery_paths(images)
    notes = []
    if len(paths) > max_images:
        notes.append(formatting.too_many_images(len(paths), max_images))
        paths = paths[:max_images]
    ranking = rank_images(model, prompt, paths)  # images are named by their file names
    return ranking, notes + formatting.warnings_for(ranking)


def read_examples(folder: Path) -> list[list[Any]]:
    """`examples/examples.json` as rows of [prompt, [image paths]] for `gr.Examples`."""
    entries = json.loads((folder / "examples.json").read_text(encoding="utf-8"))
    return [[e["prompt"], [str(folder / "images" / name) for name in e["images"]]] for e in entries]
