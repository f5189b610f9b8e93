"""An opt-in fast path past the CPU, and APPROXIMATE: JPEG files decoded on the GPU (nvJPEG, through
`torchvision.io.decode_jpeg`) and resized there (`F.interpolate`, bicubic with antialiasing), instead of
Pillow's decoder and resize on the CPU.

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
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

from . import images as imgs
from .errors import ImageError, ImageLoadError
from .reward import ImageReward
from .scorer import Result, Scored, check_batch_size
from .tokenizer import PromptTokens

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


@torch.inference_mode()
def approximate_results(
    model: ImageReward,
    prompt: str | PromptTokens,
    paths: Sequence[PathInput],
    names: Sequence[str] | None = None,
    batch_size: int | None = None,
    read_threads: int = 16,
) -> list[Result]:
    """Rewards of image files with JPEGs decoded and resized on the GPU (approximate; see the module doc).

    While the model scores one batch, the next is read by `read_threads` threads and decoded on a second
    CUDA stream.

    Args:
        model: an ImageReward model on CUDA (on the CPU this runs torchvision's CPU decoder instead, which is
            only useful for testing).
        prompt: the prompt (or its tokens).
        paths: image files.
        names: how to name them in errors (default: the paths).
        batch_size: images per forward pass (default `model.batch_size`).
        read_threads: threads reading files and their headers ahead of the GPU.

    Returns:
        `Scored` or `ImageError` per file, in order.
    """
    tokens = model.prompt_tokens(prompt)
    names = list(names) if names is not None else [os.fspath(p) for p in paths]
    size = check_batch_size(batch_size or model.batch_size)
    device = model.device
    stream = torch.cuda.Stream(device) if device.type == "cuda" else None
    out: list[Result | None] = [None] * len(paths)
    exact: list[int] = []
    starts = list(range(0, len(paths), size))
    with (
        ThreadPoolExecutor(read_threads, thread_name_prefix="imagereward-read") as readers,
        ThreadPoolExecutor(1, thread_name_prefix="imagereward-gpu-decode") as preparer,
    ):

        def submit(start: int):  # type: ignore[no-untyped-def]
            end = start + size
            return preparer.submit(
                _prepare,
                start,
                paths[start:end],
                names[start:end],
                model.config.vision.image_size,
                device,
                readers,
                stream,
            )

        pending = [submit(s) for s in starts[:1]]
        for k in range(len(starts)):
            if k + 1 < len(starts):
                pending.append(submit(starts[k + 1]))
            batch = pending.pop(0).result()
            for i, error in batch.errors.items():
                out[batch.start + i] = error
            exact.extend(batch.start + i for i in batch.exact)
            if batch.pixels is None:
                continue
            if batch.ready is not None:
                torch.cuda.current_stream(device).wait_event(batch.ready)
                batch.pixels.record_stream(torch.cuda.current_stream(device))
            embeds = model.encode_images(imgs.normalize(batch.pixels).to(model.dtype))
            rewards = model.score_embeddings(embeds, tokens.input_ids, tokens.attention_mask).tolist()
            for i, reward in zip(batch.rows, rewards):
                if math.isfinite(reward):
                    out[batch.start + i] = Scored(reward, model.dtype)
                else:  # half precision overflowed: the exact path rescores it in float32
                    exact.append(batch.start + i)
    if exact:
        for i, result in zip(exact, model.results(tokens, [paths[i] for i in exact], size, [names[i] for i in exact])):
            out[i] = result
    return out  # type: ignore[return-value]
