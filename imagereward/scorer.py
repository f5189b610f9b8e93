"""What every judge shares: inputs -> decoded pixels (in parallel, each file once) -> per-image features
(cached by content) -> batches -> one number per image.

A judge (ImageReward, CLIP, BLIP, Aesthetic) is an `nn.Module` that mixes in `BatchedScorer` and says only
what differs: how it reads a prompt (`tokenize`), how decoded pixels become features (`features_from_pixels`)
and how features and a prompt become scores (`scores_from_features`). Judges whose `preprocessing` is the same
can score the same `Decoded` pixels, so that a request decodes its files once for all of them.

Scoring comes in two halves that can run in different places (the app decodes on the CPU and scores on a
ZeroGPU worker): `decode` (inputs -> uint8 pixels or errors) and `score_decoded` (pixels -> scores).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Hashable, Iterator, NamedTuple, Sequence

import torch

from . import images as imgs
from .cache import EmbeddingCache, content_key
from .decoding import ProcessDecoder, ring_fits
from .errors import ImageError, ImageLoadError, NonFiniteRewardError
from .images import ImageInput
from .preprocessing import ORIGINAL_224, Preprocessing

DEFAULT_BATCH_SIZE = 32
DEFAULT_CACHE_SIZE = 256
# Batches decoded ahead of the one the model is working on (threads).
PREFETCH_BATCHES = 2
# A job of files this many batches long decodes in worker processes by default on CUDA.
PROCESS_DECODE_BATCHES = 4


class Decoded(NamedTuple):
    """One decoded input: pixels (3, S, S) as its judge's `preprocessing` makes them (uint8, or float32) and
    their `content_key`, both made in a worker thread."""

    pixels: torch.Tensor
    key: bytes


class Scored(NamedTuple):
    """One image's score and the precision that computed it (float32 when float16 overflowed on it)."""

    reward: float
    dtype: torch.dtype


Result = Scored | ImageError


def default_workers() -> int:
    """Threads for decoding images: the cores, at most 16."""
    return max(1, min(16, os.cpu_count() or 1))


