"""People's verdicts on pairs of generations (the page's pairs file, `verdicts/pairs.py`) as win rates between
models, beside the judges'.

A verdict counts for a pair of models when both its images are generations of the benchmark, found by their
SHA-256 (the pairs file records each image's), and of two different models: "a" or "b" is a win for that
image's model; ties and "both bad" are counted apart, never as a win or a loss. Each pair of models gets the
people's win rate with its 95% Wilson interval (the verdict report's). Verdicts on images that are not the
benchmark's, or on two generations of one model, are counted, never dropped without a word.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..images.formats import IMAGE_EXTENSIONS
from ..verdicts import Verdict, wilson


@dataclass
class HumanVerdicts:
    """The verdicts' counts per pair of models (a before b in the benchmark's order of models)."""

    counts: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)  # a_wins, b_wins, ties, both_bad
    not_in_benchmark: int = 0
    same_model: int = 0

    def rate(self, a: str, b: str) -> tuple[float | None, tuple[float, float], int]:
        """People's win rate of `a` over `b`, its 95% Wilson interval, and the decided verdicts it rests on."""
        flip = (a, b) not in self.counts and (b, a) in self.counts
        c = self.counts.get((b, a) if flip else (a, b), {})
        wins, losses = c.get("b_wins" if flip else "a_wins", 0), c.get("a_wins" if flip else "b_wins", 0)
        decided = wins + losses
        return (wins / decided if decided else None), wilson(wins, decided), decided

    def as_json(self) -> dict[str, Any]:
        pairs = []
        for (a, b), c in self.counts.items():
            rate, interval, decided = self.rate(a, b)
            pairs.append({"a": a, "b": b, **c, "win_rate": rate, "interval": list(interval), "decided": decided})
        return {"pairs": pairs, "not_in_benchmark": self.not_in_benchmark, "same_model": self.same_model}


def generation_hashes(images_dir: str | Path, models: Sequence[str]) -> dict[str, str]:
    """SHA-256 -> model, for every image file in each model's folder."""
    out: dict[str, str] = {}
    for model in models:
        for path in sorted((Path(images_dir) / model).iterdir()):
            if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
                out.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), model)
    return out


def human_wins(verdicts: Iterable[Verdict], owners: Mapping[str, str], models: Sequence[str]) -> HumanVerdicts:
    """Count the verdicts per pair of models (see the module doc); `owners`: SHA-256 -> model."""
    out = HumanVerdicts()
    order = {m: k for k, m in enumerate(models)}
    for v in verdicts:
        ma, mb = owners.get(v.a_sha256), owners.get(v.b_sha256)
        if ma not in order or mb not in order:
            out.not_in_benchmark += 1
            continue
        if ma == mb:
            out.same_model += 1
            continue
        swap = order[ma] > order[mb]
        key = (mb, ma) if swap else (ma, mb)
        c = out.counts.setdefault(key, {"a_wins": 0, "b_wins": 0, "ties": 0, "both_bad": 0})
        if v.verdict in ("a", "b"):
            first_won = (v.verdict == "a") != swap
            c["a_wins" if first_won else "b_wins"] += 1
        else:
            c["ties" if v.verdict == "tie" else "both_bad"] += 1
    return out
