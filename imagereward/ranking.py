"""Ranking a set of images for one prompt, robustly: the images that can be read are ranked, the others are
reported by name. Shared by the app and the command line."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import ImageError, InputError, NonFiniteRewardError
from .images.decoding import Decoder
from .images.reading import FORMATS_TEXT, ImageInput, describe
from .judges import spec
from .judges.base import Judge, Result, Scored, ranks_from_rewards
from .judges.imagereward import ImageReward
from .judges.reading import Reading
from .model.config import MAX_PROMPT_TOKENS
from .model.tokenizer import PromptTokens, encode_prompt

__all__ = ["RankedImage", "Ranking", "add_judges", "rank_images", "rank_results", "rank_with_judges", "unique_names"]

# Images decoded at a time when several judges score the same images: bounds the pixels held in memory (about
# 150 kB each).
PANEL_CHUNK = 256


@dataclass(frozen=True)
class RankedImage:
    """One scored image. `rank` is 1 for the best, as in the original's `inference_rank`; `precision` is the
    dtype that computed the score (e.g. `float16`, or `float32` where float16 overflowed)."""

    rank: int
    name: str
    score: float
    source: Any
    precision: str = "float32"
    # With several judges: each judge's score and rank among the images it scored (None: it could not).
    scores: dict[str, float | None] = field(default_factory=dict)
    ranks: dict[str, int | None] = field(default_factory=dict)
    # A judge's choice among the images it scored, where it defines one (PickScore: its probabilities).
    choices: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Ranking:
    """Scored images best first, the inputs that could not be read or scored, how long scoring took, and
    how much of the prompt the model read."""

    ranked: list[RankedImage]
    failures: list[ImageError] = field(default_factory=list)
    seconds: float = 0.0
    prompt_tokens: int = 0
    prompt_complete: bool = True
    # With several judges: their names, the ranking's own (the first) first; and what each other judge
    # could not score among the ranked images.
    judges: list[str] = field(default_factory=list)
    judge_failures: list[tuple[str, ImageError]] = field(default_factory=list)
    # What each judge read of the prompt, by label, where it was asked.
    readings: dict[str, Reading] = field(default_factory=dict)

    @property
    def prompt_truncated(self) -> bool:
        return self.prompt_tokens > MAX_PROMPT_TOKENS

    def ordered_by(self, judge: str) -> list[RankedImage]:
        """The ranked images in `judge`'s order (images it could not score last); its own order by default."""
        if judge not in self.judges or judge == self.judges[0]:
            return list(self.ranked)
        return sorted(self.ranked, key=lambda item: (item.ranks.get(judge) is None, item.ranks.get(judge) or 0))

    def agreement(self) -> dict[str, tuple[int, int]]:
        """For each other judge: (image pairs it orders as the first judge does, pairs both order strictly)."""
        if len(self.judges) < 2:
            return {}
        first = [item.scores[self.judges[0]] for item in self.ranked]
        return {j: pairs_agreeing(first, [item.scores.get(j) for item in self.ranked]) for j in self.judges[1:]}


def add_judges(ranking: Ranking, first: str, others: dict[str, Sequence[Result]], names: Sequence[str]) -> Ranking:
    """The ranking with every judge's score and rank on each ranked image (`others[j][i]` is judge j's
    result for `names[i]`); an image another judge could not score gets None there and is named in
    `judge_failures`."""
    index = {name: i for i, name in enumerate(names)}
    scores = {first: [item.score for item in ranking.ranked]}
    failures: list[tuple[str, ImageError]] = []
    for judge, results in others.items():
        mine = [results[index[item.name]] for item in ranking.ranked]
        scores[judge] = [score_or_none(r) for r in mine]
        failures += [(judge, r) for r in mine if isinstance(r, ImageError)]
    ranks = {judge: _over_scored(ranks_from_rewards, values) for judge, values in scores.items()}
    choice_of = {judge: spec(judge).choice for judge in scores}
    choices = {judge: _over_scored(choice_of[judge], values) for judge, values in scores.items() if choice_of[judge]}
    ranked = [
        replace(
            item,
            scores={j: scores[j][k] for j in scores},
            ranks={j: ranks[j][k] for j in ranks},
            choices={j: choices[j][k] for j in choices},
        )
        for k, item in enumerate(ranking.ranked)
    ]
    return replace(ranking, ranked=ranked, judges=list(scores), judge_failures=failures)