class BatchedScorer:
    """Batching, parallel decoding and the embedding cache, for a judge that is also an `nn.Module`.

    Attributes:
        name: the judge's name or the path it was loaded from.
        batch_size: images per forward pass.
        embedding_cache: image features by content (`embedding_cache.resize(0)` disables it).
        decode_processes: worker processes for decoding files (`decoding.ProcessDecoder`): `None` (default)
            uses them on CUDA for jobs of at least `PROCESS_DECODE_BATCHES` batches of files, where decoding
            threads cannot keep up with the GPU; 0 never; N uses N workers for any job of two files or more.
            Other jobs decode in threads.
    """

    # How the judge's original prepares an image (the same for ImageReward, CLIP, BLIP and Aesthetic).
    preprocessing: Preprocessing = ORIGINAL_224
    non_finite_reason = "its score is not a finite number; the weights may hold inf or NaN"
    # What `tokenize` returns, accepted as it is where a prompt is expected (None: only strings).
    tokens_type: type | None = None

    def _init_batching(self, name: str, batch_size: int, cache_size: int) -> None:
        self.name = name
        self.batch_size = batch_size
        self.embedding_cache = EmbeddingCache(cache_size)
        self.decode_processes: int | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._process_decoder: ProcessDecoder | None = None

    # ------------------------------------------------------------------------------ what a judge says
    @property
    def device(self) -> torch.device:
        raise NotImplementedError

    @property
    def dtype(self) -> torch.dtype:
        raise NotImplementedError

    def tokenize(self, prompt: str) -> Any:
        """One prompt as the judge reads it."""
        raise NotImplementedError

    def features_from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, S, S) on the device -> one feature tensor per image (N, ...), what the cache keeps."""
        raise NotImplementedError

    def scores_from_features(self, tokens: Any, features: torch.Tensor) -> torch.Tensor:
        """Features (N, ...) and one tokenized prompt -> scores (N,) float32 on the CPU."""
        raise NotImplementedError

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        # Moving or casting the judge invalidates features made before.
        self.embedding_cache.clear()
        return super()._apply(fn, recurse)  # type: ignore[misc]

    # --------------------------------------------------------------------------------------- batching
    def prompt_tokens(self, prompt: Any) -> Any:
        """`prompt` tokenized (a string), or as it is when it is already this judge's tokens (`tokens_type`).

        Raises:
            TypeError: anything else (e.g. a list of prompts: one prompt at a time).
        """
        if self.tokens_type is not None and isinstance(prompt, self.tokens_type):
            return prompt
        if not isinstance(prompt, str):
            raise TypeError(f"score one prompt at a time: `prompt` must be a string, got {type(prompt).__name__}")
        return self.tokenize(prompt)

    def rewards(self, prompt: str, images: Sequence[ImageInput], batch_size: int | None = None) -> list[float]:
        """Scores of `images` for one prompt, in input order; the first image that fails raises."""
        results = self.try_rewards(prompt, images, batch_size)
        for result in results:
            if isinstance(result, ImageError):
                raise result
        return results  # type: ignore[return-value]

    def try_rewards(
        self,
        prompt: str,
        images: Sequence[ImageInput],
        batch_size: int | None = None,
        names: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[float | ImageError]:
        """Like `rewards`, but an image that cannot be read or scored gives its `ImageError` in its place and
        the others are still scored. `progress(n)` is called as images are done."""
        return [
            r.reward if isinstance(r, Scored) else r
            for r in self.results(prompt, images, batch_size=batch_size, names=names, progress=progress)
        ]

    def results(
        self,
        prompt: Any,
        images: Sequence[ImageInput],
        batch_size: int | None = None,
        names: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[Result]:
        """`Scored` (score and precision) or `ImageError` per input, in input order. Images are decoded in
        threads ahead of the model, and a file given several times is decoded and scored once."""
        tokens = self.prompt_tokens(prompt)
        names = list(names) if names is not None else [imgs.describe(image, i) for i, image in enumerate(images)]
        unique, first = _first_occurrences(images)
        out: list[Result | None] = [None] * len(images)
        done = 0
        chunks = self._decoded_chunks(
            [images[i] for i in unique], [names[i] for i in unique], batch_size, reuse_buffers=True
        )
        for chunk in chunks:
            chunk_names = [names[unique[done + j]] for j in range(len(chunk))]
            for result in self.score_decoded(tokens, chunk, chunk_names, batch_size=len(chunk)):
                out[unique[done]] = result
                done += 1
            if progress is not None:
                progress(len(chunk))
        _fill_repeats(out, images, names, first)
        if progress is not None and len(unique) < len(images):
            progress(len(images) - len(unique))
        return out  # type: ignore[return-value]

    def decode(self, images: Sequence[ImageInput], names: Sequence[str]) -> list[Decoded | ImageLoadError]:
        """Decodes and preprocesses every input in worker threads (the CPU half of scoring); a file given
        several times is decoded once."""
        unique, first = _first_occurrences(images)
        out: list[Decoded | ImageLoadError | None] = [None] * len(images)
        chunks = self._decoded_chunks([images[i] for i in unique], [names[i] for i in unique], len(unique) or 1)
        for i, item in zip(unique, (item for chunk in chunks for item in chunk)):
            out[i] = item
        _fill_repeats(out, images, names, first)
        return out  # type: ignore[return-value]

    def score_decoded(
        self,
        prompt: Any,
        decoded: Sequence[Decoded | ImageError],
        names: Sequence[str],
        batch_size: int | None = None,
    ) -> list[Result]:
        """Scores of decoded images (the device half of scoring); errors pass through in their place. A score
        that is not finite becomes a `NonFiniteRewardError` named from `names`."""
        tokens = self.prompt_tokens(prompt)
        size = check_batch_size(batch_size or self.batch_size)
        out: list[Result] = []
        for start in range(0, len(decoded), size):
            chunk = decoded[start : start + size]
            good = [d for d in chunk if isinstance(d, Decoded)]
            scores = iter(self._scored(tokens, good) if good else [])
            for d in chunk:
                out.append(next(scores) if isinstance(d, Decoded) else d)  # type: ignore[arg-type]
        return [
            NonFiniteRewardError(name, self.non_finite_reason)
            if isinstance(r, Scored) and not math.isfinite(r.reward)
            else r
            for r, name in zip(out, names, strict=True)
        ]

    def score_pairs(self, prompts: Sequence[str], decoded: Sequence[Decoded]) -> list[Scored]:
        """One score per (prompt, image) pair, prompts differing from pair to pair (bulk scoring of a dataset):
        one image-encoder pass for all the images, then the prompts' part per distinct prompt."""
        features = self.image_embeddings(decoded)
        out: list[Scored | None] = [None] * len(decoded)
        groups: dict[str, list[int]] = {}
        for k, prompt in enumerate(prompts):
            groups.setdefault(prompt, []).append(k)
        for prompt, rows in groups.items():
            scores = self.scores_from_features(self.prompt_tokens(prompt), features[rows]).tolist()
            for k, score in zip(rows, scores):
                out[k] = Scored(score, self.dtype)
        return out  # type: ignore[return-value]

    def _scored(self, tokens: Any, good: list[Decoded]) -> list[Scored]:
        scores = self.scores_from_features(tokens, self.image_embeddings(good)).tolist()
        return [Scored(s, self.dtype) for s in scores]

    @torch.inference_mode()
    def image_embeddings(self, pixels: Sequence[Decoded]) -> torch.Tensor:
        """Per-image features (N, ...) for decoded images, from the cache where possible."""
        found = {d.key: self.embedding_cache.get(d.key) for d in pixels}
        missing = {d.key: d.pixels for d in pixels if found[d.key] is None}  # the same picture once
        if missing:
            batch = _rows_of_one_block(list(missing.values()))  # decoding processes' shared rows: no copy
            if batch is None:
                batch = torch.stack(list(missing.values()))
                if self.device.type == "cuda":
                    batch = batch.pin_memory()
            batch = batch.to(self.device, non_blocking=True)
            embeds = self.features_from_pixels(batch)
            caching = self.embedding_cache.max_entries > 0
            for j, key in enumerate(missing):
                found[key] = embeds[j]
                if caching:  # a clone, so that one cached image does not keep its whole batch alive
                    self.embedding_cache.put(key, embeds[j].clone() if len(missing) > 1 else embeds[j])
        return torch.stack([found[d.key] for d in pixels])  # type: ignore[misc]

    def _decoded_chunks(
        self, images: Sequence[ImageInput], names: Sequence[str], batch_size: int | None, reuse_buffers: bool = False
    ) -> Iterator[list[Decoded | ImageLoadError]]:
        """Decodes images in worker processes (see `decode_processes`) or threads, ahead of the consumer,
        and yields them by batch. With `reuse_buffers` the consumer promises to be done with a batch's pixels
        before it asks for the next-but-one batch (see `ProcessDecoder.decoded_batches`)."""
        size = check_batch_size(batch_size or self.batch_size)
        processes = self._processes_for(images, size)
        if processes:
            if self._process_decoder is None or self._process_decoder.processes != processes:
                self._process_decoder = ProcessDecoder(processes)
            paths = [os.fspath(image) for image in images]  # type: ignore[arg-type]
            batches = self._process_decoder.decoded_batches(
                paths, names, self.preprocessing, size, reuse_buffers=reuse_buffers
            )
            for batch in batches:
                yield [item if isinstance(item, ImageLoadError) else Decoded(*item) for item in batch]
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(default_workers(), thread_name_prefix="imagereward-decode")
        starts = range(0, len(images), size)
        pending: list[list[Future]] = []
        for k in range(len(starts) + PREFETCH_BATCHES):
            if k < len(starts):
                stop = min(starts[k] + size, len(images))
                pending.append(
                    [self._pool.submit(self._safe_load, images[i], names[i]) for i in range(starts[k], stop)]
                )
            if k >= PREFETCH_BATCHES and pending:
                yield [f.result() for f in pending.pop(0)]

    def _processes_for(self, images: Sequence[ImageInput], batch_size: int) -> int:
        """How many decoding processes a job gets (0: threads)."""
        if self.decode_processes == 0 or len(images) < 2:
            return 0
        if not all(isinstance(image, (str, os.PathLike)) for image in images):
            return 0
        if not ring_fits(min(batch_size, len(images)), self.preprocessing):
            return 0
        if self.decode_processes is not None:
            return self.decode_processes
        cores = os.cpu_count() or 1
        auto = self.device.type == "cuda" and cores >= 4 and len(images) >= PROCESS_DECODE_BATCHES * batch_size
        return min(32, cores) if auto else 0

    def _safe_load(self, image: ImageInput, name: str) -> Decoded | ImageLoadError:
        try:
            pixels = self.preprocessing.load(image, name)
        except ImageLoadError as e:
            return e
        return Decoded(pixels, content_key(pixels))


