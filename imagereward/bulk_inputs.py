"""What `imagereward bulk` scores: the rows of manifests, folders and WebDataset shards, and where each row's
encoded image lies, so that only the CPU task decoding a row ever reads its bytes.

A row is `{"id", "prompt", "image", "kind", "source", "offset", "size"}`: `image` is the reference written to the
output; `kind` says how to fetch the encoded image from `source`:

- `file`: the image file `source` (a folder's file, or a manifest's path);
- `tar`: `size` bytes at `offset` of the uncompressed tar `source` (a WebDataset shard's member; the shard's
  headers are read when the rows are listed, the images themselves never are);
- `parquet`: row `offset` of the Parquet manifest `source`, whose `image` column holds the bytes (or, as
  Hugging Face `datasets` writes images, a struct of `bytes` and `path`); read per decoding task, one row
  group at a time.

A million rows take a few hundred MB on the machine that lists them, whatever the images weigh.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any, Sequence

from .errors import ImageLoadError, InputError
from .images import IMAGE_EXTENSIONS

MANIFEST_SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json"}
FILE, TAR, PARQUET = "file", "tar", "parquet"


def read_rows(inputs: Sequence[str | Path], prompt: str | None = None) -> list[dict[str, Any]]:
    """The rows to score (see the module doc), from manifests, folders (with `prompt`) and WebDataset shards,
    in order.

    Raises:
        InputError: an input that is none of these, a manifest without its columns, a folder without prompt,
            a compressed shard, ids repeated across the inputs.
    """
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
        # Inline images stay in the file: a decoding task reads them (`EncodedImages`).
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


class EncodedImages:
    """Fetches rows' encoded images in a decoding task: a path to open, or the bytes. Keeps each shard open and
    the last Parquet row group read while the task runs (`with EncodedImages() as fetch: fetch(name, kind, ...)`)."""

    def __init__(self) -> None:
        self.shards: dict[str, Any] = {}
        self.group: tuple[str, int, int, list[Any]] | None = None  # (manifest, first row, rows, images)

    def __enter__(self) -> EncodedImages:
        return self

    def __exit__(self, *_: object) -> None:
        for handle in self.shards.values():
            handle.close()
        self.shards.clear()

    def __call__(self, name: str, kind: str, source: str, offset: int, size: int) -> str | bytes:
        """The path or the bytes of row `name`'s image.

        Raises:
            ImageLoadError: its shard or manifest cannot be read (gone since the rows were listed?), or the
                manifest has no image in this row.
        """
        if kind == FILE:
            return source
        try:
            if kind == TAR:
                if source not in self.shards:
                    self.shards[source] = open(source, "rb")
                shard = self.shards[source]
                shard.seek(offset)
                return shard.read(size)
            if kind == PARQUET:
                image = self._parquet_image(source, offset)
                if not image:
                    raise ImageLoadError(name, "the manifest has no image in this row")
                return image
        except (OSError, ValueError) as e:  # pyarrow's errors are OSError / ValueError subclasses
            raise ImageLoadError(name, f"cannot read {source}: {e}") from e
        raise ValueError(f"unknown row kind {kind!r}; one of {FILE}, {TAR}, {PARQUET}")

    def _parquet_image(self, manifest: str, row: int) -> str | bytes:
        if self.group is None or self.group[0] != manifest or not 0 <= row - self.group[1] < self.group[2]:
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(manifest)
            first = 0
            for g in range(parquet.num_row_groups):
                rows = parquet.metadata.row_group(g).num_rows
                if row < first + rows:
                    images = parquet.read_row_group(g, columns=["image"]).column("image").to_pylist()
                    self.group = (manifest, first, rows, images)
                    break
                first += rows
            else:
                raise ValueError(f"{manifest} has no row {row}")
        assert self.group is not None
        value = self.group[3][row - self.group[1]]
        if isinstance(value, dict):  # Hugging Face datasets' Image: {"bytes": ..., "path": ...}
            if value.get("bytes"):
                return bytes(value["bytes"])
            value = value.get("path")
            if value:
                return str(Path(manifest).parent / value)
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        return b""
