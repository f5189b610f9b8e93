"""Decoding images in worker processes, for jobs where decoding threads hit the GIL.

The exact preprocessing (`Preprocessing.load`: Pillow decode, resize, crop or pad) spends part of its time
holding the GIL, so decoding threads stop scaling at a few hundred images a second, well below what a GPU
scores. Worker processes (one torch thread each) decode in parallel for real.

Pixels never travel through a pipe: each worker writes an image's pixels straight into its row of a
shared-memory ring of batches and sends back only the content key (or the error). The parent hands a batch
on as consecutive rows of one block, which goes to the GPU without another copy. Tasks are submitted at most
two batches ahead of the one being consumed, so memory stays flat however many files a job has.

Workers are forked (as PyTorch's DataLoader forks its workers on Linux): they start at once, re-run nothing of
the caller's script, and never touch the parent's CUDA context (they only run Pillow, NumPy and hashing).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from multiprocessing import resource_tracker, shared_memory
from typing import Iterator, Sequence

import numpy as np
import torch

from .cache import content_key
from .errors import ImageLoadError
from .preprocessing import Preprocessing

# Images per task sent to a worker, at most: enough that a task's round trip is small beside decoding (a
# 512 px image takes ~10 ms), few enough that a batch fills evenly. A small job is spread over all workers
# (down to one image a task).
TASK_IMAGES = 8
# Batches in the shared ring: the one being scored, and up to two being decoded ahead of it.
RING_BATCHES = 3

_ATTACHED: dict[str, shared_memory.SharedMemory] = {}


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
