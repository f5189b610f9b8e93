"""What `imagereward bulk` scores: the rows of manifests, folders and WebDataset shards, and where each row's
encoded image lies, so that only Ray's tasks ever read the images, never the machine that lists the rows.

A row is `{"id", "prompt", "image", "kind", "source", "offset", "size", "data"}`: `image` is the reference
written to the output; `kind` says how to fetch the encoded image from `source`:

- `file`: the image file `source` (a folder's file, or a manifest's path);
- `tar`: `size` bytes at `offset` of the uncompressed tar `source` (a WebDataset shard's member; the shard's
  headers are read when the rows are listed, the images themselves never are);
- `parquet`: row `offset` of the Parquet manifest `source`, whose `image` column holds the bytes (or, as
  Hugging Face `datasets` writes images, a struct of `bytes` and `path`). A Parquet column can only be read
  from the start of its row group, so these rows are gathered by row group (`parquet_row_groups`) and a Ray
  task reads each group once, start to end, handing its rows on as `bytes` rows (`data`: the image) a few at a
  time (`read_row_groups`): one pass over the file, however large its groups, and the decoding in parallel.

`data` is empty but for `bytes` rows (all rows share one schema, `row_schema`). A million rows take about a GB
on the machine that lists them, whatever the images weigh.
"""

from __future__ import annotations

import bisect
import json
import tarfile
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import ImageLoadError, InputError

MANIFEST_SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json"}
FILE, TAR, PARQUET, BYTES = "file", "tar", "parquet", "bytes"
UNREADABLE = "unreadable"  # a row its manifest's reader could not read: `source` says why
# Rows a row-group reader hands on at a time (and reads at a time: memory stays at a few of them).
READ_ROWS = 64
READ_BUFFER = 8 * 2**20


def row_schema() -> Any:
    """The rows' pyarrow schema (built on use: pyarrow is imported only where rows are made)."""
    import pyarrow as pa

    names = {"id": pa.string(), "prompt": pa.string(), "image": pa.string(), "kind": pa.string()}
    return pa.schema({**names, "source": pa.string(), "offset": pa.int64(), "size": pa.int64(), "data": pa.binary()})


def read_rows(inputs: Sequence[str | Path], prompt: str | None = None) -> list[dict[str, Any]]:
    """The rows to score (see the module doc), from manifests, folders (with `prompt`) and WebDataset shards,
    in order.

    Raises:
        InputError: an input that is none of these, a manifest without its columns, a folder without prompt,
            a compressed shard, ids repeated across the inputs.
    """
    from ..images.formats import IMAGE_EXTENSIONS

    rows: list[dict[str, Any]] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if path.is_dir():
            if prompt is None:
                raise InputError(f"{path} is a folder: give --prompt, the prompt its images were generated from")
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            rows += [_row(str(p.relative_to(path)), prompt, str(p), FILE, str(p)) for p in files]
        elif path.suffix == ".tar":
            rows += _webdataset_rows(path, prompt)
        elif path.suffix in MANIFEST_SUFFIXES:
            rows += _manifest_rows(path, prompt)
        else:
            raise InputError(
                f"{path}: not a manifest (.parquet, .csv, .jsonl), a WebDataset shard (.tar) or a folder of images"
            )
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})[:5] if len(ids) < 100_000 else []
        raise InputError(f"ids must be unique across the inputs (repeated: {repeated or 'several'}); give an id column")
    return rows


def _row(
    row_id: str, prompt: str | None, image: str, kind: str, source: str, offset: int = 0, size: int = 0
) -> dict[str, Any]:
    return {
        "id": row_id,
        "prompt": prompt,
        "image": image,
        "kind": kind,
        "source": source,
        "offset": offset,
        "size": size,
        "data": b"",
    }


