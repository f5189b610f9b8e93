"""Scoring a dataset with Ray Data: millions of (prompt, image) pairs on one machine or a cluster.

    imagereward bulk manifest.parquet --output scores.parquet

The pipeline is Ray Data's: the inputs become a dataset of rows that say where each image lies
(`bulk_inputs`: the driver never holds the images); CPU tasks read, decode and preprocess each image exactly
as the package does, once per preprocessing the judges read (each image opened once; ImageReward and the
baselines share theirs, PickScore and HPSv2.1 have their own); model actors (one per GPU, or `actors` on the
CPU) score batches, every judge from its decoded pixels, one image-encoder pass per batch whatever the prompts
(`Judge.score_pairs`); the driver streams the results into Parquet part files.

Inputs: a manifest (Parquet, CSV or JSONL with columns `prompt`, `image` (a path relative to the manifest's
folder, or in Parquet the encoded bytes) and an optional `id`), a folder of images with `prompt`, or
uncompressed WebDataset tar shards (`<key>.png|jpg|webp` + `<key>.txt` or `<key>.json` holding the prompt).

Output: a Parquet dataset (a folder) of the package's result rows (`rows`): `id`, `prompt`, `image` (the
reference, never the bytes), `score` (the first judge's), `score_<judge>` for each other judge, `precision`,
`model` and `error` (null, or why the image could not be scored). Resumable: results are written in part files, each renamed into place only when
complete, and a run started again skips every id already written, so a run killed half-way and restarted
ends with every row exactly once.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ImageLoadError, InputError
from .inputs import PARQUET, EncodedImages, parquet_row_groups, read_row_groups, read_rows

# Rows per Parquet part file: what a killed run can lose and recompute at most.
PART_ROWS = 4096
# Images per decoding task, and the memory a task reserves (decoded images up to the pixel limit).
DECODE_BATCH = 64
DECODE_MEMORY = 768 * 2**20
MAX_BLOCKS = 10_000
# CPUs a GPU model actor reserves: none. On a GPU node the work is decoding (the GPU scores faster than the
# node's cores decode), and the actor's own CPU share is small (handing batches to the GPU), so every core
# takes a decoding task, as the package runs one decoding process per core beside its model.
GPU_ACTOR_CPUS = 0


@dataclass(frozen=True)
class BulkSummary:
    """What a run did: rows written now, of them errors, rows found already written, seconds, images/s."""

    written: int
    errors: int
    skipped: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.written} rows written ({self.errors} errors), {self.skipped} already done, "
            f"in {self.seconds:.1f} s: {self.images_per_second:.1f} images/s"
        )


# ------------------------------------------------------------------------------------------- ray stages
def rows_dataset(rows: list[dict[str, Any]], readers: int = 2) -> Any:
    """`rows` (`bulk_inputs.read_rows`) as a Ray dataset in blocks of about DECODE_BATCH rows (at most
    MAX_BLOCKS), so that decoding spreads over every CPU; the rows of Parquet manifests holding their images
    come from `readers` tasks reading one row group each (`bulk_inputs.read_row_groups`)."""
    import ray

    located = [row for row in rows if row["kind"] != PARQUET]
    groups = parquet_row_groups([row for row in rows if row["kind"] == PARQUET])
    parts = []
    if located:
        parts.append(
            ray.data.from_items(located, override_num_blocks=min(MAX_BLOCKS, -(-len(located) // DECODE_BATCH)))
        )
    if groups:
        # No CPU reserved: reading is light beside decoding, and a reader lives as long as its rows wait.
        parts.append(
            ray.data.from_items(groups, override_num_blocks=min(MAX_BLOCKS, len(groups))).map_batches(
                read_row_groups,
                batch_size=None,
                batch_format="pyarrow",
                num_cpus=0,
                compute=ray.data.TaskPoolStrategy(size=min(readers, len(groups))),
            )
        )
    return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]


def pixels_column(preprocessing: str) -> str:
    return f"pixels_{preprocessing}"


def decode_batch(batch: dict[str, np.ndarray], preprocessings: Sequence[str] = ("resize-crop-224",)) -> dict[str, Any]:
    """CPU task: read each row's image (`bulk_inputs.EncodedImages`), open it once and preprocess it as each of
    `preprocessings` (`str` of a `Preprocessing`) does -> `pixels_<preprocessing>` (N, 3, S, S) uint8 or float32
    each, and `error` (None or why)."""
    from ..images.reading import open_image
    from ..images.transforms import parse

    n = len(batch["id"])
    kinds = [parse(p) for p in preprocessings]
    pixels = [
        np.zeros((n, 3, p.size, p.size), dtype=np.float32 if p.dtype.is_floating_point else np.uint8) for p in kinds
    ]
    errors: list[str | None] = [None] * n
    with EncodedImages() as fetch:
        for k in range(n):
            name = str(batch["image"][k])
            try:
                where = batch["kind"][k], batch["source"][k], int(batch["offset"][k]), int(batch["size"][k])
                encoded = fetch(name, *where, batch["data"][k])
                with open_image(encoded, name, lambda w, h, n: [kind.check_size(w, h, n) for kind in kinds]) as image:
                    for out, kind in zip(pixels, kinds):
                        out[k] = kind.apply(image, name).numpy()
            except ImageLoadError as e:
                errors[k] = e.reason
            prompt = batch["prompt"][k]
            if not isinstance(prompt, str) or not prompt.strip():
                errors[k] = errors[k] or "no prompt: the row's prompt is empty (and no --prompt was given)"
    return {
        "id": batch["id"],
        "prompt": batch["prompt"],
        "image": batch["image"],
        **{pixels_column(p): array for p, array in zip(preprocessings, pixels)},
        "error": np.array(errors, dtype=object),
    }


class ScoreActor:
    """A Ray actor holding the judges on its device; scores decoded batches (`__call__`)."""

    def __init__(
        self, judges: Sequence[str], model: str, device: str | None, dtype: str | None, download_root: str | None
    ) -> None:
        from ..judges import load_judge, spec

        self.judges = []
        for name in judges:
            found = spec(name)
            weights = {"weights": model} if found.primary else {}
            judge = load_judge(found.name, device=device, dtype=dtype, download_root=download_root, **weights)
            if judge.preprocessing != found.preprocessing:
                raise InputError(
                    f"{name} was loaded with {judge.preprocessing} preprocessing; bulk scoring decodes "
                    f"{found.preprocessing} for it. Use weights of the published architecture."
                )
            judge.embedding_cache.resize(0)  # every image once: nothing to reuse
            self.judges.append((found.label, judge))
        if not str(device).startswith("cuda"):
            import torch

            # Ray limits an actor to the threads of the CPUs it reserved; on the CPU the model is nearly all of
            # the work (decoding is ~2%), so it may use every core of its node.
            torch.set_num_threads(os.cpu_count() or 1)
        first = self.judges[0][1]
        self.model = Path(model).name if first.spec.primary else first.spec.name
        self.precision = str(first.dtype).removeprefix("torch.")

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import torch

        from ..images.decoding import Decoded
        from ..judges.base import Scored
        from ..rows import score_column

        n = len(batch["id"])
        errors = [e if isinstance(e, str) else None for e in batch["error"]]  # all-null columns arrive as NaN
        good = [k for k in range(n) if errors[k] is None]
        # Each row's own key (not a hash of its pixels: the cache is off, and hashing 150 kB an image would cost
        # the actor's one thread more than the GPU's time for it).
        prompts = [str(batch["prompt"][k]) for k in good]
        out: dict[str, Any] = {"id": batch["id"], "prompt": batch["prompt"], "image": batch["image"]}
        for j, (name, judge) in enumerate(self.judges):
            pixels = batch[pixels_column(str(judge.preprocessing))]
            # The good rows as views of one block, which the judge takes as its batch without copying it.
            block = torch.from_numpy(np.ascontiguousarray(pixels if len(good) == n else pixels[good]))
            decoded = [Decoded(row, f"row-{k}".encode()) for k, row in zip(good, block)]
            scores = np.full(n, np.nan)
            if good:
                names = [str(batch["image"][k]) for k in good]
                for k, result in zip(good, judge.score_pairs(prompts, decoded, names)):
                    if isinstance(result, Scored):
                        scores[k] = result.score
                    elif errors[k] is None:
                        errors[k] = f"{name}: {result.reason}"
            out["score" if j == 0 else score_column(name)] = scores
            if j == 0:  # the row's columns in `rows` order: the ranking judge's, then the others' scores
                out["precision"] = np.array([self.precision] * n, dtype=object)
                out["model"] = np.array([self.model] * n, dtype=object)
        out["error"] = np.array(errors, dtype=object)
        return out


# ------------------------------------------------------------------------------------------------ output
def written_ids(output: Path) -> set[str]:
    """The ids already in the output's complete part files (a killed run's unfinished part never counts)."""
    if not output.is_dir():
        return set()
    import pyarrow.parquet as pq

    done: set[str] = set()
    for part in sorted(output.glob("part-*.parquet")):
        done.update(pq.read_table(part, columns=["id"]).column("id").to_pylist())
    return done


class PartWriter:
    """Writes rows into `output/part-<run>-<n>.parquet`, each file renamed into place only once complete.

    Every part has the same schema (scores float64, every other column string, nulls where absent), so the
    output folder reads as one dataset (`pyarrow.dataset`, `pandas.read_parquet`, Ray's `read_parquet`)."""

    def __init__(self, output: Path, rows_per_part: int = PART_ROWS) -> None:
        output.mkdir(parents=True, exist_ok=True)
        for stale in output.glob(".part-*.tmp"):
            stale.unlink()  # a killed run's unfinished part
        self.output, self.rows_per_part = output, rows_per_part
        self.run = uuid.uuid4().hex[:8]
        self.pending: list[Any] = []  # pyarrow Tables
        self.pending_rows = 0
        self.parts = 0

    def add(self, batch: dict[str, Any]) -> None:
        import pyarrow as pa

        table = pa.table({name: _arrow_column(name, values) for name, values in batch.items()})
        self.pending.append(table)
        self.pending_rows += table.num_rows
        if self.pending_rows >= self.rows_per_part:
            rows = pa.concat_tables(self.pending)
            while rows.num_rows >= self.rows_per_part:
                self._flush(rows.slice(0, self.rows_per_part))
                rows = rows.slice(self.rows_per_part)
            self.pending, self.pending_rows = [rows], rows.num_rows

    def close(self) -> None:
        if self.pending_rows:
            import pyarrow as pa

            self._flush(pa.concat_tables(self.pending))
        self.pending, self.pending_rows = [], 0

    def _flush(self, rows: Any) -> None:
        import pyarrow.parquet as pq

        name = f"part-{self.run}-{self.parts:05d}.parquet"
        temp = self.output / f".{name}.tmp"
        pq.write_table(rows, temp)
        os.replace(temp, self.output / name)
        self.parts += 1


def _arrow_column(name: str, values: Any) -> Any:
    """A batch column as Arrow: `score*` as float64 (NaN -> null), the rest as strings (None/NaN -> null; Ray
    hands an all-null column over as NaNs)."""
    import pyarrow as pa

    if name == "score" or name.startswith("score_"):
        scores = np.asarray(values, dtype=np.float64)
        return pa.array(scores, mask=np.isnan(scores), type=pa.float64())
    return pa.array([v if isinstance(v, str) else None if _missing(v) else str(v) for v in values], type=pa.string())


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and value != value)


