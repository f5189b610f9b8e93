"""Several judges on the same images: each file decoded once for all judges that preprocess alike, then
scored by each; and how far two judges agree.

Used by the command line (`imagereward score --scorer A --scorer B`) and the app (judges side by side).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from .errors import ImageError
from .images import ImageInput
from .scorer import BatchedScorer, Result, Scored

# Images decoded at a time for a panel: bounds the pixels held in memory (about 150 kB each).
PANEL_CHUNK = 256


def panel_results(
    judges: Sequence[BatchedScorer],
    prompt: str,
    images: Sequence[ImageInput],
    names: Sequence[str],
    progress: Callable[[int], None] | None = None,
    chunk_size: int = PANEL_CHUNK,
) -> list[list[Result]]:
    """Each judge's results (in `judges` order) for the same images, in input order."""
    out: list[list[Result]] = [[] for _ in judges]
    for start in range(0, len(images), chunk_size):
        chunk, chunk_names = images[start : start + chunk_size], names[start : start + chunk_size]
        decoded: dict[str, list[Any]] = {}
        for k, judge in enumerate(judges):
            if judge.preprocessing not in decoded:
                decoded[judge.preprocessing] = judge.decode(chunk, chunk_names)
            out[k].extend(judge.score_decoded(prompt, decoded[judge.preprocessing], chunk_names))
        if progress is not None:
            progress(len(chunk))
    return out


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
    return result.reward if isinstance(result, Scored) else None


def failures_of(results: Sequence[Result]) -> list[ImageError]:
    return [r for r in results if isinstance(r, ImageError)]