def _identity(image: ImageInput) -> Hashable | None:
    """What makes two inputs the same file (its path), or None when only the object itself is known."""
    if isinstance(image, (str, os.PathLike)):
        return ("path", os.fspath(image))
    return None


def _rows_of_one_block(tensors: list[torch.Tensor]) -> torch.Tensor | None:
    """The tensors as one batch without a copy, when they are consecutive rows of one contiguous block (as
    `ProcessDecoder` hands them out); else None."""
    first = tensors[0]
    block = first._base
    if block is None or not block.is_contiguous() or not first.is_contiguous() or block.numel() % first.numel():
        return None
    step = first.numel()
    start = first.storage_offset() - block.storage_offset()
    if start % step or any(
        t._base is not block or t.storage_offset() != first.storage_offset() + k * step for k, t in enumerate(tensors)
    ):
        return None
    return block.view(-1, *first.shape)[start // step : start // step + len(tensors)]


def _first_occurrences(images: Sequence[ImageInput]) -> tuple[list[int], dict[Hashable, int]]:
    """Indices of the inputs to decode (each file once), and the first index of each file."""
    first: dict[Hashable, int] = {}
    unique = [i for i, image in enumerate(images) if (k := _identity(image)) is None or first.setdefault(k, i) == i]
    return unique, first


def _fill_repeats(out: list, images: Sequence[ImageInput], names: Sequence[str], first: dict[Hashable, int]) -> None:
    """Gives each repeated input the result of its first occurrence (errors renamed to the repeat)."""
    for i, image in enumerate(images):
        if out[i] is None:
            earlier = out[first[_identity(image)]]
            out[i] = earlier.renamed(names[i]) if isinstance(earlier, ImageError) else earlier


def check_batch_size(size: int) -> int:
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {size!r}")
    return size


def ranks_from_rewards(rewards: Sequence[float]) -> list[int]:
    """1-based rank of each reward, best first, as the original computes it (two `torch.sort`s)."""
    values = torch.tensor(list(rewards), dtype=torch.float32)
    _, order = torch.sort(values, dim=0, descending=True)
    _, ranks = torch.sort(order, dim=0)
    return (ranks + 1).tolist()
