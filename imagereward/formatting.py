"""Turning a `Ranking` into what people read and take away: captions, the table, the winner, the pairwise
preference probability, the status line, and the CSV / JSON / zip downloads. Plain Python values and files, so
that the app stays a thin layer of wiring and these stay testable."""

from __future__ import annotations

import json
import math
import re
import zipfile
from pathlib import Path
from typing import Any

from .config import REWARD_STD
from .judges import CHOICES
from .ranking import Ranking
from .rows import write_csv

EXPORT_FIELDS = ("prompt", "rank", "name", "score", "model", "precision")
# The image files one zip holds at most, all together (a public page must bound what a request writes).
MAX_ZIP_BYTES = 64 * 2**20


def caption(rank: int, score: float, name: str | None = None) -> str:
    """Gallery caption and alt text, e.g. `#1 · 1.23 · cat.png`."""
    return f"#{rank} · {score:.2f}" + (f" · {name}" if name else "")


def gallery_items(ranking: Ranking, judge: str | None = None) -> list[tuple[Any, str]]:
    """(image, caption) pairs best first by `judge` (default the ranking's own), for `gr.Gallery`."""
    items = []
    for item in ranking.ordered_by(judge or ""):
        if judge and item.ranks:
            rank, score = item.ranks.get(judge), item.scores.get(judge)
            items.append((item.source, caption(rank, score, item.name) if rank else f"not scored · {item.name}"))
        else:
            items.append((item.source, caption(item.rank, item.score, item.name)))
    return items


TABLE_COLUMNS = ["rank", "image", "score", "precision"]


def judge_columns(judge: str) -> tuple[str, ...]:
    """What the table and the downloads show of another judge: score and rank, and its choice where it has one
    (PickScore: the probability, in %, that it picks this image among those scored together)."""
    return ("score", "rank", "choice %") if judge in CHOICES else ("score", "rank")


def table_headers(judges: list[str]) -> list[str]:
    """The table's columns: ImageReward's rank, image, score, precision; then each other judge's score and rank
    (and choice, see `judge_columns`)."""
    return [*TABLE_COLUMNS, *(f"{j} {what}" for j in judges[1:] for what in judge_columns(j))]


def table_rows(ranking: Ranking, judge: str | None = None) -> list[list[Any]]:
    """Rows of (rank, image name, score rounded to 4 decimals, precision[, each other judge's score and
    rank]), in `judge`'s order (default the ranking's own)."""
    rows = []
    for item in ranking.ordered_by(judge or ""):
        row = [item.rank, item.name, round(item.score, 4), item.precision]
        for other in ranking.judges[1:]:
            score = item.scores.get(other)
            row += [None if score is None else round(score, 4), item.ranks.get(other)]
            if other in CHOICES:
                choice = item.choices.get(other)
                row.append(None if choice is None else round(100 * choice, 2))
        rows.append(row)
    return rows


def table_value(ranking: Ranking, judge: str | None = None) -> dict[str, Any]:
    """The table as `gr.Dataframe` takes it: headers and rows (see `table_headers`, `table_rows`)."""
    return {"headers": table_headers(ranking.judges), "data": table_rows(ranking, judge)}


def agreement_text(ranking: Ranking) -> str:
    """One line: for each other judge, the share of image pairs it orders as ImageReward does."""
    parts = []
    for judge, (same, pairs) in ranking.agreement().items():
        share = f" ({100 * same / pairs:.0f}%)" if pairs else ""
        parts.append(f"{judge} {same} of {pairs} pair{'s' if pairs != 1 else ''}{share}")
    if not parts:
        return ""
    return f"**Agreement with {ranking.judges[0]}** (pairs of images ordered the same way): " + " · ".join(parts)


def winner_text(ranking: Ranking) -> str:
    """E.g. `**#1 · cat.png** — score 1.23`."""
    best = ranking.ranked[0]
    return f"**#1 · {best.name}** — score {best.score:.2f}"