def _manifest_rows(path: Path, prompt: str | None) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    kind = MANIFEST_SUFFIXES[path.suffix]
    if kind == "parquet":
        schema = pq.read_schema(path)
        columns = set(schema.names)
        image_type = schema.field("image").type if "image" in columns else pa.string()
        inline = (
            pa.types.is_binary(image_type) or pa.types.is_large_binary(image_type) or pa.types.is_struct(image_type)
        )
        # Inline images stay in the file: a reader task streams them (`read_row_groups`).
        table = pq.read_table(path, columns=[c for c in schema.names if not (inline and c == "image")])
    else:
        table = pa_csv.read_csv(path) if kind == "csv" else pa_json.read_json(path)  # JSON: an object per line
        columns, inline = set(table.column_names), False
    if "image" not in columns or ("prompt" not in columns and prompt is None):
        raise InputError(
            f"{path}: a manifest needs the columns prompt and image (and optionally id); it has {sorted(columns)}"
        )
    ids = table.column("id").to_pylist() if "id" in columns else [None] * table.num_rows
    prompts = table.column("prompt").to_pylist() if "prompt" in columns else [None] * table.num_rows
    images = [None] * table.num_rows if inline else table.column("image").to_pylist()
    rows = []
    for k, (row_id, row_prompt, image) in enumerate(zip(ids, prompts, images)):
        row_id = str(row_id) if row_id is not None else str(k)
        row_prompt = row_prompt if row_prompt is not None else prompt
        if inline:
            rows.append(_row(row_id, row_prompt, f"{path.name}#{k}", PARQUET, str(path), offset=k))
        else:
            file = str(path.parent / str(image))
            rows.append(_row(row_id, row_prompt, file, FILE, file))
    return rows


def _webdataset_rows(path: Path, prompt: str | None) -> list[dict[str, Any]]:
    """`<key>.<image ext>` with `<key>.txt` (the prompt) or `<key>.json` (`{"prompt": ...}`) per sample; reads
    the shard's headers and prompts, and notes where each image lies in it."""
    from ..images.formats import IMAGE_EXTENSIONS

    samples: dict[str, dict[str, Any]] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, _, ext = member.name.partition(".")
                ext = ext.lower()
                if f".{ext}" in IMAGE_EXTENSIONS:
                    samples.setdefault(key, {})[ext] = (member.offset_data, member.size)
                elif ext in ("txt", "json"):
                    handle = tar.extractfile(member)
                    samples.setdefault(key, {})[ext] = handle.read() if handle is not None else b""
    except tarfile.ReadError as e:
        raise InputError(
            f"{path}: not an uncompressed tar ({e}); WebDataset shards are read in place, so decompress them first"
        ) from e
    rows = []
    for key, parts in samples.items():
        image_ext = next((e for e in parts if f".{e}" in IMAGE_EXTENSIONS), None)
        if image_ext is None:
            continue
        text = parts["txt"].decode("utf-8") if "txt" in parts else None
        if text is None and "json" in parts:
            text = json.loads(parts["json"]).get("prompt")
        offset, size = parts[image_ext]
        image = f"{path.name}/{key}.{image_ext}"
        rows.append(_row(key, text if text is not None else prompt, image, TAR, str(path), offset, size))
    return rows