def _over_scored(fn: Callable[[list[float]], list[Any]], values: Sequence[float | None]) -> list[Any]:
    """`fn` (ranks, PickScore's softmax, ...) over the values that are not None (the images a judge scored),
    in place; None where a judge could not score."""
    present = [k for k, v in enumerate(values) if v is not None]
    out: list[Any] = [None] * len(values)
    if present:
        for k, value in zip(present, fn([values[k] for k in present])):  # type: ignore[misc]
            out[k] = value
    return out


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
    tokens: PromptTokens | None,
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
    ranks = ranks_from_rewards([r.score for _, r in scored])
    ranked = sorted(
        (RankedImage(rank, names[i], float(r.score), sources[i], r.precision) for (i, r), rank in zip(scored, ranks)),
        key=lambda item: item.rank,
    )
    if tokens is None:  # a judge that does not say how much of the prompt it read
        return Ranking(ranked, failures, seconds)
    return Ranking(ranked, failures, seconds, tokens.length, tokens.complete)


def judge_results(
    judges: Sequence[Judge],
    prompt: str,
    images: Sequence[ImageInput],
    names: Sequence[str],
    progress: Callable[[int], None] | None = None,
    chunk_size: int = PANEL_CHUNK,
) -> list[list[Result]]:
    """Each judge's results (in `judges` order) for the same images, in input order: `chunk_size` images at a
    time, each file decoded once for all the judges' preprocessings (`Decoder.decode`)."""
    out: list[list[Result]] = [[] for _ in judges]
    kinds = [judge.preprocessing for judge in judges]
    with Decoder() as decoder:
        for start in range(0, len(images), chunk_size):
            chunk, chunk_names = images[start : start + chunk_size], names[start : start + chunk_size]
            decoded = decoder.decode(chunk, chunk_names, kinds)
            for k, judge in enumerate(judges):
                out[k].extend(judge.score_decoded(prompt, decoded[judge.preprocessing], chunk_names))
            if progress is not None:
                progress(len(chunk))
    return out


def rank_with_judges(
    judges: Sequence[Judge],
    prompt: str,
    images: Sequence[ImageInput],
    names: Sequence[str],
    progress: Callable[[int], None] | None = None,
) -> Ranking:
    """`images` ranked by the first judge, with every judge's score and rank (files decoded once for all).

    Args:
        judges: the judges, the ranking one first.
        prompt, images, names, progress: as `rank_images`.

    Returns:
        The ranking, each image carrying every judge's score and rank by label.

    Raises:
        InputError: the prompt is empty, there are no images, or the first judge could score none of them.
    """
    check_prompt(prompt)
    if not images:
        raise InputError("Add at least one image to score.")
    start = time.perf_counter()
    results = judge_results(judges, prompt, images, names, progress)
    tokens = judges[0].prompt_tokens(prompt)
    ranking = rank_results(
        results[0], names, images, tokens if isinstance(tokens, PromptTokens) else None, time.perf_counter() - start
    )
    labels = [judge.spec.label for judge in judges]
    return add_judges(ranking, labels[0], dict(zip(labels[1:], results[1:])), names)


def pairs_agreeing(a: Sequence[float | None], b: Sequence[float | None]) -> tuple[int, int]:
    """(pairs ordered the same way by both, pairs both order strictly), over the images both scored."""
    both = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    same = total = 0
    for i in range(len(both)):
        for j in range(i + 1, len(both)):
            da, db = both[i][0] - both[j][0], both[i][1] - both[j][1]
            if da == 0 or db == 0:
                continue
            total += 1
            same += (da > 0) == (db > 0)
    return same, total


def score_or_none(result: Result) -> float | None:
    """A result's score, or None for an error."""
    return result.score if isinstance(result, Scored) else None


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

    Args:
        model: the ranking judge.
        prompt: one prompt.
        images: the inputs (see `Judge.rewards`).
        names: how the ranking names them (default: file names, or type and position).
        batch_size: images per forward pass.
        progress: called with the number of images done.

    Returns:
        The ranking, with how much of the prompt the model read.

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