def preference_probability(score_a: float, score_b: float) -> float:
    """P(people prefer A to B) as the model predicts it. ImageReward was trained with a pairwise
    (Bradley-Terry) loss on its raw output, and the published score is (raw - mean) / std, so
    P = sigmoid(std * (score_a - score_b))."""
    return 1.0 / (1.0 + math.exp(-REWARD_STD * (score_a - score_b)))


def compare_text(name_a: str, score_a: float, name_b: str, score_b: float) -> str:
    """One sentence: which of the two the model expects people to prefer, and how strongly."""
    p = preference_probability(score_a, score_b)
    if name_a == name_b:
        return f"Pick two different images to compare ({name_a} is on both sides)."
    better, worse, q = (name_a, name_b, p) if p >= 0.5 else (name_b, name_a, 1 - p)
    return (
        f"The model expects people to prefer **{better}** to **{worse}** with probability **{100 * q:.0f}%** "
        f"(scores {score_a:.2f} vs {score_b:.2f}; P = sigmoid({REWARD_STD:.4f} × score difference), "
        "the pairwise model ImageReward was trained with)."
    )


def status_line_many(rankings: list[tuple[str, Ranking]], model_label: str) -> str:
    """The status of one or several prompts: e.g. `Scored 8 images against 3 prompts with … in 120 ms: the
    first prompt took 80 ms, each other 20 ms (the images' embeddings came from the cache).`"""
    if len(rankings) == 1:
        return status_line(rankings[0][1], model_label)
    first, rest = rankings[0][1], [r for _, r in rankings[1:]]
    total = sum(r.seconds for _, r in rankings)
    images = len({item.name for _, r in rankings for item in r.ranked})
    return (
        f"Scored {images} image{'s' if images != 1 else ''} against {len(rankings)} prompts with {model_label} in "
        f"{total * 1000:.0f} ms: the first prompt took {first.seconds * 1000:.0f} ms, each other "
        f"{1000 * sum(r.seconds for r in rest) / len(rest):.0f} ms on average (images seen before come from the "
        "embedding cache)."
    )


