"""The held-out check: pairs the model never trains on, split off by prompt (seeded, so no prompt has pairs on
both sides), and how often a model ranks them as people did: the paper's Table 2 measure (pairwise preference
accuracy), with the 95% Wilson interval the verdict report uses. Measured before training (the untuned model),
after each evaluation and at the end, beside the other judges on the same pairs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..verdicts.agreement import wilson
from .pairs import Pair


def split_by_prompt(pairs: Sequence[Pair], share: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(train, held out): the prompts shuffled by `seed`, the first `share` of them held out (at least one when
    `share` > 0 and there are two prompts or more), every pair going where its prompt goes."""
    prompts = sorted({p.prompt for p in pairs})
    count = round(len(prompts) * share)
    if share > 0 and len(prompts) > 1:
        count = min(max(count, 1), len(prompts) - 1)
    random.Random(seed).shuffle(prompts)
    held = set(prompts[:count])
    return [p for p in pairs if p.prompt not in held], [p for p in pairs if p.prompt in held]


@dataclass(frozen=True)
class Score:
    """One model's (or judge's) agreement on the held-out pairs, and its pairwise loss where it is a reward
    model being trained (raw rewards)."""

    name: str
    agreed: int
    total: int
    loss: float | None = None
    step: int | None = None

    @property
    def share(self) -> float | None:
        return self.agreed / self.total if self.total else None

    def as_dict(self) -> dict[str, Any]:
        low, high = wilson(self.agreed, self.total)
        return {
            "name": self.name,
            "step": self.step,
            "agreement": self.share,
            "interval": [low, high],
            "counts": f"{self.agreed}/{self.total}",
            "loss": self.loss,
        }


def score_rewards(name: str, rewards: torch.Tensor, step: int | None = None) -> Score:
    """Agreement and mean pairwise loss of raw rewards (N, 2: better, worse)."""
    if len(rewards) == 0:
        return Score(name, 0, 0, None, step)
    agreed = int((rewards[:, 0] > rewards[:, 1]).sum())
    loss = float(torch.nn.functional.softplus(rewards[:, 1] - rewards[:, 0]).mean())
    return Score(name, agreed, len(rewards), loss, step)


def score_judge(name: str, judge: Any, pairs: Sequence[Pair]) -> Score:
    """A judge's agreement on the pairs (a pair it cannot score both images of is not counted)."""
    agreed = total = 0
    for pair in pairs:
        try:
            better, worse = judge.rewards(pair.prompt, [pair.better, pair.worse])
        except Exception:  # noqa: BLE001 - an unreadable image: the pair is not counted for this judge
            continue
        total += 1
        agreed += better > worse
    return Score(name, agreed, total)


def table(scores: Sequence[Score]) -> str:
    """The scores as a text table: name, agreement with its interval, counts, loss."""
    lines = [f"{'model':<32} {'agreement':>9}  {'95% interval':<15} {'pairs':>9} {'loss':>8}"]
    for s in scores:
        low, high = wilson(s.agreed, s.total)
        share = f"{s.share:.1%}" if s.share is not None else "-"
        loss = f"{s.loss:.4f}" if s.loss is not None else ""
        lines.append(f"{s.name[:32]:<32} {share:>9}  {low:.1%} to {high:.1%}  {s.agreed:>4}/{s.total:<4} {loss:>8}")
    return "\n".join(lines)
