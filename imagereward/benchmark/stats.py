"""What the original's benchmark lacks: how sure the ranking of models is.

For one judge and a pair of models A and B, on the prompts both figures cover:
- the win rate over prompts: the share of prompts where A's mean beats B's (ties apart, never counted as a win
  or a loss);
- the win rate over generations: over every pair (a generation of A, a generation of B) of the same prompt;
- 95% intervals by bootstrap over prompts (seeded: the same seed gives the same intervals): prompts are drawn
  with replacement, each keeping all its generations, and the score and the win rate recomputed.
Across judges: each judge's ranking of the models, the pairs of models two judges order differently, and
Spearman's correlation of each judge's ranking with a human ranking when one is given (as the paper's Table 1
compares).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Mapping, Sequence

import numpy as np

from .scores import ModelScores


@dataclass(frozen=True)
class WinRate:
    judge: str
    a: str
    b: str
    wins: int
    losses: int
    ties: int
    generation_wins: int
    generation_losses: int
    generation_ties: int
    interval: tuple[float, float]  # of the prompt win rate, bootstrap over prompts

    @property
    def rate(self) -> float | None:
        decided = self.wins + self.losses
        return self.wins / decided if decided else None

    @property
    def generation_rate(self) -> float | None:
        decided = self.generation_wins + self.generation_losses
        return self.generation_wins / decided if decided else None


def _prompt_means(result: ModelScores) -> dict[str, float]:
    return {item["id"]: float(item["mean_score"]) for item in result.items}


def _rate(a: np.ndarray, b: np.ndarray) -> float:
    wins, losses = int(np.sum(a > b)), int(np.sum(a < b))
    return wins / (wins + losses) if wins + losses else float("nan")


def win_rate(a: ModelScores, b: ModelScores, samples: int = 1000, seed: int = 0) -> WinRate:
    """A against B for one judge (see the module doc), on the prompts both cover."""
    means_a, means_b = _prompt_means(a), _prompt_means(b)
    shared = [p for p in means_a if p in means_b]
    xa = np.array([means_a[p] for p in shared])
    xb = np.array([means_b[p] for p in shared])
    wins, losses = int(np.sum(xa > xb)), int(np.sum(xa < xb))
    rewards_a, rewards_b = a.rewards, b.rewards
    g_wins = g_losses = g_ties = 0
    for p in shared:
        ra = np.array(rewards_a[p])[:, None]
        rb = np.array(rewards_b[p])[None, :]
        g_wins += int(np.sum(ra > rb))
        g_losses += int(np.sum(ra < rb))
        g_ties += int(np.sum(ra == rb))
    interval = (float("nan"), float("nan"))
    if shared and samples > 0:
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, len(shared), size=(samples, len(shared)))
        rates = np.array([_rate(xa[d], xb[d]) for d in draws])
        rates = rates[~np.isnan(rates)]
        if rates.size:
            interval = (float(np.percentile(rates, 2.5)), float(np.percentile(rates, 97.5)))
    return WinRate(
        a.judge, a.model, b.model, wins, losses, len(shared) - wins - losses, g_wins, g_losses, g_ties, interval
    )


def score_interval(result: ModelScores, samples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """The 95% interval of a model's score by bootstrap over its covered prompts (seeded)."""
    means = np.array(list(_prompt_means(result).values()))
    if not means.size or samples <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, means.size, size=(samples, means.size))
    boot = means[draws].mean(axis=1)
    return float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def ranking(results: Sequence[ModelScores]) -> list[str]:
    """The models best first by score (ties in the given order)."""
    return [r.model for r in sorted(results, key=lambda r: -r.score)]


def disagreements(rankings: Mapping[str, Sequence[str]]) -> list[tuple[str, str, str, str]]:
    """(judge 1, judge 2, model a, model b) for each pair of models two judges order differently."""
    out = []
    for (j1, r1), (j2, r2) in combinations(rankings.items(), 2):
        for a, b in combinations(r1, 2):
            if a in r2 and b in r2 and r2.index(a) > r2.index(b):
                out.append((j1, j2, a, b))
    return out


def spearman(order: Sequence[str], human: Sequence[str]) -> float:
    """Spearman's rank correlation of two orderings of the same models (best first), over the models both name.

    Raises:
        ValueError: fewer than two models in common.
    """
    common = [m for m in human if m in order]
    if len(common) < 2:
        raise ValueError(f"Spearman's correlation needs two models in both rankings; in common: {common}")
    ranks_judge = {m: k for k, m in enumerate([m for m in order if m in common])}
    ranks_human = {m: k for k, m in enumerate(common)}
    n = len(common)
    d2 = sum((ranks_judge[m] - ranks_human[m]) ** 2 for m in common)
    return 1 - 6 * d2 / (n * (n * n - 1))
