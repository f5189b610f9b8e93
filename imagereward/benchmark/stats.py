"""What the original's benchmark lacks: how sure the ranking of models is.

For one judge and a pair of models A and B, on the prompts both figures cover:
- the win rate over prompts: the share of prompts where A's mean beats B's (ties apart, never counted as a win
  or a loss);
- the win rate over generations: over every pair (a generation of A, a generation of B) of the same prompt;
- 95% intervals by bootstrap over prompts (seeded: the same seed gives the same intervals): prompts are drawn
  with replacement, each keeping all its generations, and the score and the win rate recomputed; the
  2.5th and 97.5th percentiles of the draws.
Across judges: each judge's ranking of the models, the pairs of models two judges order differently, and
Spearman's correlation of each judge's ranking with a human ranking when one is given (as the paper's Table 1
compares).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Mapping, Sequence

import numpy as np

from .table import JudgeTable


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


# Elements of one bootstrap draw held at once (the draws of a large benchmark are made in chunks).
DRAW_CHUNK = 1 << 22


def win_rate(table: JudgeTable, a: str, b: str, samples: int = 1000, seed: int = 0) -> WinRate:
    """A against B for one judge (see the module doc), on the prompts both cover.

    The bootstrap draws the shared prompts with replacement; a draw's win rate depends only on how many of
    its prompts are wins, losses and ties, so each draw is the multinomial count of n prompts over the
    shares of wins, losses and ties (the same distribution, at any number of prompts)."""
    ia, ib = table.index(a), table.index(b)
    shared = table.covered[ia] & table.covered[ib]
    xa, xb = table.means[ia, shared], table.means[ib, shared]
    n = int(shared.sum())
    wins, losses = int(np.sum(xa > xb)), int(np.sum(xa < xb))
    ties = n - wins - losses
    g_wins = g_losses = g_ties = 0
    ra, rb = table.rewards[ia, shared], table.rewards[ib, shared]  # (n, K); NaN compares as neither
    step = max(1, DRAW_CHUNK // max(1, ra.shape[1] * rb.shape[1]))
    for s in range(0, n, step):
        left, right = ra[s : s + step, :, None], rb[s : s + step, None, :]
        g_wins += int(np.sum(left > right))
        g_losses += int(np.sum(left < right))
        g_ties += int(np.sum(left == right))
    interval = (float("nan"), float("nan"))
    if n and samples > 0:
        counts = np.random.default_rng(seed).multinomial(n, [wins / n, losses / n, ties / n], size=samples)
        decided = counts[:, 0] + counts[:, 1]
        rates = counts[decided > 0, 0] / decided[decided > 0]
        if rates.size:
            interval = (float(np.percentile(rates, 2.5)), float(np.percentile(rates, 97.5)))
    return WinRate(table.judge, a, b, wins, losses, ties, g_wins, g_losses, g_ties, interval)


def score_interval(table: JudgeTable, model: str, samples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """The 95% interval of a model's score by bootstrap over its covered prompts (seeded): each draw is the
    mean of n prompt means drawn with replacement."""
    m = table.index(model)
    means = table.means[m][table.covered[m]]
    if not means.size or samples <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    boot = np.empty(samples)
    step = max(1, DRAW_CHUNK // means.size)
    for s in range(0, samples, step):
        draws = rng.integers(0, means.size, size=(min(step, samples - s), means.size))
        boot[s : s + len(draws)] = means[draws].mean(axis=1)
    return float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def ranking(table: JudgeTable) -> list[str]:
    """The models best first by score (ties in the given order; a model with no prompt covered last)."""
    scores = table.scores()
    return sorted(table.models, key=lambda m: (np.isnan(scores[m]), -np.nan_to_num(scores[m])))


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
