"""How often a judge agrees with a person, as the paper measures a judge (ImageReward, Table 2: pairwise
preference accuracy): over the person's verdicts that prefer one image, the share where the judge scored the
chosen image strictly higher. Ties and "both bad" are counted apart, never as agreement or disagreement. Each
share comes with its 95% Wilson interval, which stays honest for few verdicts (two of two agree: 34% to 100%).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

from .pairs import Verdict

Z95 = 1.959963984540054  # the normal quantile of 0.975


def wilson(agreed: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of `agreed` successes in `total` trials ((0, 1) for none)."""
    if total <= 0:
        return 0.0, 1.0
    p = agreed / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Agreement:
    """One judge's agreement with a person on one prompt (or all of them, `prompt` None)."""

    judge: str
    prompt: str | None
    agreed: int
    total: int  # verdicts that prefer one image and that the judge scored both images of
    ties: int
    both_bad: int

    @property
    def share(self) -> float | None:
        return self.agreed / self.total if self.total else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.agreed, self.total)

    @property
    def counts(self) -> str:
        """`agreed/total`, e.g. `4/6`."""
        return f"{self.agreed}/{self.total}"

    def as_dict(self) -> dict[str, object]:
        low, high = self.interval
        return {
            "judge": self.judge,
            "prompt": self.prompt,
            "agreement": self.share,
            "interval": [low, high],
            "counts": self.counts,
            "agreed": self.agreed,
            "total": self.total,
            "ties": self.ties,
            "both_bad": self.both_bad,
        }


def agreement(verdicts: Iterable[Verdict], judges: Sequence[str] | None = None) -> list[Agreement]:
    """Each judge's agreement overall (first, in `judges` order), then per prompt (in the order the prompts
    were first judged). `judges` default: every judge the verdicts carry scores of, in the order first seen."""
    verdicts = list(verdicts)
    if judges is None:
        judges = list(dict.fromkeys(j for v in verdicts for j in v.scores))
    prompts = list(dict.fromkeys(v.prompt for v in verdicts))
    out = [_count(judge, None, verdicts) for judge in judges]
    if len(prompts) > 1:
        for prompt in prompts:
            mine = [v for v in verdicts if v.prompt == prompt]
            out += [_count(judge, prompt, mine) for judge in judges]
    return out


def _count(judge: str, prompt: str | None, verdicts: Sequence[Verdict]) -> Agreement:
    said = [v.agrees(judge) for v in verdicts]
    return Agreement(
        judge,
        prompt,
        agreed=sum(1 for s in said if s is True),
        total=sum(1 for s in said if s is not None),
        ties=sum(1 for v in verdicts if v.verdict == "tie"),
        both_bad=sum(1 for v in verdicts if v.verdict == "both_bad"),
    )


def report(rows: Sequence[Agreement]) -> str:
    """The agreement table as text: judge, agreement, its 95% interval, the counts (`agreed/total`), ties and
    "both bad"; overall first, then per prompt."""
    lines = [f"{'judge':<14} {'agreement':>9}  {'95% interval':<13} {'agreed/total':>12}  ties  both bad"]
    prompt: object = False
    for row in rows:
        if row.prompt != prompt:
            prompt = row.prompt
            lines.append("all prompts" if row.prompt is None else f"prompt: {row.prompt[:80]}")
        share = f"{row.share:.0%}" if row.share is not None else "-"
        low, high = row.interval
        interval = f"{low:.0%}-{high:.0%}" if row.total else "-"
        lines.append(f"  {row.judge:<12} {share:>9}  {interval:<13} {row.counts:>12}  {row.ties:>4}  {row.both_bad:>8}")
    return "\n".join(lines)
