"""A benchmark from bulk's scores: `imagereward bulk` scores millions of generations on Ray Data, and this
summarises its Parquet output (bulk's one result schema) as a run on the images would.

    imagereward benchmark --images-dir gens --write-manifest gens.parquet   # the generations as bulk's input
    imagereward bulk gens.parquet --output scores --judge CLIP              # on Ray Data
    imagereward benchmark --from-scores scores                              # the report

Each row's `image` ends in `<model>/<id>_<k>.<ext>` (as `write_manifest` writes it): its model, prompt id and
generation. `score` is the first judge's (the one the `model` column names: ImageReward's weights, or another
judge), `score_<judge>` each other's.
A row with an `error` leaves its prompt out of its model's figure (named, with the file and why), as an
unreadable file does; a prompt with fewer rows than its model's generations per prompt (the number of rows most
of its prompts have: the original counts the folder's files // the prompts) is named as missing. A row whose image does not end so is counted
and its first names reported.

Read a batch at a time with pyarrow's compute (the path parsed by a regular expression, ids dictionary-encoded), the
scores go straight into the tables' arrays: memory is the scores themselves (8 bytes each, per judge) and one
batch, never the rows' strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import InputError
from ..images.formats import IMAGE_EXTENSIONS
from .layout import Prompt, find_generations
from .table import JudgeTable, from_arrays

# `<model>/<id>_<k>.<ext>` at the end of a path, either separator.
GENERATION_PATTERN = r"(?:^|[/\\])(?P<model>[^/\\]+)[/\\](?P<id>[^/\\]+)_(?P<k>[0-9]+)\.[A-Za-z0-9]+$"
BATCH_ROWS = 1 << 16


@dataclass
class _Growing:
    """A (M, P, K) array that grows as new models, prompts and generations appear (prompts by doubling),
    filled with `empty` where nothing was put."""

    empty: float = np.nan
    dtype: type = np.float64
    data: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.data = np.full((1, 1024, 1), self.empty, dtype=self.dtype)

    def fit(self, m: int, p: int, k: int) -> None:
        shape = self.data.shape
        if m < shape[0] and p < shape[1] and k < shape[2]:
            return
        grown = (max(shape[0], m + 1), max(shape[1], 2 * (p + 1)) if p >= shape[1] else shape[1], max(shape[2], k + 1))
        data = np.full(grown, self.empty, dtype=self.dtype)
        data[: shape[0], : shape[1], : shape[2]] = self.data
        self.data = data


@dataclass
class BulkScores:
    """What `read_bulk_scores` found: the tables, and the rows it could not place."""

    tables: dict[str, JudgeTable]
    rows: int
    unplaced: int
    unplaced_examples: list[str]
    duplicates: int
    other_prompts: int  # rows of prompts not in the prompt list given


def _files(paths: Sequence[str | Path]) -> list[str]:
    files: list[str] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(str(p) for p in path.glob("*.parquet"))
        elif path.is_file():
            files.append(str(path))
        else:
            raise InputError(f"{path} is neither a Parquet file nor a folder of them (bulk's --output)")
    if not files:
        raise InputError(f"no Parquet files in {', '.join(map(str, paths))}: give bulk's --output folder")
    return files


def _batches(files: Sequence[str], columns: list[str]) -> Iterator:
    """The files' rows, BATCH_ROWS at a time, one file after another (the reader keeps one batch in memory;
    pyarrow's dataset scanner reads ahead several and holds hundreds of MB at 10 million rows).

    Raises:
        InputError: a file that is not bulk's (a column missing: the message names it and the file).
    """
    import pyarrow.parquet as pq

    for file in files:
        parquet = pq.ParquetFile(file, pre_buffer=False)
        missing = [c for c in columns if c not in parquet.schema_arrow.names]
        if missing:
            raise InputError(f"{file} is not bulk's output like the others: it has no {', '.join(missing)}")
        yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns, use_threads=False)


def _judge_columns(names: Sequence[str], model: str | None) -> dict[str, str]:
    """Column -> judge name: `score` is the judge the `model` column names (a judge's name, or ImageReward's
    weights: ImageReward, named as the benchmark names it), `score_<label>` each other judge's."""
    from ..judges import primary, spec

    try:
        first = spec(model).name if model is not None else primary().name
    except ValueError:
        first = primary().name  # ImageReward's weights by a path's name
    out = {"score": first}
    for column in names:
        if column.startswith("score_"):
            label = column[len("score_") :]
            try:
                out[column] = spec(label).name
            except ValueError:
                out[column] = label
    return out


