"""`ImageReward`: the network plus the original's scoring API (`score`, `inference_rank`, `preprocess`),
batched: one image-encoder pass per batch, images decoded in parallel threads ahead of the model, the same
file decoded once per call, and image embeddings cached by content.

Scoring comes in two halves that can run in different places (the app decodes on the CPU and scores on a
ZeroGPU worker): `decode` (inputs -> uint8 pixels or errors) and `score_decoded` (pixels -> rewards).
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Hashable, Iterator, NamedTuple, Sequence

import torch
from PIL import Image

from . import images as imgs
from .cache import EmbeddingCache, content_key
from .config import ModelConfig
from .decoding import ProcessDecoder, ring_fits
from .errors import ImageError, ImageLoadError, NonFiniteRewardError
from .graphs import SmallBatchGraphs
from .images import ImageInput
from .model import ImageRewardModel
from .tokenizer import PromptTokens, encode_prompt

DEFAULT_BATCH_SIZE = 32
DEFAULT_CACHE_SIZE = 256
# Batches decoded ahead of the one the model is working on (threads).
PREFETCH_BATCHES = 2
# A job of files this many batches long decodes in worker processes by default on CUDA.
PROCESS_DECODE_BATCHES = 4


class Decoded(NamedTuple):
    """One decoded input: uint8 pixels (3, 224, 224) and their `content_key`, both made in a worker thread."""

    pixels: torch.Tensor
    key: bytes


class Scored(NamedTuple):
    """One image's reward and the precision that computed it (float32 when float16 overflowed on it)."""

    reward: float
    dtype: torch.dtype


Result = Scored | ImageError


def default_workers() -> int:
    """Threads for decoding images: the cores, at most 16."""
    return max(1, min(16, os.cpu_count() or 1))


def _identity(image: ImageInput) -> Hashable | None:
    """What makes two inputs the same file (its path), or None when only the object itself is known."""
    if isinstance(image, (str, os.PathLike)):
        return ("path", os.fspath(image))
    return None


