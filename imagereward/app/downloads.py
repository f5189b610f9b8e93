"""What a visitor takes away from a ranking: the CSV (one result row per image and prompt, the columns every
surface writes, `rows.columns`), the JSON (with the notes and what was skipped) and a zip of the images renamed
by rank, written into a folder of the page's downloads (`files.Downloads`), their size bounded.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..ranking import Ranking
from ..rows import columns, result_rows, write_csv

# The image files one zip holds at most, all together (a public page must bound what a request writes).
MAX_ZIP_BYTES = 64 * 2**20
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


def _with_skipped(rows: list[dict[str, Any]], ranking: Ranking, prompt: str, model: str) -> list[dict[str, Any]]:
    """A prompt's result rows, then a row for each image that could not be scored (its rank and score empty)."""
    return rows + [{"prompt": prompt, "image": e.name, "model": model} for e in ranking.failures]


def download_stem(prompt: str, when: float | None = None) -> str:
    """`imagereward-<the prompt's first words>-<date>-<time>`: ASCII letters and digits, at most 40 characters of
    the prompt (`rankings` for none)."""
    import time

    words = re.findall(r"[a-z0-9]+", prompt.lower())
    slug = ""
    for word in words:
        if len(slug) + len(word) + 1 > 40:
            break
        slug = f"{slug}-{word}" if slug else word
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    return f"imagereward-{slug or 'rankings'}-{stamp}"


def write_tables(
    rankings: list[tuple[str, Ranking]],
    model: str,
    csv_path: Path,
    json_path: Path,
    notes: Sequence[str] = (),
    verdicts: Mapping[tuple[str, str], int] | None = None,
) -> None:
    """The CSV and JSON of `write_downloads` (see there); with `verdicts` (how many of the visitor's verdicts
    name each image, by (prompt, image name)) that has any, each row also says so in a `verdicts` column. Written
    to a temporary file and renamed, so a download never reads half a file."""
    others = list(dict.fromkeys(j for _, r in rankings for j in r.judges[1:]))
    counted = bool(verdicts) and any(verdicts.values())  # type: ignore[union-attr]

    def rows_of(prompt: str, ranking: Ranking, skipped: bool) -> list[dict[str, Any]]:
        rows = result_rows(ranking, prompt, model)
        rows = _with_skipped(rows, ranking, prompt, model) if skipped else rows
        if counted:
            for row in rows:
                row["verdicts"] = verdicts.get((prompt, row["image"]), 0)  # type: ignore[union-attr]
        return rows

    partial = csv_path.with_name(f".{csv_path.name}.part")
    with open(partial, "w", encoding="utf-8", newline="") as f:
        rows = [row for prompt, r in rankings for row in rows_of(prompt, r, True)]
        write_csv(f, [*columns(others), *(["verdicts"] if counted else [])], rows)
    partial.replace(csv_path)
    payload = {
        "model": model,
        "notes": list(notes),
        "rankings": [
            {
                "prompt": p,
                "ranked": rows_of(p, r, False),
                "skipped": [{"name": e.name, "reason": e.reason} for e in r.failures],
            }
            for p, r in rankings
        ],
    }
    partial = json_path.with_name(f".{json_path.name}.part")
    partial.write_text(json.dumps(payload, indent=1, ensure_ascii=False), encoding="utf-8")
    partial.replace(json_path)


def write_downloads(
    rankings: list[tuple[str, Ranking]],
    model: str,
    folder: Path,
    max_zip_bytes: int = MAX_ZIP_BYTES,
    notes: Sequence[str] = (),
) -> tuple[Path, Path, Path]:
    """Writes `<stem>.csv` (one result row per image and prompt, `rows.columns`; an image that could not be
    scored has its row with the rank and score empty), `<stem>.json` (`{"model", "notes", "rankings":
    [{"prompt", "ranked": [rows], "skipped": [{"name", "reason"}]}]}`) and `<stem>-images.zip` (the images renamed
    `01_+1.57_name.png`, best first; one folder per prompt when there are several; images past `max_zip_bytes`
    in all are left out and listed in a `left_out.txt` inside) into `folder`; returns their paths. The stem
    (`download_stem`) names the first prompt and the time, so that downloads of several requests do not
    overwrite each other. `model` is the ranking judge's name as the rows give it."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = download_stem(rankings[0][0] if rankings else "")
    csv_path, json_path, zip_path = folder / f"{stem}.csv", folder / f"{stem}.json", folder / f"{stem}-images.zip"
    write_tables(rankings, model, csv_path, json_path, notes)
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


def write_verdicts(pairs: Sequence[Any], images: dict[str, Path], folder: Path) -> tuple[Path, Path]:
    """A visitor's verdicts as they take them away: `<stem>-verdicts.jsonl` (the preference pairs,
    `verdicts.pairs`) and `<stem>-verdicts.zip` holding `pairs.jsonl` and `images/<sha256><ext>` for each image
    it names that the page still has (`images`, by SHA-256; at most `MAX_ZIP_BYTES` of them)."""
    from ..verdicts import write_pairs

    folder.mkdir(parents=True, exist_ok=True)
    stem = download_stem(pairs[-1].prompt if pairs else "")
    jsonl, zipped = folder / f"{stem}-verdicts.jsonl", folder / f"{stem}-verdicts.zip"
    with open(jsonl, "w", encoding="utf-8") as f:
        write_pairs(pairs, f)
    named = {sha for p in pairs for sha in (p.a_sha256, p.b_sha256)}
    written = 0
    with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.write(jsonl, "pairs.jsonl")
        for sha in sorted(named & set(images)):
            path = images[sha]
            size = path.stat().st_size
            if written + size > MAX_ZIP_BYTES:
                continue
            archive.write(path, f"images/{sha}{path.suffix.lower()}")
            written += size
    return jsonl, zipped