def matrix(rankings: list[tuple[str, Ranking]]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the rank matrix of several prompts: one row per image (in first appearance), one
    column per prompt, cells `#rank · score` (empty where the image was not scored against that prompt)."""
    names: list[str] = []
    cells: dict[tuple[str, int], str] = {}
    for column, (_, ranking) in enumerate(rankings):
        for item in ranking.ranked:
            if item.name not in names:
                names.append(item.name)
            cells[(item.name, column)] = caption(item.rank, item.score)
    headers = ["image", *(prompt if len(prompt) <= 60 else prompt[:59] + "…" for prompt, _ in rankings)]
    return headers, [[name, *(cells.get((name, c), "") for c in range(len(rankings)))] for name in names]


def status_line(ranking: Ranking, model_label: str) -> str:
    """E.g. `Scored 8 images with ImageReward-v1.0 on cuda (float16) and CLIP in 45 ms.`"""
    n = len(ranking.ranked)
    took = f"{ranking.seconds * 1000:.0f} ms" if ranking.seconds < 10 else f"{ranking.seconds:.1f} s"
    skipped = f" Skipped {len(ranking.failures)} that could not be scored." if ranking.failures else ""
    judges = ", ".join(ranking.judges[1:])
    label = f"{model_label}{' and ' + judges if judges else ''}"
    return f"Scored {n} image{'s' if n != 1 else ''} with {label} in {took}.{skipped}"


def export_rows(ranking: Ranking, prompt: str, model: str) -> list[dict[str, Any]]:
    """The rows every download holds: prompt, rank, name, score (unrounded), model, precision, and with other
    judges their scores and ranks; best first."""
    return [{"prompt": prompt, **item.row(), "model": model} for item in ranking.ranked]


def export_fields(rankings: list[tuple[str, Ranking]]) -> list[str]:
    """The CSV's columns: `EXPORT_FIELDS`, then `<judge> score` and `<judge> rank` for every other judge, and
    `<judge> choice` (a probability, 0..1) for a judge that gives one."""
    judges = list(dict.fromkeys(j for _, r in rankings for j in r.judges[1:]))
    columns = [(j, what) for j in judges for what in ("score", "rank", "choice") if what != "choice" or j in CHOICES]
    return [*EXPORT_FIELDS, *(f"{j} {what}" for j, what in columns)]


def _csv_row(row: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    flat = {k: row.get(k) for k in EXPORT_FIELDS}
    for judge, score in row.get("scores", {}).items():
        flat[f"{judge} score"], flat[f"{judge} rank"] = score, row["ranks"][judge]
    for judge, choice in row.get("choices", {}).items():
        flat[f"{judge} choice"] = choice
    return {k: flat.get(k) for k in fields}


# Characters that reorder how text is displayed (a right-to-left override makes `gnp.exe` read as `exe.png`):
# dropped from the zip's entry names.
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _safe_name(name: str) -> str:
    """A file name for the zip: bidirectional controls dropped, path separators and control characters
    replaced, a repeat's counter moved before the extension (`image.png (2)` -> `image (2).png`), at most 120
    characters."""
    name = BIDI_CONTROLS.sub("", name)
    name = re.sub(r"[\x00-\x1f\x7f-\x9f/\\]", "_", name)
    repeat = re.fullmatch(r"(.*?)(\.[A-Za-z0-9]{1,5}) \((\d+)\)", name)
    if repeat:
        name = f"{repeat.group(1)} ({repeat.group(3)}){repeat.group(2)}"
    return name.strip(". ")[-120:] or "image"


def write_downloads(
    rankings: list[tuple[str, Ranking]], model: str, folder: Path, max_zip_bytes: int = MAX_ZIP_BYTES
) -> tuple[Path, Path, Path]:
    """Writes `rankings.csv` (one row per image and prompt), `rankings.json` (`{"model", "rankings": [{"prompt",
    "ranked": [rows]}]}`) and `ranked_images.zip` (the images renamed `01_+1.57_name.png`, best first; one
    folder per prompt when there are several; images past `max_zip_bytes` in all are left out and listed in a
    `left_out.txt` inside) into `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, json_path, zip_path = folder / "rankings.csv", folder / "rankings.json", folder / "ranked_images.zip"
    with open(csv_path, "w", encoding="utf-8", newline="") as f:
        fields = export_fields(rankings)
        rows = (_csv_row(row, fields) for prompt, ranking in rankings for row in export_rows(ranking, prompt, model))
        write_csv(f, fields, rows)
    payload = {"model": model, "rankings": [{"prompt": p, "ranked": export_rows(r, p, model)} for p, r in rankings]}
    json_path.write_text(json.dumps(payload, indent=1, ensure_ascii=False), encoding="utf-8")
    written, left_out = 0, []
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as archive:
        for k, (_, ranking) in enumerate(rankings):
            width = max(2, len(str(len(ranking.ranked))))
            folder_name = f"prompt_{k + 1:02d}/" if len(rankings) > 1 else ""
            for item in ranking.ranked:
                if not (isinstance(item.source, (str, Path)) and Path(item.source).is_file()):
                    continue
                name = f"{folder_name}{item.rank:0{width}d}_{item.score:+.2f}_{_safe_name(item.name)}"
                size = Path(item.source).stat().st_size
                if written + size > max_zip_bytes:
                    left_out.append(name)
                    continue
                archive.write(item.source, name)
                written += size
        if left_out:
            archive.writestr(
                "left_out.txt",
                f"These images were left out: the zip holds at most {max_zip_bytes // 2**20} MB of images.\n"
                + "\n".join(left_out)
                + "\n",
            )
    return csv_path, json_path, zip_path