def parquet_row_groups(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """`parquet` rows gathered by manifest and row group, for `read_row_groups`: one item per group,
    `{"source", "group", "first"` (its first row's index), `"rows"` (the group's rows to read, in order)`}`."""
    import pyarrow.parquet as pq

    by_manifest: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_manifest.setdefault(row["source"], []).append(row)
    items = []
    for manifest, manifest_rows in by_manifest.items():
        metadata = pq.ParquetFile(manifest).metadata
        starts = [0]
        for g in range(metadata.num_row_groups):
            starts.append(starts[-1] + metadata.row_group(g).num_rows)
        groups: dict[int, list[dict[str, Any]]] = {}
        for row in sorted(manifest_rows, key=lambda r: r["offset"]):
            groups.setdefault(bisect.bisect_right(starts, row["offset"]) - 1, []).append(row)
        items += [{"source": manifest, "group": g, "first": starts[g], "rows": rs} for g, rs in groups.items()]
    return items


def read_row_groups(items: Any) -> Iterator[Any]:
    """Ray task over a pyarrow table of `parquet_row_groups` items: reads each group's `image` column once,
    start to end, READ_ROWS rows at a time, and yields its rows (pyarrow tables) as `bytes` rows (`file` rows
    where a Hugging Face image holds a path instead of bytes; `unreadable` rows, with the reason, where the
    manifest cannot be read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for item in items.to_pylist():
        manifest = item["source"]
        wanted = {row["offset"]: row for row in item["rows"]}
        out: list[dict[str, Any]] = []
        reason = ""
        try:
            index = item["first"]
            # Unbuffered, pyarrow reads a whole column chunk at once; buffered, ~half of it at the most (measured).
            parquet = pq.ParquetFile(manifest, pre_buffer=False, buffer_size=READ_BUFFER)
            for record in parquet.iter_batches(READ_ROWS, row_groups=[item["group"]], columns=["image"]):
                for value in record.column(0).to_pylist():
                    if index in wanted:
                        out.append(_inline_row(wanted.pop(index), value, manifest))
                    index += 1
                if len(out) >= READ_ROWS:
                    yield _table(out)
                    out = []
        except (OSError, ValueError, pa.ArrowException) as e:
            reason = f"cannot read {manifest}: {e}"
        if wanted:  # rows not read: an error, or the manifest has changed since it was listed
            reason = reason or f"{manifest} has changed since it was listed: no row {min(wanted)} any more"
            out += [{**row, "kind": UNREADABLE, "source": reason} for row in wanted.values()]
        if out:
            yield _table(out)


def _inline_row(row: dict[str, Any], value: Any, manifest: str) -> dict[str, Any]:
    if isinstance(value, dict):  # Hugging Face datasets' Image: {"bytes": ..., "path": ...}
        if not value.get("bytes") and value.get("path"):
            path = str(Path(manifest).parent / value["path"])
            return {**row, "kind": FILE, "source": path}
        value = value.get("bytes")
    return {**row, "kind": BYTES, "data": bytes(value) if isinstance(value, (bytes, bytearray)) else b""}


def _table(rows: list[dict[str, Any]]) -> Any:
    """Rows as a pyarrow table of the rows' schema (bytes stay bytes: a numpy `S` array would drop trailing
    zero bytes)."""
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=row_schema())


class EncodedImages:
    """Fetches rows' encoded images in a decoding task: a path to open, or the bytes. Keeps each shard open
    while the task runs (`with EncodedImages() as fetch: fetch(name, kind, ...)`)."""

    def __init__(self) -> None:
        self.shards: dict[str, Any] = {}

    def __enter__(self) -> EncodedImages:
        return self

    def __exit__(self, *_: object) -> None:
        for handle in self.shards.values():
            handle.close()
        self.shards.clear()

    def __call__(self, name: str, kind: str, source: str, offset: int, size: int, data: bytes) -> str | bytes:
        """The path or the bytes of row `name`'s image.

        Raises:
            ImageLoadError: its shard or manifest cannot be read (gone since the rows were listed?), or the
                manifest has no image in this row.
        """
        if kind == FILE:
            return source
        if kind == BYTES:
            if not data:
                raise ImageLoadError(name, "the manifest has no image in this row")
            return data
        if kind == UNREADABLE:
            raise ImageLoadError(name, source)
        if kind != TAR:
            raise ValueError(f"unknown row kind {kind!r}; one of {FILE}, {TAR}, {BYTES}, {UNREADABLE}")
        try:
            if source not in self.shards:
                self.shards[source] = open(source, "rb")
            shard = self.shards[source]
            shard.seek(offset)
            return shard.read(size)
        except OSError as e:
            raise ImageLoadError(name, f"cannot read {source}: {e}") from e
