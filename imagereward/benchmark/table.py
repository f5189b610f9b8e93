"""One judge's scores of every model's generations as arrays, which the statistics and the report read, whether
they come from scoring the images here (`from_model_scores`) or from bulk's Parquet (`bulk_scores.py`).

`rewards[m, p, k]` is model m's k-th generation of prompt p (NaN where there is none); `covered[m, p]` says
whether the prompt counts in the model's figure (every one of its generations scored); `means[m, p]` is the
prompt's mean over its generations, as the original computes it (NaN where not covered).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .layout import Prompt
from .scores import ModelScores


@dataclass
class JudgeTable:
    """One judge's scores of every model's generations (see the module doc)."""

    judge: str
    models: list[str]
    prompts: list[Prompt]
    rewards: np.ndarray  # (M, P, K) float64
    means: np.ndarray  # (M, P) float64
    covered: np.ndarray  # (M, P) bool
    missing: list[dict[str, list[str]]] = field(default_factory=list)  # per model: prompt id -> files not there
    unreadable: list[dict[str, list[str]]] = field(default_factory=list)  # per model: prompt id -> "file: why"

    def index(self, model: str) -> int:
        """The row of `model`.

        Raises:
            ValueError: not one of this table's models (the message lists them).
        """
        if model not in self.models:
            raise ValueError(f"no model {model!r} in the benchmark; its models: {', '.join(self.models)}")
        return self.models.index(model)

    def score(self, model: str) -> float:
        """The model's figure: the mean over its covered prompts of their means (NaN when none is covered)."""
        m = self.index(model)
        means = self.means[m][self.covered[m]]
        return float(np.mean(means)) if means.size else float("nan")

    def scores(self) -> dict[str, float]:
        return {model: self.score(model) for model in self.models}

    def prompts_covered(self, model: str) -> int:
        return int(self.covered[self.index(model)].sum())

    def only(self, models: list[str]) -> JudgeTable:
        """The table of `models` alone, in that order.

        Raises:
            ValueError: a model not in the table (the message lists them).
        """
        rows = [self.index(m) for m in models]
        return JudgeTable(
            self.judge,
            list(models),
            self.prompts,
            self.rewards[rows],
            self.means[rows],
            self.covered[rows],
            [self.missing[r] for r in rows],
            [self.unreadable[r] for r in rows],
        )

    def generations(self, model: str, p: int) -> np.ndarray:
        """A prompt's scored generations of a model, in k order."""
        row = self.rewards[self.index(model), p]
        return row[~np.isnan(row)]


def from_model_scores(judge: str, prompts: list[Prompt], results: list[ModelScores]) -> JudgeTable:
    """The table of a run on images: each covered prompt's rewards and the original's `mean_score`."""
    position = {prompt.id: p for p, prompt in enumerate(prompts)}
    depth = max((len(item["rewards"]) for r in results for item in r.items), default=0)
    rewards = np.full((len(results), len(prompts), max(depth, 1)), np.nan)
    means = np.full((len(results), len(prompts)), np.nan)
    for m, result in enumerate(results):
        for item in result.items:
            p = position[item["id"]]
            rewards[m, p, : len(item["rewards"])] = item["rewards"]
            means[m, p] = item["mean_score"]
    return JudgeTable(
        judge,
        [r.model for r in results],
        list(prompts),
        rewards,
        means,
        ~np.isnan(means),
        [dict(r.missing) for r in results],
        [dict(r.unreadable) for r in results],
    )


def from_arrays(
    judge: str,
    models: list[str],
    prompts: list[Prompt],
    data: np.ndarray,
    found: np.ndarray,
    errors: dict[tuple[int, int], list[str]],
) -> JudgeTable:
    """One judge's table from generations placed by (model, prompt, k): `data` their scores (NaN: none),
    `found` where a generation was there (scored or not), `errors` (model, prompt) -> "file: why" of those
    that failed. Each model's generations per prompt are the first n (the number most of its prompts have;
    the original counts its folder's files // the prompts), a prompt covered when all n are scored and none
    failed; a prompt with fewer is named as missing. `data` may be larger than the models and prompts (a
    grown array): the table holds a view of it."""
    rewards = data[: len(models), : len(prompts)]  # a view: the grown array is not copied
    means = np.full((len(models), len(prompts)), np.nan)
    covered = np.zeros((len(models), len(prompts)), dtype=bool)
    missing: list[dict[str, list[str]]] = []
    unreadable: list[dict[str, list[str]]] = []
    for m in range(len(models)):
        per_prompt = found[m].sum(axis=1)
        tally = np.bincount(per_prompt) if per_prompt.size else np.zeros(1, dtype=int)
        tally[0] = 0
        n = int(len(tally) - 1 - np.argmax(tally[::-1])) if tally.any() else 0  # the most common, larger on a tie
        rewards[m, :, n:] = np.nan  # as the original, generations k >= n are not read
        present = found[m, :, :n]
        failed = {p: why for (mm, p), why in errors.items() if mm == m}
        absent = np.flatnonzero(~present.all(axis=1)) if n else np.arange(len(prompts))
        missing.append(
            {
                prompts[p].id: [f"{prompts[p].id}_{k}.png" for k in range(max(n, 1)) if k >= n or not present[p, k]]
                for p in absent
                if p not in failed
            }
        )
        unreadable.append({prompts[p].id: why for p, why in sorted(failed.items())})
        ok = present.all(axis=1) & ~np.isnan(rewards[m, :, :n]).any(axis=1) if n else np.zeros(len(prompts), bool)
        ok[list(failed)] = False
        covered[m] = ok
        means[m, ok] = rewards[m, ok, :n].mean(axis=1)
    return JudgeTable(judge, models, prompts, rewards, means, covered, missing, unreadable)
