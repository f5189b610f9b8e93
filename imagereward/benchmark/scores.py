"""Scoring a benchmark as the original's `test-benchmark.py` does (its files: `original_files.py`), each file
decoded once and each judge's image encoder run once per file, in batches across prompts.

Per judge and model: each prompt's generations are scored, the prompt's `mean_score` is the mean of their
rewards, and the model's score is the mean over prompts of those means (`numpy.mean`, in float64, as the
original computes them). A prompt with a missing or unreadable generation is left out of its model's figure
(the original stops there) and named, with the file and why, in `missing` and `unreadable`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ImageError
from .layout import Generations, Prompt


@dataclass
class ModelScores:
    """One judge's scores of one model's generations."""

    judge: str
    model: str
    items: list[dict[str, Any]] = field(default_factory=list)  # the original's result rows, for covered prompts
    missing: dict[str, list[str]] = field(default_factory=dict)  # prompt id -> files not found
    unreadable: dict[str, list[str]] = field(default_factory=dict)  # prompt id -> "file: why"

    @property
    def covered(self) -> list[str]:
        """The prompt ids the model's figure covers (every generation scored)."""
        return [item["id"] for item in self.items]

    @property
    def score(self) -> float:
        """The mean over covered prompts of the mean over their generations (NaN when none is covered)."""
        return float(np.mean([item["mean_score"] for item in self.items])) if self.items else float("nan")

    @property
    def rewards(self) -> dict[str, list[float]]:
        """Each covered prompt's rewards, by id."""
        return {item["id"]: list(item["rewards"]) for item in self.items}


# Generations decoded at once (each as every preprocessing the judges need): at most about 256 x 3 x 150 kB.
DECODE_CHUNK = 256


def score_models(
    judges: Sequence[tuple[str, Any]],
    prompts: Sequence[Prompt],
    generations: Sequence[Generations],
    progress: Callable[[int], None] | None = None,
) -> dict[str, list[ModelScores]]:
    """Every model's generations scored by every judge (`judges`: (name, loaded judge)): each file decoded once
    for all the judges' preprocessings, each judge's image encoder run once per file in batches across prompts
    (`Judge.score_pairs`), whatever the number of prompts. Returns judge -> one `ModelScores` per model."""
    from ..images.decoding import Decoder

    kinds = list(dict.fromkeys(judge.preprocessing for _, judge in judges))
    out: dict[str, list[ModelScores]] = {name: [] for name, _ in judges}
    decoder = Decoder()
    try:
        for g in generations:
            pairs = [
                (prompt, path)
                for prompt in prompts
                if prompt.id not in g.missing
                for path in g.files.get(prompt.id, [])
            ]
            results: dict[str, list[Any]] = {name: [] for name, _ in judges}
            for s in range(0, len(pairs), DECODE_CHUNK):
                chunk = pairs[s : s + DECODE_CHUNK]
                names = [path.name for _, path in chunk]
                decoded = decoder.decode([str(path) for _, path in chunk], names, kinds)
                for name, judge in judges:
                    results[name] += _scored(judge, [p.prompt for p, _ in chunk], decoded[judge.preprocessing], names)
                if progress is not None:
                    progress(len(chunk))
            for name, _ in judges:
                out[name].append(_model_scores(name, g, prompts, pairs, results[name]))
    finally:
        decoder.close()
    return out


def _scored(judge: Any, prompts: list[str], decoded: list[Any], names: list[str]) -> list[Any]:
    """Each pair's score, or the error why not (an image that could not be read is not scored)."""
    good = [k for k, d in enumerate(decoded) if not isinstance(d, ImageError)]
    out: list[Any] = list(decoded)
    scored = judge.score_pairs([prompts[k] for k in good], [decoded[k] for k in good], [names[k] for k in good])
    for k, result in zip(good, scored):
        out[k] = result
    return out


def _model_scores(
    judge: str, g: Generations, prompts: Sequence[Prompt], pairs: list[tuple[Prompt, Path]], results: list[Any]
) -> ModelScores:
    """One model's figure from its generations' results: a prompt with an error is named, not counted."""
    from ..judges.base import Scored

    out = ModelScores(judge, g.model, missing=dict(g.missing))
    by_prompt: dict[str, list[tuple[Path, Any]]] = {}
    for (prompt, path), result in zip(pairs, results):
        by_prompt.setdefault(prompt.id, []).append((path, result))
    for prompt in prompts:
        got = by_prompt.get(prompt.id)
        if not got:
            continue
        errors = [f"{path.name}: {r.reason}" for path, r in got if not isinstance(r, Scored)]
        if errors:
            out.unreadable[prompt.id] = errors
            continue
        rewards = [float(r.score) for _, r in got]
        out.items.append(
            {"id": prompt.id, "prompt": prompt.prompt, "mean_score": float(np.mean(rewards)), "rewards": rewards}
        )
    return out