def read_bulk_scores(paths: Sequence[str | Path], prompts: Sequence[Prompt] | None = None) -> BulkScores:
    """Bulk's Parquet output as the benchmark's tables (see the module doc); `prompts` (the prompt list) restricts
    and orders the prompts, else every prompt id found, in the order first seen.

    Raises:
        InputError: no Parquet file, or not bulk's schema (the message names the columns it needs).
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = _files(paths)
    names = pq.read_schema(files[0]).names
    if not {"image", "score", "prompt"} <= set(names):
        raise InputError(f"not bulk's output: it needs the columns image, prompt and score; {files[0]} has {names}")
    first = (
        pq.ParquetFile(files[0]).read_row_group(0, columns=["model"]).column("model").drop_null()
        if "model" in names
        else None
    )
    judges = _judge_columns(names, first[0].as_py() if first is not None and len(first) else None)
    models: dict[str, int] = {}
    ids: dict[str, int] = {p.id: k for k, p in enumerate(prompts)} if prompts is not None else {}
    texts: list[str] = [p.prompt for p in prompts] if prompts is not None else []
    arrays = {column: _Growing() for column in judges}
    errors: dict[tuple[int, int], list[str]] = {}
    seen = _Growing(0, np.uint8)  # rows found per (model, prompt, generation)
    rows = unplaced = duplicates = other_prompts = 0
    examples: list[str] = []
    columns = ["image", "prompt", *judges, *(["error"] if "error" in names else [])]
    for batch in _batches(files, columns):
        rows += batch.num_rows
        parts = pc.extract_regex(batch.column("image"), GENERATION_PATTERN)
        placed = np.asarray(parts.is_valid())
        if not placed.all():
            unplaced += int((~placed).sum())
            if len(examples) < 5:
                images = batch.column("image").filter(pc.invert(parts.is_valid())).to_pylist()
                examples += [str(i) for i in images[: 5 - len(examples)]]
        if not placed.any():
            continue
        parts = parts.filter(parts.is_valid())
        keep = np.flatnonzero(placed)
        model_codes = _codes(parts.field("model"), models, None)
        prompt_codes = _codes(parts.field("id"), ids, texts, batch.column("prompt").take(keep), prompts is None)
        k = np.asarray(pc.cast(parts.field("k"), "int64"))
        inside = prompt_codes >= 0
        other_prompts += int((~inside).sum())
        m, p, k = model_codes[inside], prompt_codes[inside], k[inside]
        if not m.size:
            continue
        shape = (int(m.max()), int(p.max()), int(k.max()))
        seen.fit(*shape)
        duplicates += int(np.sum(seen.data[m, p, k] > 0))
        seen.data[m, p, k] = 1
        for column, grown in arrays.items():
            grown.fit(*shape)
            grown.data[m, p, k] = np.asarray(batch.column(column).take(keep).to_numpy(zero_copy_only=False))[inside]
        if "error" in columns:
            failed = np.asarray(batch.column("error").take(keep).is_valid())[inside]
            images = batch.column("image").take(keep).filter(inside).filter(failed).to_pylist()
            reasons = batch.column("error").take(keep).filter(inside).filter(failed).to_pylist()
            for mm, pp, image, reason in zip(m[failed], p[failed], images, reasons):
                errors.setdefault((int(mm), int(pp)), []).append(f"{Path(str(image)).name}: {reason}")
    model_list = list(models)
    prompt_list = list(prompts) if prompts is not None else [Prompt(i, t) for i, t in zip(ids, texts)]
    found = seen.data[: len(model_list), : len(prompt_list)] > 0
    tables = {
        judge: from_arrays(judge, model_list, prompt_list, arrays[column].data, found, errors)
        for column, judge in judges.items()
    }
    return BulkScores(tables, rows, unplaced, examples, duplicates, other_prompts)


def _codes(values, codes: dict[str, int], texts: list[str] | None, prompts=None, grow: bool = True) -> np.ndarray:
    """Each value's code (its index in `codes`, new values added when `grow`; -1 for a value not there), from
    the batch's dictionary encoding: one lookup per distinct value, not per row. With `texts`, a new code's
    text is the first row's `prompts` value."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(values)
    indices = np.asarray(encoded.indices)
    mapping = np.empty(len(encoded.dictionary), dtype=np.int64)
    first_rows = np.unique(indices, return_index=True)[1] if texts is not None and grow else None
    for n, value in enumerate(encoded.dictionary.to_pylist()):
        if value not in codes and grow:
            codes[value] = len(codes)
            if first_rows is not None:
                texts.append(str(prompts[int(first_rows[n])].as_py()))
        mapping[n] = codes.get(value, -1)
    return mapping[indices]


def write_manifest(images_dir: str | Path, prompts: Sequence[Prompt], models: Sequence[str], path: str | Path) -> int:
    """Bulk's input for a benchmark: one row (`id`, `prompt`, `image` relative to the manifest) per generation
    found in the original's layout, as Parquet (or CSV/JSONL by the suffix); returns the rows written.

    Raises:
        InputError: the manifest is not beside or above `images_dir` (bulk reads images relative to it).
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    path = Path(path).resolve()
    root = Path(images_dir).resolve()
    if not root.is_relative_to(path.parent):
        raise InputError(f"write the manifest in {root} or a folder above it: bulk reads images relative to it")
    rows: dict[str, list[str]] = {"id": [], "prompt": [], "image": []}
    text = {p.id: p.prompt for p in prompts}
    for model in models:
        generations = find_generations(images_dir, model, prompts)
        for prompt_id, files in generations.files.items():
            for file in files:
                if file.suffix.lower() in IMAGE_EXTENSIONS:
                    relative = file.resolve().relative_to(path.parent).as_posix()
                    rows["id"].append(f"{model}/{file.stem}")
                    rows["prompt"].append(text[prompt_id])
                    rows["image"].append(relative)
    table = pa.table(rows)
    if path.suffix == ".csv":
        pa_csv.write_csv(table, path)
    elif path.suffix == ".jsonl":
        import json

        with open(path, "w", encoding="utf-8") as f:
            for row in table.to_pylist():
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        pq.write_table(table, path)
    return table.num_rows
