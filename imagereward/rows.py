"""The one result row every surface writes (the page's CSV and JSON downloads, the API, `imagereward score`,
`imagereward bulk`), and CSV that a spreadsheet shows and never runs.

A row is one image scored for one prompt:

| column | what |
| --- | --- |
| `prompt` | the prompt |
| `rank` | 1 for the best, among the images scored for that prompt (not in bulk's rows, which are not ranked) |
| `image` | the image's name (the page, the API) or reference (a path, a dataset's reference); never its bytes |
| `score` | the ranking judge's score, unrounded |
| `precision` | the dtype that computed it (`float16`, or `float32` where float16 overflowed) |
| `model` | the ranking judge: its weights' registry name, or its folder's name |
| `score_<judge>`, `rank_<judge>` | each other judge's score and rank (empty where it could not score the image) |
| `choice_<judge>` | that judge's choice among the images scored together, where it defines one (PickScore) |

Bulk scoring adds `id` and `error` (why an image could not be scored, else empty). A pair's row (`/score_pairs`,
each image with its own prompt) has no rank: `prompt`, `image`, `score`, `precision`, `model`, `score_<judge>`,
`error` (`pair_row`).

A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (and, in some, a tab or a carriage return) as a
formula: an image named `=HYPERLINK(...).png` or a prompt starting with `-` would run on the reader's machine
(CSV injection). Every CSV this package writes goes through `write_csv`, which makes such text cells inert the
way OWASP recommends: a leading single quote, which spreadsheets show as text. Numbers are written as they are
(a negative score is a number, not a formula).
"""

from __future__ import annotations

import csv
from typing import Any, Iterable, Mapping, Sequence, TextIO

from .judges import spec
from .ranking import RankedImage, Ranking

BASE_COLUMNS = ("prompt", "rank", "image", "score", "precision", "model")
# What a cell may not start with (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def score_column(judge: str) -> str:
    """The column of another judge's score, by the judge's label: `score_CLIP`."""
    return f"score_{judge}"


def judge_columns(judge: str) -> list[str]:
    """Another judge's columns: `score_<judge>`, `rank_<judge>`, and `choice_<judge>` where it defines one."""
    columns = [score_column(judge), f"rank_{judge}"]
    return columns + [f"choice_{judge}"] if spec(judge).choice else columns


def columns(others: Sequence[str]) -> list[str]:
    """The columns of rows ranked by one judge, with `others` beside it."""
    return [*BASE_COLUMNS, *(c for judge in others for c in judge_columns(judge))]


def result_row(item: RankedImage, prompt: str, model: str, others: Sequence[str]) -> dict[str, Any]:
    """One image's row (see the module doc); `others` are the other judges that scored it, by label."""
    row: dict[str, Any] = {
        "prompt": prompt,
        "rank": item.rank,
        "image": item.name,
        "score": item.score,
        "precision": item.precision,
        "model": model,
    }
    for judge in others:
        row[score_column(judge)] = item.scores.get(judge)
        row[f"rank_{judge}"] = item.ranks.get(judge)
        if spec(judge).choice:
            row[f"choice_{judge}"] = item.choices.get(judge)
    return row


def result_rows(ranking: Ranking, prompt: str, model: str) -> list[dict[str, Any]]:
    """Every ranked image's row, best first."""
    others = ranking.judges[1:]
    return [result_row(item, prompt, model, others) for item in ranking.ranked]


def pair_row(
    prompt: str,
    image: str,
    model: str,
    score: float | None,
    precision: str | None,
    others: Mapping[str, float | None] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """One (prompt, image) pair's row (see the module doc): its scores, or `error` saying why there are none."""
    row: dict[str, Any] = {"prompt": prompt, "image": image, "score": score, "precision": precision, "model": model}
    for judge, value in (others or {}).items():
        row[score_column(judge)] = value
    row["error"] = error
    return row


def inert(value: Any) -> Any:
    """A cell as a spreadsheet must read it: text that would start a formula gets a leading `'`; any other
    value is returned as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(
    out: TextIO, fieldnames: Sequence[str], rows: Iterable[Mapping[str, Any]], lineterminator: str = "\r\n"
) -> None:
    """Writes a header and `rows` (missing fields empty) as CSV, every text cell made `inert`."""
    writer = csv.writer(out, lineterminator=lineterminator)
    writer.writerow([inert(name) for name in fieldnames])
    for row in rows:
        writer.writerow([inert(row.get(name)) if row.get(name) is not None else "" for name in fieldnames])
