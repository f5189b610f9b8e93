"""Ranking a set of images for one prompt, robustly: the images that can be read are ranked, the others are
reported by name. Shared by the app and the command line."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .config import MAX_PROMPT_TOKENS
from .errors import ImageLoadError, NonFiniteRewardError
from .images import ImageInput, describe
from .reward import ImageReward, ranks_from_rewards
from .tokenizer import count_tokens


@dataclass(frozen=True)
class RankedImage:
    """One scored image. `rank` is 1 for the best, as in the original's `inference_rank`."""

    rank: int
    name: str
    score: float
    source: Any


@dataclass(frozen=True)
class Ranking:
    """Scored images best first, the inputs that could not be read or scored, and how long scoring took."""

    ranked: list[RankedImage]
    failures: list[ImageLoadError] = field(default_factory=list)
    seconds: float = 0.0
    prompt_tokens: int = 0

    @property
    def prompt_truncated(self) -> bool:
        return self.prompt_tokens > MAX_PROMPT_TOKENS


class InputError(ValueError):
    """Input that cannot be scored at all (no prompt, no readable image); the message says what to do.
    `failures` lists the images that could not be read or scored, if that was the reason."""

    def __init__(self, message: str, failures: Sequence[ImageLoadError] = ()) -> None:
        super().__init__(message)
        self.failures = list(failures)


def display_name(image: ImageInput, index: int) -> str:
    """The file name of a path, else a short description of the input."""
    if isinstance(image, (str, Path)):
        return Path(image).name
    return describe(image, index)


def rank_images(
    model: ImageReward,
    prompt: str,
    images: Sequence[ImageInput],
    names: Sequence[str] | None = None,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Ranking:
    """Scores `images` for `prompt` and sorts them best first; images that could not be read or scored
    become `failures`.

    Raises:
        InputError: the prompt is empty, there are no images, or none of them could be read or scored.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("Type a prompt first: the score says how well each image fits the prompt.")
    if not images:
        raise InputError("Add at least one image to score.")
    names = list(names) if names is not None else [display_name(img, i) for i, img in enumerate(images)]
    start = time.perf_counter()
    results = model.try_rewards(prompt, images, batch_size=batch_size, names=names, progress=progress)
    seconds = time.perf_counter() - start
    failures = [r for r in results if isinstance(r, ImageLoadError)]
    scored = [(i, r) for i, r in enumerate(results) if not isinstance(r, ImageLoadError)]
    if not scored:
        reasons = "; ".join(str(f) for f in failures)
        if all(isinstance(f, NonFiniteRewardError) for f in failures):
            raise InputError(f"None of the images could be scored ({reasons}).", failures)
        raise InputError(f"None of the images could be read ({reasons}). Use PNG, JPEG, WEBP or GIF files.", failures)
    ranks = ranks_from_rewards([r for _, r in scored])
    ranked = sorted(
        (RankedImage(rank, names[i], float(r), images[i]) for (i, r), rank in zip(scored, ranks)),
        key=lambda item: item.rank,
    )
    return Ranking(ranked, failures, seconds, count_tokens(prompt))
