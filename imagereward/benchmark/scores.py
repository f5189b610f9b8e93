"""Scoring a benchmark as the original's `test-benchmark.py` does (its files: `original_files.py`).

Per judge and model: each prompt's generations are scored, the prompt's `mean_score` is the mean of their
rewards, and the model's score is the mean over prompts of those means (`numpy.mean`, in float64, as the
original computes them). A prompt with a missing or unreadable generation is left out of its model's figure
(the original stops there) and named, with the file and why, in `missing` and `unreadable`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


def score_model(
    judge: Any,
    judge_name: str,
    prompts: Sequence[Prompt],
    generations: Generations,
    progress: Callable[[int], None] | None = None,
) -> ModelScores:
    """One model's generations scored by one judge (see the module doc)."""
    out = ModelScores(judge_name, generations.model, missing=dict(generations.missing))
    for prompt in prompts:
        files = generations.files.get(prompt.id, [])
        if prompt.id in generations.missing or not files:
            continue
        rewards = judge.try_rewards(prompt.prompt, [str(f) for f in files], names=[f.name for f in files])
        if progress is not None:
            progress(len(files))
        errors = [r for r in rewards if isinstance(r, ImageError)]
        if errors:
            out.unreadable[prompt.id] = [f"{e.name}: {e.reason}" for e in errors]
            continue
        out.items.append(
            {"id": prompt.id, "prompt": prompt.prompt, "mean_score": float(np.mean(rewards)), "rewards": rewards}
        )
    return out
