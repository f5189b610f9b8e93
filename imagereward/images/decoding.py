"""Decoding inputs into the pixels the judges read: each distinct file once, ahead of the consumer, in
threads or in worker processes; results by index.

`Decoder` is the one place this happens, for every judge and every front end: a judge's own batched scoring
(`Judge.results`: batches decoded ahead of the model), a page request (every preprocessing its judges need,
each file opened once for all of them), the command line with several judges, bulk scoring's tasks. A file
given several times is decoded once; its repeats get its result (an error renamed to the repeat's name).

The exact preprocessing (`Preprocessing.load`: Pillow decode, resize, crop or pad) spends part of its time
holding the GIL, so decoding threads stop scaling at a few hundred images a second, well below what a GPU
scores. For long jobs of files on CUDA, worker processes (one torch thread each) decode in parallel for real
(`ProcessDecoder`). Pixels never travel through a pipe: each worker writes an image's pixels straight into its
row of a shared-memory ring of batches and sends back only the content key (or the error). The parent hands a
batch on as consecutive rows of one block (`as_batch` takes them without a copy). Tasks are submitted at most
two batches ahead of the one being consumed, so memory stays flat however many files a job has.

Workers are forked (as PyTorch's DataLoader forks its workers on Linux): they start at once, re-run nothing of
the caller's script, and never touch the parent's CUDA context (they only run Pillow, NumPy and hashing).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing import resource_tracker, shared_memory
from typing import Hashable, Iterator, NamedTuple, Sequence

import numpy as np
import torch

from ..errors import ImageError, ImageLoadError
from . import reading as imgs
from .reading import ImageInput
from .transforms import Preprocessing

# Batches decoded ahead of the one the consumer is working on (threads).
PREFETCH_BATCHES = 2

# Images per task sent to a worker, at most: enough that a task's round trip is small beside decoding (a
# 512 px image takes ~10 ms), few enough that a batch fills evenly. A small job is spread over all workers
# (down to one image a task).
TASK_IMAGES = 8
# Batches in the shared ring: the one being scored, and up to two being decoded ahead of it.
RING_BATCHES = 3

_ATTACHED: dict[str, shared_memory.SharedMemory] = {}


class Decoded(NamedTuple):
    """One decoded input: pixels (3, S, S) as a `Preprocessing` makes them (uint8, or float32 for the letterbox)
    and their `content_key`."""

    pixels: torch.Tensor
    key: bytes


Decoding = Decoded | ImageLoadError


def content_key(pixels: torch.Tensor) -> bytes:
    """A digest of preprocessed pixels: the same picture gives the same key whatever its file."""
    return hashlib.blake2b(pixels.contiguous().numpy().tobytes(), digest_size=16).digest()


def default_workers() -> int:
    """Threads for decoding images: the cores, at most 16."""
    return max(1, min(16, os.cpu_count() or 1))


def _identity(image: ImageInput) -> Hashable | None:
    """What makes two inputs the same file (its path), or None when only the object itself is known."""
    if isinstance(image, (str, os.PathLike)):
        return ("path", os.fspath(image))
    return None


def first_occurrences(images: Sequence[ImageInput]) -> tuple[list[int], dict[int, int]]:
    """The indices of the inputs to decode (each file once), and for every repeat the index of its first
    occurrence."""
    first: dict[Hashable, int] = {}
    unique, repeats = [], {}
    for i, image in enumerate(images):
        key = _identity(image)
        if key is None or first.setdefault(key, i) == i:
            unique.append(i)
        else:
            repeats[i] = first[key]
    return unique, repeats


def fill_repeats(out: list, repeats: dict[int, int], names: Sequence[str]) -> None:
    """Gives each repeated input the result of its first occurrence (an error renamed to the repeat)."""
    for i, first in repeats.items():
        earlier = out[first]
        out[i] = earlier.renamed(names[i]) if isinstance(earlier, ImageError) else earlier


def as_batch(pixels: Sequence[torch.Tensor]) -> torch.Tensor:
    """The pixels as one (N, ...) batch: a view when they are consecutive rows of one contiguous block (as
    `ProcessDecoder` hands them out), else a stacked copy."""
    first = pixels[0]
    block = first._base
    if block is not None and block.is_contiguous() and first.is_contiguous() and block.numel() % first.numel() == 0:
        step = first.numel()
        start = first.storage_offset() - block.storage_offset()
        consecutive = all(
            t._base is block and t.storage_offset() == first.storage_offset() + k * step for k, t in enumerate(pixels)
        )
        if start % step == 0 and consecutive:
            return block.view(-1, *first.shape)[start // step : start // step + len(pixels)]
    return torch.stack(list(pixels))


def _init_worker() -> None:
    torch.set_num_threads(1)


def _ring(name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """In a worker: the shared ring as an array, attached once per worker."""
    if name not in _ATTACHED:
        for old in list(_ATTACHED):  # a new job's ring: let go of the old one
            _ATTACHED.pop(old).close()
        # Forked workers share the parent's resource tracker, which already knows the name; the parent
        # unlinks it when the job ends.
        _ATTACHED[name] = shared_memory.SharedMemory(name=name)
    return np.ndarray(shape, dtype=dtype, buffer=_ATTACHED[name].buf)


def _decode_task(
    ring: str, shape: tuple[int, ...], preprocessing: Preprocessing, first_row: int, paths: list[str], names: list[str]
) -> list:
    """In a worker: decodes files into consecutive rows of the ring; returns each one's content key, or its
    error."""
    rows = _ring(ring, shape, _numpy_dtype(preprocessing))
    out: list[bytes | ImageLoadError] = []
    for k, (path, name) in enumerate(zip(paths, names)):
        try:
            pixels = preprocessing.load(path, name)
        except ImageLoadError as e:
            out.append(e)
            continue
        rows[first_row + k] = pixels.numpy()
        out.append(content_key(pixels))
    return out


def _numpy_dtype(preprocessing: Preprocessing) -> np.dtype:
    return np.dtype(np.float32) if preprocessing.dtype == torch.float32 else np.dtype(np.uint8)


def ring_fits(batch_size: int, preprocessing: Preprocessing) -> bool:
    """Whether the shared-memory ring for `batch_size` images fits in the free shared memory (`/dev/shm`,
    often small in containers: writing past it would kill a worker), with a quarter to spare."""
    size = preprocessing.size
    needed = RING_BATCHES * batch_size * 3 * size * size * _numpy_dtype(preprocessing).itemsize
    try:
        stats = os.statvfs("/dev/shm")
    except OSError:  # no /dev/shm to measure: shm_open manages its own
        return True
    return stats.f_bavail * stats.f_frsize >= needed * 1.25


class ProcessDecoder:
    """A pool of decoding processes.

    Args:
        processes: how many workers (default: the cores, at most 32).
    """

    def __init__(self, processes: int | None = None) -> None:
        self.processes = processes or min(32, os.cpu_count() or 1)
        resource_tracker.ensure_running()  # before the fork, so that the workers report to this one
        self._pool = multiprocessing.get_context("fork").Pool(self.processes, initializer=_init_worker)

    def decoded_batches(
        self,
        paths: Sequence[str],
        names: Sequence[str],
        preprocessing: Preprocessing,
        batch_size: int,
        reuse_buffers: bool = False,
    ) -> Iterator[list[tuple[torch.Tensor, bytes] | ImageLoadError]]:
        """Decoded images in input order, `batch_size` at a time: (pixels (3, size, size) as `preprocessing`
        makes them, content key), or the image's error.

        With `reuse_buffers` a batch's pixels are rows of the shared ring, valid until the consumer asks for
        the batch after next (for a consumer that scores each batch before asking for more); without it they
        are copied out."""
        batches = range(0, len(paths), batch_size)
        per_task = max(1, min(TASK_IMAGES, -(-min(batch_size, len(paths)) // self.processes)))
        size = preprocessing.size
        shape = (RING_BATCHES * batch_size, 3, size, size)
        dtype = _numpy_dtype(preprocessing)
        memory = shared_memory.SharedMemory(create=True, size=int(np.prod(shape)) * dtype.itemsize)
        try:
            block = torch.frombuffer(memory.buf, dtype=preprocessing.dtype).view(shape)
            submitted: deque[list] = deque()

            def submit(k: int) -> None:
                start, stop = batches[k], min(batches[k] + batch_size, len(paths))
                base = (k % RING_BATCHES) * batch_size
                submitted.append(
                    [
                        self._pool.apply_async(
                            _decode_task,
                            (
                                memory.name,
                                shape,
                                preprocessing,
                                base + i - start,
                                list(paths[i : i + per_task]),
                                list(names[i : i + per_task]),
                            ),
                        )
                        for i in range(start, stop, per_task)
                    ]
                )

            for k in range(min(RING_BATCHES - 1, len(batches))):
                submit(k)
            for k in range(len(batches)):
                if k + RING_BATCHES - 1 < len(batches):
                    submit(k + RING_BATCHES - 1)  # the ring slot the batch before this one used is free again
                base = (k % RING_BATCHES) * batch_size
                results = [item for task in submitted.popleft() for item in task.get()]
                batch: list[tuple[torch.Tensor, bytes] | ImageLoadError] = []
                for row, item in enumerate(results):
                    if isinstance(item, ImageLoadError):
                        batch.append(item)
                    else:
                        pixels = block[base + row]
                        batch.append((pixels if reuse_buffers else pixels.clone(), item))
                yield batch
        finally:
            try:
                memory.close()
            except BufferError:  # rows still referenced by the consumer: the mapping lives on with them
                pass
            memory.unlink()

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()


class Decoder:
    """Decodes inputs for the judges: each distinct file once, in worker threads (or processes), ahead of the
    consumer, results by index. Owns its thread pool and process pool; `close()` (or a `with` block) shuts
    them down.

    Args:
        threads: decoding threads (default `default_workers()`).
    """

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or default_workers()
        self._pool: ThreadPoolExecutor | None = None
        self._processes: ProcessDecoder | None = None

    def __enter__(self) -> Decoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Shuts the threads and worker processes down (they start again on next use)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._processes is not None:
            self._processes.close()
            self._processes = None

    @property
    def running(self) -> dict[str, int]:
        """What runs now: {"threads": pools, "processes": worker processes} (0 and 0 once closed)."""
        return {
            "threads": int(self._pool is not None),
            "processes": self._processes.processes if self._processes is not None else 0,
        }

    def decode(
        self, images: Sequence[ImageInput], names: Sequence[str], preprocessings: Sequence[Preprocessing]
    ) -> dict[Preprocessing, list[Decoding]]:
        """Every input as each of `preprocessings` makes it, in input order: each distinct file opened and
        decoded once for all of them (a file that cannot be read is the same error for each)."""
        kinds = list(dict.fromkeys(preprocessings))
        unique, repeats = first_occurrences(images)
        out: dict[Preprocessing, list] = {p: [None] * len(images) for p in kinds}
        pool = self._thread_pool()
        futures = [pool.submit(_load, images[i], names[i], kinds) for i in unique]
        for i, future in zip(unique, futures):
            for p, item in zip(kinds, future.result()):
                out[p][i] = item
        for items in out.values():
            fill_repeats(items, repeats, names)
        return out

    def batches(
        self,
        images: Sequence[ImageInput],
        names: Sequence[str],
        preprocessing: Preprocessing,
        batch_size: int,
        processes: int = 0,
        reuse_buffers: bool = False,
    ) -> Iterator[tuple[list[int], list[Decoding]]]:
        """The distinct inputs decoded, `batch_size` at a time, ahead of the consumer: (their indices in
        `images`, their pixels or errors). Repeats are left to the consumer (`first_occurrences`).

        Args:
            processes: worker processes for a job of files (0: threads); a job that is not all paths, or whose
                ring of batches does not fit in shared memory, decodes in threads.
            reuse_buffers: with processes, a batch's pixels are rows of the shared ring, valid until the
                consumer asks for the batch after next (for a consumer that scores each batch before asking
                for more); without it they are copied out.
        """
        unique, _ = first_occurrences(images)
        todo, todo_names = [images[i] for i in unique], [names[i] for i in unique]
        starts = range(0, len(todo), batch_size)
        paths = all(isinstance(image, (str, os.PathLike)) for image in todo)
        if processes and len(todo) >= 2 and paths and ring_fits(min(batch_size, len(todo)), preprocessing):
            if self._processes is None or self._processes.processes != processes:
                if self._processes is not None:
                    self._processes.close()
                self._processes = ProcessDecoder(processes)
            files = [os.fspath(image) for image in todo]  # type: ignore[arg-type]
            decoded = self._processes.decoded_batches(
                files, todo_names, preprocessing, batch_size, reuse_buffers=reuse_buffers
            )
            for start, batch in zip(starts, decoded):
                items = [item if isinstance(item, ImageLoadError) else Decoded(*item) for item in batch]
                yield unique[start : start + len(items)], items
            return
        pool = self._thread_pool()
        pending: list[tuple[int, list[Future]]] = []
        for k in range(len(starts) + PREFETCH_BATCHES):
            if k < len(starts):
                stop = min(starts[k] + batch_size, len(todo))
                futures = [pool.submit(_load, todo[i], todo_names[i], [preprocessing]) for i in range(starts[k], stop)]
                pending.append((starts[k], futures))
            if k >= PREFETCH_BATCHES and pending:
                start, futures = pending.pop(0)
                yield unique[start : start + len(futures)], [f.result()[0] for f in futures]

    def _thread_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="imagereward-decode")
        return self._pool


def _load(image: ImageInput, name: str, kinds: Sequence[Preprocessing]) -> list[Decoding]:
    """In a thread: one input as each of `kinds` makes it (opened once), or its error for each."""
    try:
        if len(kinds) == 1:
            pixels = [kinds[0].load(image, name)]
        else:
            opened = imgs.open_image(image, name, lambda w, h, n: [k.check_size(w, h, n) for k in kinds])
            try:
                pixels = [kind.apply(opened, name) for kind in kinds]
            finally:
                if opened is not image:  # a PIL image the caller passed stays open
                    opened.close()
    except ImageLoadError as e:
        return [e] * len(kinds)
    return [Decoded(p, content_key(p)) for p in pixels]
