"""A person's verdicts on pairs of images, as preference pairs: the one format the page's download, the store's
export, `imagereward verdicts report` and `imagereward train` read and write.

One JSON object per line (JSONL, UTF-8), its fields documented once, in `docs/verdicts.md` ("The pairs file"),
which a test holds to `Verdict.as_dict`.

A file of pairs may hold verdicts on several prompts; the order of lines is the order they were given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, TextIO

# What a person may say of a pair.
VERDICTS = ("a", "b", "tie", "both_bad")
DECIDED = ("a", "b")  # the verdicts that prefer one image: what agreement is measured on


@dataclass(frozen=True)
class Verdict:
    """One verdict on one pair (see the module doc for each field)."""

    prompt: str
    a: str
    b: str
    verdict: str
    scores: dict[str, list[float | None]] = field(default_factory=dict)
    a_sha256: str = ""
    b_sha256: str = ""
    model: str = ""
    time: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; a verdict is one of {', '.join(VERDICTS)}")

    @property
    def chosen(self) -> str:
        return self.b if self.verdict == "b" else self.a

    @property
    def rejected(self) -> str:
        return self.a if self.verdict == "b" else self.b

    def agrees(self, judge: str) -> bool | None:
        """Whether `judge` scored the chosen image strictly higher (None: no preference given, or the judge
        could not score both)."""
        pair = self.scores.get(judge)
        if self.verdict not in DECIDED or not pair or pair[0] is None or pair[1] is None:
            return None
        chosen, rejected = (pair[1], pair[0]) if self.verdict == "b" else (pair[0], pair[1])
        return chosen > rejected

    def as_dict(self) -> dict[str, Any]:
        """The verdict as one line of the pairs file holds it."""
        return {
            "prompt": self.prompt,
            "a": self.a,
            "b": self.b,
            "a_sha256": self.a_sha256,
            "b_sha256": self.b_sha256,
            "verdict": self.verdict,
            "chosen": self.chosen,
            "rejected": self.rejected,
            "scores": {judge: list(pair) for judge, pair in self.scores.items()},
            "model": self.model,
            "time": self.time,
        }

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Verdict:
        """A verdict from one line of a pairs file.

        Raises:
            ValueError: a field is missing or of the wrong kind (the message names it).
        """
        for name in ("prompt", "a", "b", "verdict"):
            if not isinstance(row.get(name), str):
                raise ValueError(f"a pair needs `{name}` as text; got {row.get(name)!r:.60}")
        scores = row.get("scores") or {}
        if not isinstance(scores, dict) or not all(isinstance(v, list) and len(v) == 2 for v in scores.values()):
            raise ValueError("`scores` must map each judge to [score of A, score of B]")
        return cls(
            prompt=row["prompt"],
            a=row["a"],
            b=row["b"],
            verdict=row["verdict"],
            scores={str(k): [_number(v[0]), _number(v[1])] for k, v in scores.items()},
            a_sha256=str(row.get("a_sha256") or ""),
            b_sha256=str(row.get("b_sha256") or ""),
            model=str(row.get("model") or ""),
            time=str(row.get("time") or ""),
        )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def now() -> str:
    """The time a verdict is given: ISO 8601, UTC, to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def write_pairs(verdicts: Iterable[Verdict], out: TextIO) -> int:
    """Writes one line per verdict (see the module doc); returns how many."""
    count = 0
    for verdict in verdicts:
        out.write(json.dumps(verdict.as_dict(), ensure_ascii=False) + "\n")
        count += 1
    return count


def read_pairs(path: str | Path) -> Iterator[Verdict]:
    """The verdicts of a pairs file, in order.

    Raises:
        ValueError: a line that is not a pair (the message gives its number and what is wrong).
    """
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield Verdict.from_dict(json.loads(line))
            except (ValueError, TypeError, AttributeError) as e:
                raise ValueError(f"{path}, line {number}: {e}") from None
