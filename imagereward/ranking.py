"""Ranking a set of images for one prompt, robustly: the images that can be read are ranked, the others are
reported by name. Shared by the app and the command line."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .config import MAX_PROMPT_TOKENS
from .errors import ImageError, InputError, NonFiniteRewardError
from .images import FORMATS_TEXT, ImageInput, describe
from .reward import ImageReward
from .scorer import Result, Scored, ranks_from_rewards
from .tokenizer import PromptTokens, encode_prompt

__all__ = ["InputError", "RankedImage", "Ranking", "rank_images", "rank_results", "unique_names"]


@dataclass(frozen=True)
class RankedImage:
    """One scored image. `rank` is 1 for the best, as in the original's `inference_rank`; `precision` is the
    dtype that computed the score (e.g. `float16`, or `float32` where float16 overflowed)."""

    rank: int
    name: str
    score: float
    source: Any
    precision: str = "float32"

    def row(self) -> dict[str, Any]:
        """The result row the API and downloads use: rank, name, score (unrounded), precision."""
        return {"rank": self.rank, "name": self.name, "score": self.score, "precision": self.precision}


@dataclass(frozen=True)
class Ranking:
    """Scored images best first, the inputs that could not be read or scored, how long scoring took, and
    how much of the prompt the model read."""

    ranked: list[RankedImage]
    failures: list[ImageError] = field(default_factory=list)
    seconds: float = 0.0
    prompt_tokens: int = 0
    prompt_complete: bool = True

    @property
    def prompt_truncated(self) -> bool:
        return self.prompt_tokens > MAX_PROMPT_TOKENS


def display_name(image: ImageInput, index: int) -> str:
    """The file name of a path, else a short description of the input."""
    if isinstance(image, (str, Path)):
        return Path(image).name
    return describe(image, index)


def unique_names(names: Sequence[str]) -> list[str]:
    """Names made distinct by numbering repeats: `image.png`, `image.png (2)`, `image.png (3)`."""
    taken: set[str] = set()
    out = []
    for name in names:
        candidate, count = name, 1
        while candidate in taken:
            count += 1
            candidate = f"{name} ({count})"
        taken.add(candidate)
        out.append(candidate)
    return out


def check_prompt(prompt: Any) -> str:
    """The prompt, if it is one.

    Raises:
        InputError: not a string, or blank.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("Type a prompt first: the score says how well each image fits the prompt.")
    return prompt


def rank_results(
    results: Sequence[Result],
    names: Sequence[str],
    sources: Sequence[Any],
    tokens: PromptTokens,
    seconds: float = 0.0,
    failures: Sequence[ImageError] = (),
) -> Ranking:
    """Sorts scored results best first; the errors among them (and `failures` found before scoring) are
    reported.

    Raises:
        InputError: none of the images could be read or scored.
    """
    failures = [*failures, *(r for r in results if isinstance(r, ImageError))]
    scored = [(i, r) for i, r in enumerate(results) if isinstance(r, Scored)]
    if not scored:
        reasons = "; ".join(str(f) for f in failures)
        if failures and all(isinstance(f, NonFiniteRewardError) for f in failures):
            raise InputError(f"None of the images could be scored ({reasons}).", failures)
        raise InputError(f"None of the images could be read ({reasons}). Use {FORMATS_TEXT} files.", failures)
    ranks = ranks_from_rewards([r.reward for _, r in scored])
    ranked = sorted(
        (
            RankedImage(rank, names[i], float(r.reward), sources[i], str(r.dtype).removeprefix("torch."))
            for (i, r), rank in zip(scored, ranks)
        ),
        key=lambda item: item.rank,
    )
    return Ranking(ranked, failures, seconds, tokens.length, tokens.complete)


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
    tokens = encode_prompt(check_prompt(prompt))
    if not images:
        raise InputError("Add at least one image to score.")
    names = list(names) if names is not None else [display_name(img, i) for i, img in enumerate(images)]
    start = time.perf_counter()
    results = model.results(tokens, images, batch_size=batch_size, names=names, progress=progress)
    return rank_results(results, names, images, tokens, time.perf_counter() - start)
