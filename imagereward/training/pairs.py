"""Preference pairs to train the reward model on, from the inputs people have, each pair with where it came from:

- the original's ranking files (ImageRewardDB's layout, the original's `test.json`: `[{prompt, generations,
  ranking}]`, images relative to an image folder): pairs as the original's `rank_pair_dataset.make_data` derives
  them, in its order (for each item, every `l < r`; the lower rank is better; equal ranks make no pair);
- the page's verdicts (`pairs.jsonl`, its download or `imagereward verdicts export`; the images as
  `images/<sha256><ext>` beside it, or by name): "a" or "b" make a pair, "tie" and "both_bad" do not;
- a table (Parquet: a file, a folder of them, or `hf://<owner>/<dataset>` from the Hugging Face hub) in one of
  the layouts people have: prompt/chosen/rejected (any image column holding bytes, `{"bytes", "path"}` or a
  path), Pick-a-Pic's caption/jpg_0/jpg_1/label_0 (label 0.5: a tie, no pair), HPDv2's prompt/image/
  human_preference (two images, the preferred marked 1) or prompt/image/rank (a ranking, as the original's).

A bad row (a missing image, an unknown field, a ranking that does not fit its generations) is named with its
line or row and left out, never silently; an image that cannot be decoded is named when it is first read
(`trainer.py`), and its pair left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..errors import InputError

ImageRef = Any  # a path (str or Path) or encoded bytes


@dataclass(frozen=True)
class Pair:
    """One preference: for `prompt`, `better` was preferred to `worse`; `source` says where it came from."""

    prompt: str
    better: ImageRef
    worse: ImageRef
    source: str = ""


@dataclass
class Pairs:
    """The pairs read, and a sentence for each row left out."""

    pairs: list[Pair]
    skipped: list[str]


def pairs_from_ranking(prompt: str, images: Sequence[ImageRef], ranking: Sequence[float], source: str) -> list[Pair]:
    """One item's pairs as the original derives them: for l < r, the lower rank is better; ties make none."""
    out = []
    for left in range(len(ranking)):
        for right in range(left + 1, len(ranking)):
            if ranking[left] < ranking[right]:
                out.append(Pair(prompt, images[left], images[right], source))
            elif ranking[left] > ranking[right]:
                out.append(Pair(prompt, images[right], images[left], source))
    return out


def read_rankings(path: str | Path, image_base: str | Path | None = None) -> Pairs:
    """The original's ranking file (see the module doc); images relative to `image_base` (default: the file's
    folder).

    Raises:
        InputError: not such a file (the message says what is expected).
    """
    path = Path(path)
    base = Path(image_base) if image_base is not None else path.parent
    items = _json(path)
    if not isinstance(items, list):
        raise InputError(f"{path}: a ranking file is a list of {{prompt, generations, ranking}} items")
    pairs, skipped = [], []
    for number, item in enumerate(items):
        where = f"{path}, item {number}"
        if not isinstance(item, Mapping) or not isinstance(item.get("prompt"), str):
            skipped.append(f"{where}: not a {{prompt, generations, ranking}} item")
            continue
        generations, ranking = item.get("generations"), item.get("ranking")
        if not isinstance(generations, list) or not isinstance(ranking, list) or len(generations) != len(ranking):
            skipped.append(f"{where}: `generations` and `ranking` must be lists of the same length")
            continue
        if not all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in ranking):
            skipped.append(f"{where}: `ranking` holds something that is not a number")
            continue
        files = [base / str(g) for g in generations]
        missing = [str(g) for g, f in zip(generations, files) if not f.is_file()]
        made = pairs_from_ranking(item["prompt"], [str(f) for f in files], ranking, where)
        if missing:
            skipped.append(f"{where}: no image {', '.join(missing)} (its pairs left out)")
            made = [p for p in made if Path(p.better).is_file() and Path(p.worse).is_file()]
        pairs += made
    return Pairs(pairs, skipped)


def read_verdicts(path: str | Path) -> Pairs:
    """The page's verdicts (see the module doc).

    Raises:
        InputError: the file cannot be read.
    """
    from ..verdicts.pairs import DECIDED, Verdict

    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the verdicts {path}: {e}") from None
    pairs, skipped = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            verdict = Verdict.from_dict(json.loads(line))
        except (ValueError, TypeError, AttributeError) as e:
            skipped.append(f"{where}: {e}")
            continue
        if verdict.verdict not in DECIDED:
            continue  # a tie or "both bad" prefers neither image: no pair, nothing wrong
        images = []
        for name, digest in ((verdict.chosen, _digest(verdict, verdict.chosen)), (verdict.rejected, "")):
            images.append(_verdict_image(path.parent, name, digest or _digest(verdict, name)))
        if None in images:
            missing = [n for n, i in zip((verdict.chosen, verdict.rejected), images) if i is None]
            skipped.append(f"{where}: no image {', '.join(missing)} in {path.parent} (nor in its images/)")
            continue
        pairs.append(Pair(verdict.prompt, str(images[0]), str(images[1]), where))
    return Pairs(pairs, skipped)


def _digest(verdict: Any, name: str) -> str:
    return verdict.a_sha256 if name == verdict.a else verdict.b_sha256