# --------------------------------------------------------------------------------------------------- run
def require_ray() -> None:
    """Raises: InputError: Ray Data is not installed (the message says how to install it)."""
    try:
        import ray  # noqa: F401
    except ImportError as e:
        raise InputError(
            "imagereward bulk needs Ray Data: pip install 'imagereward[bulk]' (or pip install 'ray[data]')"
        ) from e


def init_ray(cpus: int | None = None) -> None:
    """Connects to the cluster `RAY_ADDRESS` names, else starts Ray here with its temp folder in the working
    folder (`.ray/`, or the system's when that path is too long for Ray's sockets)."""
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False)
        return
    temp = Path.cwd() / ".ray"
    if len(str(temp)) > 60:  # Ray's unix sockets live under it (path limit 107 with its own suffixes)
        temp = Path(tempfile.gettempdir()) / f"ray-{os.getuid()}"
    ray.init(
        num_cpus=cpus or os.cpu_count() or 1,
        _temp_dir=str(temp),
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )


def bulk_score(
    inputs: Sequence[str | Path],
    output: str | Path,
    prompt: str | None = None,
    model: str | None = None,
    judges: Sequence[str] = (),
    device: str | None = None,
    dtype: str | None = None,
    batch_size: int | None = None,
    actors: int | None = None,
    download_root: str | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> BulkSummary:
    """Scores every row of `inputs` into the Parquet dataset `output` (see the module doc), skipping ids it
    already holds.

    Args:
        model: ImageReward's weights (a registry name or a path; default the published ones).
        judges: the judges, by name; the first gives `score`; default ImageReward (`model`) alone.
        device: where actors run: default one actor per GPU when the cluster has GPUs, else the CPU.
        batch_size: images per model call (default 256 on GPU, 32 on CPU).
        actors: model actors (default: the GPUs, or 1 on the CPU).
        stop_after: stop after this many batches were written (for tests of resuming).
        on_batch: called as `on_batch(batches, rows)` after each batch is written (progress, benchmarks).
    """
    import ray

    from ..judges import primary, spec

    start = time.perf_counter()
    output = Path(output)
    model = model or primary().name
    try:
        judges = list(dict.fromkeys(spec(name).name for name in judges or [primary().name]))
    except ValueError as e:
        raise InputError(str(e)) from None
    rows = read_rows(inputs, prompt)
    done = written_ids(output)
    todo = [r for r in rows if r["id"] not in done]
    if not todo:
        return BulkSummary(0, 0, len(rows) - len(todo), time.perf_counter() - start)
    init_ray()
    gpus = int(ray.cluster_resources().get("GPU", 0))
    on_gpu = device != "cpu" and gpus > 0 and (device is None or device.startswith("cuda"))
    cpus = int(ray.cluster_resources().get("CPU", 1))
    n_actors = actors or (gpus if on_gpu else 1)
    size = batch_size or (256 if on_gpu else 32)
    actor_cpus = GPU_ACTOR_CPUS if on_gpu else max(1, cpus // 2)  # on the CPU half: no deadlock on 2 cores
    ray.data.DataContext.get_current().enable_progress_bars = progress
    ds = rows_dataset(todo, readers=max(2, cpus // 8))
    # Decoding in CPU tasks of their own (the memory hint keeps Ray from fusing them into the model actors).
    preprocessings = list(dict.fromkeys(str(spec(name).preprocessing) for name in judges))
    ds = ds.map_batches(
        decode_batch,
        fn_kwargs={"preprocessings": preprocessings},
        batch_size=DECODE_BATCH,
        num_cpus=1,
        memory=DECODE_MEMORY,
        batch_format="numpy",
    )
    ds = ds.map_batches(
        ScoreActor,
        fn_constructor_args=(judges, model, "cuda" if on_gpu else "cpu", dtype, download_root),
        batch_size=size,
        compute=ray.data.ActorPoolStrategy(size=n_actors),
        num_gpus=1 if on_gpu else 0,
        num_cpus=actor_cpus,
        batch_format="numpy",
    )
    writer = PartWriter(output)
    written = errors = batches = 0
    try:
        for batch in ds.iter_batches(batch_size=size, batch_format="numpy"):
            writer.add(batch)
            written += len(batch["id"])
            errors += sum(isinstance(e, str) for e in batch["error"])
            batches += 1
            if on_batch is not None:
                on_batch(batches, written)
            if stop_after is not None and batches >= stop_after:
                break
    finally:
        writer.close()
    summary = BulkSummary(written, errors, len(rows) - len(todo), time.perf_counter() - start)
    if progress:
        print(f"imagereward bulk: {summary.line()}", file=sys.stderr)
    return summary


def read_output(output: str | Path) -> list[dict[str, Any]]:
    """Every row of an output dataset (all its complete part files)."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for part in sorted(Path(output).glob("part-*.parquet")):
        rows += pq.read_table(part).to_pylist()
    return rows


__all__ = ["BulkSummary", "bulk_score", "read_output", "read_rows", "written_ids"]
