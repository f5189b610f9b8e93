"""The `/score` API's JSON: everything the page shows of a ranking, as rows (`rows.result_row`, the columns every
surface writes) and the request's notes, skipped images and what each judge read of the prompt. The agents'
tools (`agents`) answer with it too.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..ranking import Ranking
from ..rows import result_rows
from .view import prompt_read


def api_rows(ranking: Ranking, prompt: str, model: str) -> list[dict[str, Any]]:
    """The API's rows: the result rows every surface writes (`rows.result_row`: `image`, `score_<judge>`, ...),
    with, for clients of the earlier API, `name` (the image's) and with other judges `scores`, `ranks` and
    (PickScore) `choices` by judge."""
    out = []
    for item, row in zip(ranking.ranked, result_rows(ranking, prompt, model)):
        row["name"] = item.name
        if item.scores:
            row["scores"], row["ranks"] = dict(item.scores), dict(item.ranks)
        if item.choices:
            row["choices"] = dict(item.choices)
        out.append(row)
    return out


def api_response(ranking: Ranking, notes: Sequence[str], label: str, prompt: str, model: str) -> dict[str, Any]:
    """The `/score` endpoint's JSON: everything the page shows.

    `{"ranked": [rows] best first (`api_rows`), "skipped": [{"name", "reason"}], "notes": [sentences],
    "model": label, "seconds": float, "prompt_read": {judge: {read, unread, tokens_read, tokens_total, ...}}}`;
    with other judges also `"judges"` (labels, ImageReward first) and `"agreement"`: `{judge: {"same": pairs it
    orders as ImageReward does, "pairs": pairs both order strictly}}`."""
    response: dict[str, Any] = {
        "ranked": api_rows(ranking, prompt, model),
        "skipped": [{"name": f.name, "reason": f.reason} for f in ranking.failures],
        "notes": list(notes),
        "model": label,
        "seconds": round(ranking.seconds, 4),
    }
    if ranking.judges:
        response["judges"] = list(ranking.judges)
        response["agreement"] = {j: {"same": same, "pairs": n} for j, (same, n) in ranking.agreement().items()}
    if ranking.readings:
        response["prompt_read"] = prompt_read(ranking)
    return response
