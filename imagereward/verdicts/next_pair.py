"""Which pair a person judges next: the most informative one left among the ranked images.

First the pairs the judges in use order differently (a verdict there tells them apart), then the pairs the
ranking judge is least sure of (its preference probability nearest 0.5, that is the smallest score difference);
never a pair already judged, in either order. A is the image the ranking places higher.
"""

from __future__ import annotations

from itertools import combinations
from typing import Mapping, Sequence


def pair_key(a: str, b: str) -> frozenset[str]:
    """A pair as a set: A against B is B against A."""
    return frozenset((a, b))


def next_pairs(
    names: Sequence[str],
    scores: Mapping[str, Mapping[str, float | None]],
    ranking_judge: str,
    judged: set[frozenset[str]] | frozenset[frozenset[str]] = frozenset(),
) -> list[tuple[str, str]]:
    """Every pair not judged yet, most informative first (see the module doc).

    Args:
        names: the ranked images, best first by the ranking judge.
        scores: each judge's scores by image name (`ranking_judge`'s among them); None where it could not score.
        ranking_judge: the judge whose certainty orders the pairs the judges agree on.
        judged: the pairs judged already (`pair_key`).
    """
    main = scores.get(ranking_judge, {})

    def order(judge: str, a: str, b: str) -> int | None:
        sa, sb = scores[judge].get(a), scores[judge].get(b)
        if sa is None or sb is None or sa == sb:
            return None
        return 1 if sa > sb else -1

    ranked = []
    for i, j in combinations(range(len(names)), 2):
        a, b = names[i], names[j]
        if a == b or pair_key(a, b) in judged:
            continue
        orders = {o for judge in scores if (o := order(judge, a, b)) is not None}
        sa, sb = main.get(a), main.get(b)
        gap = abs(sa - sb) if sa is not None and sb is not None else float("inf")
        ranked.append(((len(orders) < 2, gap, i, j), (a, b)))
    return [pair for _, pair in sorted(ranked)]