def _verdict_image(folder: Path, name: str, digest: str) -> Path | None:
    """The download's `images/<sha256><ext>`, else the image by its name beside the file."""
    if digest:
        found = sorted((folder / "images").glob(f"{digest}.*"))
        if found:
            return found[0]
    candidate = folder / name
    return candidate if name and candidate.is_file() else None


LAYOUTS = {
    "prompt/chosen/rejected": ("prompt", "chosen", "rejected"),
    "Pick-a-Pic (caption/jpg_0/jpg_1/label_0)": ("caption", "jpg_0", "jpg_1", "label_0"),
    "HPDv2 (prompt/image/human_preference)": ("prompt", "image", "human_preference"),
    "HPDv2 test (prompt/image/rank)": ("prompt", "image", "rank"),
}


def read_table(source: str | Path) -> Pairs:
    """A Parquet table of preferences (see the module doc): a file, a folder of `.parquet` files, or
    `hf://<owner>/<dataset>` (its Parquet files from the hub, into the Hugging Face cache). Paths in image columns
    are relative to the file's folder.

    Raises:
        InputError: no Parquet there, or columns of no known layout (the layouts named).
    """
    files = _parquet_files(source)
    pairs, skipped = [], []
    for file in files:
        import pyarrow.parquet as pq

        try:
            table = pq.ParquetFile(file)
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read {file} as Parquet: {e}") from None
        columns = set(table.schema_arrow.names)
        layout = next((name for name, need in LAYOUTS.items() if set(need) <= columns), None)
        if layout is None:
            known = "; ".join(f"{name}" for name in LAYOUTS)
            raise InputError(f"{file} has columns {sorted(columns)}, of no known layout; the layouts: {known}")
        row = 0
        for batch in table.iter_batches(batch_size=256, columns=list(LAYOUTS[layout])):
            for record in batch.to_pylist():
                where = f"{file}, row {row}"
                row += 1
                made, problem = _table_pairs(layout, record, file.parent, where)
                pairs += made
                if problem:
                    skipped.append(f"{where}: {problem}")
    return Pairs(pairs, skipped)


def _table_pairs(layout: str, record: Mapping[str, Any], folder: Path, where: str) -> tuple[list[Pair], str]:
    """One row's pairs, or a sentence saying why it has none (empty for a tie: nothing wrong)."""
    prompt = record.get("prompt", record.get("caption"))
    if not isinstance(prompt, str):
        return [], "no prompt (text)"
    if layout.startswith("prompt/chosen"):
        images = [_image(record.get("chosen"), folder), _image(record.get("rejected"), folder)]
        ranking: list[float] = [1, 2]
    elif layout.startswith("Pick"):
        label = record.get("label_0")
        if not isinstance(label, (int, float)):
            return [], "label_0 is not a number"
        if label == 0.5:
            return [], ""
        images = [_image(record.get("jpg_0"), folder), _image(record.get("jpg_1"), folder)]
        ranking = [1, 2] if label > 0.5 else [2, 1]
    else:
        listed = record.get("image")
        marks = record.get("human_preference", record.get("rank"))
        if not isinstance(listed, list) or not isinstance(marks, list) or len(listed) != len(marks):
            return [], "`image` and its marks must be lists of the same length"
        images = [_image(i, folder) for i in listed]
        # human_preference: 1 marks the preferred image (higher is better); rank: lower is better
        ranking = [-float(m) for m in marks] if "human_preference" in record else [float(m) for m in marks]
    if any(i is None for i in images):
        return [], "an image is missing (no bytes, or no file at its path)"
    return pairs_from_ranking(prompt, images, ranking, where), ""


def _image(value: Any, folder: Path) -> ImageRef | None:
    """An image cell: bytes, `{"bytes", "path"}` (datasets' Image feature) or a path relative to `folder`."""
    if isinstance(value, Mapping):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value) if value else None
    if isinstance(value, str) and value:
        path = Path(value) if Path(value).is_absolute() else folder / value
        return str(path) if path.is_file() else None
    return None


def _parquet_files(source: str | Path) -> list[Path]:
    text = str(source)
    if text.startswith("hf://"):
        from huggingface_hub import snapshot_download

        repo = text[len("hf://") :].strip("/")
        folder = Path(snapshot_download(repo, repo_type="dataset", allow_patterns=["*.parquet", "**/*.parquet"]))
    else:
        folder = Path(source)
    files = sorted(folder.rglob("*.parquet")) if folder.is_dir() else [folder]
    if not files or not files[0].is_file():
        raise InputError(f"{source}: no Parquet file there; give a .parquet file, a folder of them, or hf://owner/name")
    return files


def read_any(path: str | Path, image_base: str | Path | None = None) -> Pairs:
    """Pairs from any of the three inputs, told apart by the file: `.jsonl` (verdicts), `.json` (rankings),
    Parquet (a file, a folder, `hf://`)."""
    text = str(path)
    if text.endswith(".jsonl"):
        return read_verdicts(path)
    if text.endswith(".json"):
        return read_rankings(path, image_base)
    return read_table(path)


def merge(parts: Iterable[Pairs]) -> Pairs:
    found = list(parts)
    return Pairs([p for part in found for p in part.pairs], [s for part in found for s in part.skipped])


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}; give the original's ranking file (JSON)") from None
