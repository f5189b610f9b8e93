"""Decoding images in worker processes, for jobs where decoding threads hit the GIL.

The exact preprocessing (`images.load_pixels`: Pillow decode, bicubic resize, crop) spends part of its time
holding the GIL, so decoding threads stop scaling at a few hundred images a second, well below what a GPU
scores. Worker processes (one torch thread each) decode in parallel for real: each takes a small task of
files and sends back uint8 pixels and their content keys. Tasks are kept in flight a bounded number at a time,
so memory stays flat however many files a job has.

Workers start from a fork server that has imported this package once, so starting them costs a fork each, and
they never touch the parent's CUDA context.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from typing import Iterator, Sequence

import numpy as np
import torch

from .cache import content_key
from .errors import ImageLoadError
from .images import load_pixels

# Images per task sent to a worker, at most: large enough that the pickling round trip is small beside
# decoding (a 512 px image takes ~10 ms), small enough that the first batch arrives soon. A small job is
# spread over all workers (down to one image a task).
TASK_IMAGES = 8

TaskResult = list[tuple[np.ndarray, bytes] | ImageLoadError]


def _init_worker() -> None:
    torch.set_num_threads(1)


def _decode_task(task: tuple[list[str], list[str], int]) -> TaskResult:
    """In a worker: decodes a few files to uint8 pixels (3, size, size) and content keys, or errors."""
    paths, names, size = task
    out: TaskResult = []
    for path, name in zip(paths, names):
        try:
            pixels = load_pixels(path, name, size)
        except ImageLoadError as e:
            out.append(e)
            continue
        out.append((pixels.numpy(), content_key(pixels)))
    return out


class ProcessDecoder:
    """A pool of decoding processes.

    Args:
        processes: how many workers (default: the cores, at most 32).
    """

    def __init__(self, processes: int | None = None) -> None:
        self.processes = processes or min(32, os.cpu_count() or 1)
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        self._pool = context.Pool(self.processes, initializer=_init_worker)

    def decoded_batches(
        self, paths: Sequence[str], names: Sequence[str], size: int, batch_size: int, reuse_buffers: bool = False
    ) -> Iterator[list[tuple[torch.Tensor, bytes] | ImageLoadError]]:
        """Decoded images in input order, `batch_size` at a time, with about four tasks per worker in flight.

        The pixels of a batch are consecutive rows of one (page-locked, where CUDA is available) block, so
        that the batch goes to the GPU without another copy. With `reuse_buffers`, two blocks are used in
        turn: a batch's pixels are valid until the next-but-one batch is asked for (for a consumer that
        scores each batch before asking for more); without it every batch gets a block of its own."""
        pin = torch.cuda.is_available()

        def new_block() -> torch.Tensor:
            return torch.empty((batch_size, 3, size, size), dtype=torch.uint8, pin_memory=pin)

        blocks = [new_block(), new_block()] if reuse_buffers else []
        per_task = max(1, min(TASK_IMAGES, -(-len(paths) // self.processes)))
        tasks = [
            (list(paths[i : i + per_task]), list(names[i : i + per_task]), size) for i in range(0, len(paths), per_task)
        ]
        in_flight: deque = deque()
        next_task = 0
        batch: list[tuple[torch.Tensor, bytes] | ImageLoadError] = []
        batches = 0
        block = blocks[0] if reuse_buffers else new_block()
        rows = block.numpy()  # filled with numpy: one plain copy per image, no torch thread pool involved
        while next_task < len(tasks) or in_flight:
            while next_task < len(tasks) and len(in_flight) < 4 * self.processes:
                in_flight.append(self._pool.apply_async(_decode_task, (tasks[next_task],)))
                next_task += 1
            for item in in_flight.popleft().get():
                if isinstance(item, ImageLoadError):
                    batch.append(item)
                else:
                    row = len(batch)
                    rows[row] = item[0]
                    batch.append((block[row], item[1]))
                if len(batch) == batch_size:
                    yield batch
                    batch, batches = [], batches + 1
                    block = blocks[batches % 2] if reuse_buffers else new_block()
                    rows = block.numpy()
        if batch:
            yield batch

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()
