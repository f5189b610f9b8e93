"""An opt-in fast path past the CPU, and APPROXIMATE: JPEG files decoded on the GPU (nvJPEG, through
`torchvision.io.decode_jpeg`) and resized there (`F.interpolate`, bicubic with antialiasing), instead of
Pillow's decoder and resize on the CPU. `gpu_batches` yields the decoded batches; the ImageReward judge's
`approximate_results` scores them.

The exact path (`ImageReward.rewards`) reproduces the original's Pillow preprocessing to the bit and is
limited by how fast the CPU cores decode. This one frees the CPU of decoding, but nvJPEG's IDCT and upsampling
and torch's bicubic kernel are not Pillow's: pixels differ by a few levels and rewards by a little (measured
in BENCHMARKS.md on the parity fixtures and on the benchmark's files). Use it to filter or rank large sets
quickly; use the exact path where the original's numbers matter.

Files that are not JPEG (or are CMYK JPEGs, which nvJPEG does not convert like Pillow) go through the exact
path in the same call; every file is still checked against the format allow-list and the pixel limit from its
header first.
"""

from __future__ import annotations

import contextlib
import io
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterator, NamedTuple, Sequence

import torch
import torch.nn.functional as F

from ..errors import ImageError, ImageLoadError
from . import reading as imgs

PathInput = str | os.PathLike


def _read(
    path: PathInput, name: str, image_size: int = 224
) -> tuple[torch.Tensor, tuple[int, int]] | ImageLoadError | None:
    """In a thread: the file's bytes and size if it is an RGB or grey JPEG under the pixel limit (and whose resize
    to `image_size` is within `images.MAX_RESIZE_FACTOR`); None for a file the exact path should take; the error
    of a file that cannot be read at all."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        reason = (
            "permission denied: this user may not read the file" if isinstance(e, PermissionError) else "file not found"
        )
        return ImageLoadError(name, reason if not isinstance(e, IsADirectoryError) else "not a file")
    try:
        with imgs.open_header(io.BytesIO(data), name) as header:
            imgs.check_resize_crop(header.width, header.height, name, image_size)
            if header.format != "JPEG" or header.mode not in ("RGB", "L"):
                return None
            size = header.size
    except ImageLoadError as e:
        return e
    return torch.frombuffer(bytearray(data), dtype=torch.uint8), size


def _resize_crop(batch: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, H, W) uint8 of one size -> (N, 3, size, size) uint8: the original's resize (short side to
    `size`, long side truncated) and centre crop, with torch's antialiased bicubic."""
    height, width = batch.shape[-2:]
    new_w, new_h = imgs.resized_size(width, height, size)
    x = batch.float()
    if (new_h, new_w) != (height, width):
        x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", antialias=True, align_corners=False)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    x = x[..., top : top + size, left : left + size]
    return x.round_().clamp_(0, 255).to(torch.uint8)


def _decode_on_gpu(datas: list[torch.Tensor], device: torch.device) -> list[torch.Tensor | None]:
    """nvJPEG decode of a batch; a file it cannot decode gives None (the exact path then names the problem)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    if not datas:
        return []
    try:
        return list(decode_jpeg(datas, mode=ImageReadMode.RGB, device=device))
    except RuntimeError:
        out: list[torch.Tensor | None] = []
        for data in datas:
            try:
                out.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                out.append(None)
        return out


class _Prepared(NamedTuple):
    """One batch made ready on a side stream: pixels (n, 3, size, size) on the device for the files at
    `rows`, the files' errors, the files for the exact path, and the event that marks the pixels ready."""

    start: int
    rows: list[int]
    pixels: torch.Tensor | None
    errors: dict[int, ImageError]
    exact: list[int]
    ready: torch.cuda.Event | None


def _prepare(
    start: int,
    paths: Sequence[PathInput],
    names: Sequence[str],
    image_size: int,
    device: torch.device,
    readers: ThreadPoolExecutor,
    stream: torch.cuda.Stream | None,
) -> _Prepared:
    """Reads one batch of files (in the reader threads) and decodes and resizes its JPEGs on `stream`."""
    read = list(readers.map(_read, paths, names, [image_size] * len(paths)))
    errors = {i: r for i, r in enumerate(read) if isinstance(r, ImageError)}
    exact = [i for i, r in enumerate(read) if r is None]
    jpegs = [i for i, r in enumerate(read) if isinstance(r, tuple)]
    with torch.inference_mode(), torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
        decoded = _decode_on_gpu([read[i][0] for i in jpegs], device)  # type: ignore[index]
        by_size: dict[tuple[int, ...], list[tuple[int, torch.Tensor]]] = {}
        for i, image in zip(jpegs, decoded):
            if image is None:
                exact.append(i)
            else:
                by_size.setdefault(tuple(image.shape), []).append((i, image))
        rows: list[int] = []
        parts = []
        for group in by_size.values():
            rows.extend(i for i, _ in group)
            parts.append(_resize_crop(torch.stack([image for _, image in group]), image_size))
        pixels = torch.cat(parts) if parts else None
        ready = None
        if stream is not None:
            ready = torch.cuda.Event()
            ready.record(stream)
    return _Prepared(start, rows, pixels, errors, exact, ready)


def gpu_batches(
    paths: Sequence[PathInput],
    names: Sequence[str],
    image_size: int,
    batch_size: int,
    device: torch.device,
    read_threads: int = 16,
) -> Iterator[_Prepared]:
    """The files in batches of `batch_size`, JPEGs decoded and resized on `device`: while the consumer works on
    one batch, the next is read by `read_threads` threads and decoded on a second CUDA stream. Each batch's
    pixels are ready on the current stream when it is yielded; its `exact` files are for the exact path."""
    stream = torch.cuda.Stream(device) if device.type == "cuda" else None
    starts = list(range(0, len(paths), batch_size))
    with (
        ThreadPoolExecutor(read_threads, thread_name_prefix="imagereward-read") as readers,
        ThreadPoolExecutor(1, thread_name_prefix="imagereward-gpu-decode") as preparer,
    ):

        def submit(start: int) -> Future[_Prepared]:
            end = start + batch_size
            return preparer.submit(
                _prepare, start, paths[start:end], names[start:end], image_size, device, readers, stream
            )

        pending = [submit(s) for s in starts[:1]]
        for k in range(len(starts)):
            if k + 1 < len(starts):
                pending.append(submit(starts[k + 1]))
            batch = pending.pop(0).result()
            if batch.pixels is not None and batch.ready is not None:
                torch.cuda.current_stream(device).wait_event(batch.ready)
                batch.pixels.record_stream(torch.cuda.current_stream(device))
            yield batch