class ImageReward(ImageRewardModel):
    """ImageReward with the original package's API. Build it with `imagereward.load`.

    Attributes:
        name: the model name or path it was loaded from.
        batch_size: images per forward pass.
        embedding_cache: image embeddings by content (`embedding_cache.resize(0)` disables it).
        decode_processes: worker processes for decoding files (`decoding.ProcessDecoder`): `None` (default)
            uses them on CUDA for jobs of at least `PROCESS_DECODE_BATCHES` batches of files, where decoding
            threads cannot keep up with the GPU; 0 never; N uses N workers for any job of two files or more
            (a server that keeps them warm decodes a small request faster than threads do). Other jobs
            decode in threads.
        cuda_graphs: replay small batches (up to 32 images) from CUDA graphs (`graphs.SmallBatchGraphs`):
            `None` (default) on CUDA, False never.
    """

    def __init__(
        self,
        config: ModelConfig,
        name: str = "",
        batch_size: int = DEFAULT_BATCH_SIZE,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        super().__init__(config)
        self.name = name
        self.batch_size = batch_size
        self.embedding_cache = EmbeddingCache(cache_size)
        self.decode_processes: int | None = None
        self.cuda_graphs: bool | None = None
        self._graphs: SmallBatchGraphs | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._process_decoder: ProcessDecoder | None = None
        self._float32_twin: ImageRewardModel | None = None

    # ----------------------------------------------------------------------------------------- state
    @property
    def device(self) -> torch.device:
        return self.visual_encoder.cls_token.device

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype of the encoders (the head always runs in float32)."""
        return self.visual_encoder.cls_token.dtype

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        # Moving or casting the model invalidates embeddings (and the float32 copy) made before.
        self.embedding_cache.clear()
        self._float32_twin = None
        self._graphs = None
        return super()._apply(fn, recurse)

    # ----------------------------------------------------------------------------------- the original API
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The original's `model.preprocess(pil_image)`: float32 (3, 224, 224) on the CPU."""
        return imgs.preprocess(image, self.config.vision.image_size)

    def score(self, prompt: str, image: ImageInput | Sequence[ImageInput]) -> float | list[float]:
        """Reward of one image (a float) or of a list of images (a list of floats, also for one image).

        Raises:
            ImageError: an input could not be read or scored (its name and the reason are in the message).
        """
        if isinstance(image, (list, tuple)):
            return self.rewards(prompt, image)
        return self.rewards(prompt, [image])[0]

    def inference_rank(self, prompt: str, generations_list: Sequence[ImageInput]) -> tuple[list[int], list[float]]:
        """Ranks images as the original does: `(ranking, rewards)`, ranking[i] the 1-based rank of image i."""
        rewards = self.rewards(prompt, generations_list)
        return ranks_from_rewards(rewards), rewards

    # --------------------------------------------------------------------------------------- batching
    def rewards(self, prompt: str, images: Sequence[ImageInput], batch_size: int | None = None) -> list[float]:
        """Rewards of `images` for one prompt, in input order; the first image that fails raises."""
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
        prompt: str | PromptTokens,
        images: Sequence[ImageInput],
        batch_size: int | None = None,
        names: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[Result]:
        """`Scored` (reward and precision) or `ImageError` per input, in input order. Images are decoded in
        threads ahead of the model, and a file given several times is decoded and scored once."""
        tokens = _tokens(prompt)
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
        prompt: str | PromptTokens,
        decoded: Sequence[Decoded | ImageError],
        names: Sequence[str],
        batch_size: int | None = None,
    ) -> list[Result]:
        """Rewards of decoded images (the device half of scoring); errors pass through in their place.

        A reward that is not finite in float16 (half precision overflowed) is computed again in float32;
        one that is not finite even then becomes a `NonFiniteRewardError` named from `names`."""
        tokens = _tokens(prompt)
        size = _check_batch_size(batch_size or self.batch_size)
        out: list[Result] = []
        for start in range(0, len(decoded), size):
            chunk = decoded[start : start + size]
            good = [d for d in chunk if isinstance(d, Decoded)]
            rewards = iter(self._scored(tokens, good) if good else [])
            out.extend(next(rewards) if isinstance(d, Decoded) else d for d in chunk)
        return [
            NonFiniteRewardError(
                name, "its reward is not a finite number even in float32; the weights may hold inf or NaN"
            )
            if isinstance(r, Scored) and not math.isfinite(r.reward)
            else r
            for r, name in zip(out, names, strict=True)
        ]

    def _scored(self, tokens: PromptTokens, good: list[Decoded]) -> list[Scored]:
        rewards = self.rewards_from_pixels(tokens.as_dict(), good).tolist()
        scored = [Scored(r, self.dtype) for r in rewards]
        overflowed = [i for i, r in enumerate(rewards) if not math.isfinite(r)]
        if overflowed and self.dtype == torch.float16:
            again = self._rescore_float32(tokens, [good[i] for i in overflowed]).tolist()
            for i, r in zip(overflowed, again):
                scored[i] = Scored(r, torch.float32)
        return scored

    @torch.inference_mode()
    def rewards_from_pixels(self, tokens: dict[str, torch.Tensor], pixels: Sequence[Decoded]) -> torch.Tensor:
        """Rewards (N,) float32 on the CPU for decoded images and one tokenized prompt."""
        embeds = self.image_embeddings(pixels)  # (N, 197, width)
        ids, mask = tokens["input_ids"], tokens["attention_mask"]
        rewards = self._graphed(lambda g: g.score_embeddings(embeds, ids, mask))
        if rewards is None:
            rewards = self.score_embeddings(embeds, ids, mask)
        return rewards.cpu()

    def _graphed(self, run: Callable[[SmallBatchGraphs], torch.Tensor | None]) -> torch.Tensor | None:
        """`run` on the small-batch CUDA graphs when they are on (see `cuda_graphs`); None to run eagerly.
        A part that cannot be captured turns the graphs off with a warning."""
        if self.cuda_graphs is False or self.device.type != "cuda":
            return None
        if self._graphs is None:
            self._graphs = SmallBatchGraphs(self)
        try:
            return run(self._graphs)
        except RuntimeError as e:
            warnings.warn(f"CUDA graphs turned off, running eagerly: {e}", RuntimeWarning, stacklevel=3)
            self.cuda_graphs, self._graphs = False, None
            return None

    @torch.inference_mode()
    def _rescore_float32(self, tokens: PromptTokens, pixels: Sequence[Decoded]) -> torch.Tensor:
        """Rewards in float32 from a float32 copy of the weights, made on first use and kept."""
        if self._float32_twin is None:
            twin = ImageRewardModel.__new__(ImageRewardModel)
            torch.nn.Module.__init__(twin)
            twin.config = self.config
            for part in ("visual_encoder", "text_encoder", "head"):
                setattr(twin, part, copy.deepcopy(getattr(self, part)).float())
            self._float32_twin = twin.eval()
        batch = torch.stack([d.pixels for d in pixels]).to(self.device)
        pixel_values = imgs.normalize(batch)
        return self._float32_twin(tokens.input_ids, tokens.attention_mask, pixel_values).cpu()

    @torch.inference_mode()
    def image_embeddings(self, pixels: Sequence[Decoded]) -> torch.Tensor:
        """ViT tokens (N, 197, width) for decoded images, from the cache where possible."""
        found = {d.key: self.embedding_cache.get(d.key) for d in pixels}
        missing = {d.key: d.pixels for d in pixels if found[d.key] is None}  # the same picture once
        if missing:
            batch = _rows_of_one_block(list(missing.values()))  # decoding processes' shared rows: no copy
            if batch is None:
                batch = torch.stack(list(missing.values()))
                if self.device.type == "cuda":
                    batch = batch.pin_memory()
            batch = batch.to(self.device, non_blocking=True)
            embeds = self._graphed(lambda g: g.encode_images(batch, self.dtype))
            if embeds is None:
                embeds = self.encode_images(imgs.normalize(batch).to(self.dtype))
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
        size = _check_batch_size(batch_size or self.batch_size)
        processes = self._processes_for(images, size)
        if processes:
            if self._process_decoder is None or self._process_decoder.processes != processes:
                self._process_decoder = ProcessDecoder(processes)
            paths = [os.fspath(image) for image in images]  # type: ignore[arg-type]
            batches = self._process_decoder.decoded_batches(
                paths, names, self.config.vision.image_size, size, reuse_buffers=reuse_buffers
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
        if not ring_fits(min(batch_size, len(images)), self.config.vision.image_size):
            return 0
        if self.decode_processes is not None:
            return self.decode_processes
        cores = os.cpu_count() or 1
        auto = self.device.type == "cuda" and cores >= 4 and len(images) >= PROCESS_DECODE_BATCHES * batch_size
        return min(32, cores) if auto else 0

    def _safe_load(self, image: ImageInput, name: str) -> Decoded | ImageLoadError:
        try:
            pixels = imgs.load_pixels(image, name, self.config.vision.image_size)
        except ImageLoadError as e:
            return e
        return Decoded(pixels, content_key(pixels))


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


def _tokens(prompt: str | PromptTokens) -> PromptTokens:
    if isinstance(prompt, PromptTokens):
        return prompt
    if not isinstance(prompt, str):
        raise TypeError(f"score one prompt at a time: `prompt` must be a string, got {type(prompt).__name__}")
    return encode_prompt(prompt)


def _check_batch_size(size: int) -> int:
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {size!r}")
    return size


def ranks_from_rewards(rewards: Sequence[float]) -> list[int]:
    """1-based rank of each reward, best first, as the original computes it (two `torch.sort`s)."""
    values = torch.tensor(list(rewards), dtype=torch.float32)
    _, order = torch.sort(values, dim=0, descending=True)
    _, ranks = torch.sort(order, dim=0)
    return (ranks + 1).tolist()
