"""Turning a `Ranking` into what people read on the page: gallery captions, table rows, chart data and the
status line. Plain Python values, so that the app stays a thin layer of wiring and these stay testable."""

from __future__ import annotations

from typing import Any

from .ranking import Ranking


def caption(rank: int, score: float) -> str:
    """Gallery caption, e.g. `#1 · 1.23`."""
    return f"#{rank} · {score:.2f}"


def gallery_items(ranking: Ranking) -> list[tuple[Any, str]]:
    """(image, caption) pairs best first, for `gr.Gallery`."""
    return [(item.source, caption(item.rank, item.score)) for item in ranking.ranked]


def table_rows(ranking: Ranking) -> list[list[Any]]:
    """Rows of (rank, image name, score rounded to 4 decimals, precision), best first."""
    return [[item.rank, item.name, round(item.score, 4), item.precision] for item in ranking.ranked]


def chart_rows(ranking: Ranking) -> dict[str, list[Any]]:
    """Columns for a bar chart: one bar per image labelled `#rank name`, best first."""
    return {
        "image": [f"#{item.rank} {item.name}" for item in ranking.ranked],
        "score": [round(item.score, 4) for item in ranking.ranked],
    }


def status_line(ranking: Ranking, model_label: str) -> str:
    """E.g. `Scored 8 images with ImageReward-v1.0 on cuda (float16) in 45 ms.`"""
    n = len(ranking.ranked)
    took = f"{ranking.seconds * 1000:.0f} ms" if ranking.seconds < 10 else f"{ranking.seconds:.1f} s"
    skipped = f" Skipped {len(ranking.failures)} that could not be scored." if ranking.failures else ""
    return f"Scored {n} image{'s' if n != 1 else ''} with {model_label} in {took}.{skipped}"
