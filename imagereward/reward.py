"""`ImageReward`: the network plus the original's scoring API (`score`, `inference_rank`, `preprocess`),
batched: one image-encoder pass per batch, images decoded in parallel threads ahead of the model,
and image embeddings cached by content.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterator, NamedTuple, Sequence

import torch
from PIL import Image

from . import images as imgs
from .cache import EmbeddingCache, content_key
from .config import ModelConfig
from .errors import ImageLoadError, NonFiniteRewardError
from .images import ImageInput
from .model import ImageRewardModel
from .tokenizer import tokenize


class Decoded(NamedTuple):
    """One decoded input: uint8 pixels (3, 224, 224) and their `content_key`, both made in a worker thread."""

    pixels: torch.Tensor
    key: bytes


def default_workers() -> int:
    """Threads for decoding images: the cores, at most 16."""
    return max(1, min(16, os.cpu_count() or 1))


class ImageReward(ImageRewardModel):
    """ImageReward with the original package's API. Build it with `imagereward.load`.

    Attributes:
        name: the model name or path it was loaded from.
        batch_size: images per forward pass.
        embedding_cache: image embeddings by content (`embedding_cache.resize(0)` disables it).
    """

    def __init__(self, config: ModelConfig, name: str = "", batch_size: int = 32, cache_size: int = 256) -> None:
        super().__init__(config)
        self.name = name
        self.batch_size = batch_size
        self.embedding_cache = EmbeddingCache(cache_size)
        self.workers = default_workers()
        self._pool: ThreadPoolExecutor | None = None

    # ----------------------------------------------------------------------------------------- state
    @property
    def device(self) -> torch.device:
        return self.visual_encoder.cls_token.device

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype of the encoders (the head always runs in float32)."""
        return self.visual_encoder.cls_token.dtype

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        # Moving or casting the model invalidates embeddings computed on the old device or dtype.
        self.embedding_cache.clear()
        return super()._apply(fn, recurse)

    # ----------------------------------------------------------------------------------- the original API
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The original's `model.preprocess(pil_image)`: float32 (3, 224, 224) on the CPU."""
        return imgs.preprocess(image, self.config.vision.image_size)

    def score(self, prompt: str, image: ImageInput | Sequence[ImageInput]) -> float | list[float]:
        """Reward of one image (a float) or of a list of images (a list of floats, also for one image).

        Raises:
            ImageLoadError: an input could not be read (its name and the reason are in the message).
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
        """Rewards of `images` for one prompt, in input order; the first unreadable image raises."""
        results = self.try_rewards(prompt, images, batch_size)
        for result in results:
            if isinstance(result, ImageLoadError):
                raise result
        return [float(r) for r in results]

    def try_rewards(
        self,
        prompt: str,
        images: Sequence[ImageInput],
        batch_size: int | None = None,
        names: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[float | ImageLoadError]:
        """Like `rewards`, but an unreadable image gives its `ImageLoadError` in its place and the others
        are still scored; so does an image whose reward is not finite (`NonFiniteRewardError`: half precision
        overflowed). `progress(n)` is called after each batch with the number of images it held."""
        if isinstance(prompt, (list, tuple)):
            raise TypeError("score one prompt at a time: `prompt` must be a string")
        if names is None:
            names = [imgs.describe(image, i) for i, image in enumerate(images)]
        tokens = tokenize(prompt)
        results: list[float | ImageLoadError] = []
        for chunk in self._decoded_chunks(images, names, batch_size or self.batch_size):
            good = [d for d in chunk if isinstance(d, Decoded)]
            scores = iter(self.rewards_from_pixels(tokens, good).tolist()) if good else iter(())
            for item in chunk:
                results.append(self._finite(next(scores), names[len(results)]) if isinstance(item, Decoded) else item)
            if progress is not None:
                progress(len(chunk))
        return results

    def _finite(self, reward: float, name: str) -> float | NonFiniteRewardError:
        if math.isfinite(reward):
            return reward
        if self.dtype == torch.float32:
            return NonFiniteRewardError(name, "its reward is not a finite number; the weights may hold inf or NaN")
        return NonFiniteRewardError(
            name,
            f"its reward is not a finite number in {str(self.dtype).removeprefix('torch.')} "
            "(half precision overflowed on this image); "
            "load the model with dtype='fp32' (or 'bf16') to score it",
        )

    @torch.inference_mode()
    def rewards_from_pixels(
        self, tokens: dict[str, torch.Tensor], pixels: Sequence[torch.Tensor | Decoded]
    ) -> torch.Tensor:
        """Rewards (N,) float32 on the CPU for uint8 pixels (each (3, 224, 224)) and one tokenized prompt."""
        embeds = self.image_embeddings(pixels)  # (N, 197, width)
        n = embeds.shape[0]
        # Padding is masked out of every attention, so the CLS feature does not depend on it: run only
        # as many positions as the prompt has tokens (exact, and up to 3x less text-encoder work).
        length = int(tokens["attention_mask"].sum(dim=-1).max())
        input_ids = tokens["input_ids"][:, :length].to(self.device).expand(n, -1)
        attention_mask = tokens["attention_mask"][:, :length].to(self.device).expand(n, -1)
        features = self.encode_text(input_ids, attention_mask, embeds)  # (N, hidden)
        return self.forward_head(features).cpu()

    @torch.inference_mode()
    def image_embeddings(self, pixels: Sequence[torch.Tensor | Decoded]) -> torch.Tensor:
        """ViT tokens (N, 197, width) for uint8 pixels, from the cache where possible."""
        decoded = [p if isinstance(p, Decoded) else Decoded(p, content_key(p)) for p in pixels]
        pixels = [d.pixels for d in decoded]
        keys = [d.key for d in decoded]
        found = [self.embedding_cache.get(k) for k in keys]
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            batch = torch.stack([pixels[i] for i in missing])
            if self.device.type == "cuda":
                batch = batch.pin_memory()
            batch = batch.to(self.device, non_blocking=True)
            embeds = self.encode_images(imgs.normalize(batch).to(self.dtype))
            caching = self.embedding_cache.max_entries > 0
            for j, i in enumerate(missing):
                found[i] = embeds[j]
                if caching:  # a clone, so that one cached image does not keep its whole batch alive
                    self.embedding_cache.put(keys[i], embeds[j].clone() if len(missing) > 1 else embeds[j])
        return torch.stack(found)  # type: ignore[arg-type]

    def load_pixels(self, image: ImageInput, name: str | None = None) -> torch.Tensor:
        """One input -> uint8 (3, 224, 224), or `ImageLoadError`."""
        return imgs.load_pixels(image, name, self.config.vision.image_size)

    def _decoded_chunks(
        self, images: Sequence[ImageInput], names: Sequence[str], batch_size: int
    ) -> Iterator[list[Decoded | ImageLoadError]]:
        """Decodes images in worker threads, two batches ahead of the model, and yields them by batch."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(images) <= 1 or self.workers <= 1:
            for start in range(0, len(images), batch_size):
                yield [self._safe_load(images[i], names[i]) for i in range(start, min(start + batch_size, len(images)))]
            return
        pool = self._executor()
        starts = list(range(0, len(images), batch_size))
        pending: list[list[Future]] = []

        def submit(start: int) -> None:
            stop = min(start + batch_size, len(images))
            pending.append([pool.submit(self._safe_load, images[i], names[i]) for i in range(start, stop)])

        for start in starts[:2]:
            submit(start)
        for k in range(len(starts)):
            if k + 2 < len(starts):
                submit(starts[k + 2])
            yield [f.result() for f in pending.pop(0)]

    def _safe_load(self, image: ImageInput, name: str) -> Decoded | ImageLoadError:
        try:
            pixels = self.load_pixels(image, name)
        except ImageLoadError as e:
            return e
        return Decoded(pixels, content_key(pixels))

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="imagereward-decode")
        return self._pool


def ranks_from_rewards(rewards: Sequence[float]) -> list[int]:
    """1-based rank of each reward, best first, as the original computes it (two `torch.sort`s)."""
    values = torch.tensor(list(rewards), dtype=torch.float32)
    _, order = torch.sort(values, dim=0, descending=True)
    _, ranks = torch.sort(order, dim=0)
    return (ranks + 1).tolist()
