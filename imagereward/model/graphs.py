"""CUDA graphs for small batches: a request of a few images is launch-bound, not compute-bound.

Scoring 1 to 8 images in float16 takes the GPU ~1-3 ms of arithmetic, but the eager forward launches about
a thousand kernels through Python (ViT-L, then BERT with cross-attention), which costs more than that. Here
each part is captured once per batch-size bucket (1, 2, 4, 8, 16, 32; a batch is padded up to its bucket) and
replayed: one launch per part. The image part (normalise + ViT) and the text part (BERT over the image tokens +
head) are separate graphs, so the embedding cache keeps working between them. The text part reads all 35
token positions (padding is masked, so only float rounding differs from the trimmed eager path).

Replays share static buffers, so each is done under a lock; the outputs are copied out before the lock is let go.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import torch

from .config import MAX_PROMPT_TOKENS
from .network import ImageRewardModel

BUCKETS: tuple[int, ...] = (1, 2, 4, 8, 16, 32)


def bucket_for(n: int) -> int | None:
    """The smallest bucket that holds `n` images, or None past the largest (then the eager path runs)."""
    return next((b for b in BUCKETS if b >= n), None)


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: tuple[torch.Tensor, ...]
    output: torch.Tensor


def _capture(fn: Callable[[], torch.Tensor], inputs: tuple[torch.Tensor, ...]) -> _Captured:
    """Warms `fn` up on a side stream (as CUDA graph capture requires), then captures one call of it."""
    stream = torch.cuda.Stream(inputs[0].device)
    stream.wait_stream(torch.cuda.current_stream(inputs[0].device))
    with torch.cuda.stream(stream):
        for _ in range(2):
            fn()
    torch.cuda.current_stream(inputs[0].device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = fn()
    return _Captured(graph, inputs, output)


class SmallBatchGraphs:
    """The two parts of a model on CUDA, captured lazily per bucket.

    Args:
        model: the network, on a CUDA device, in its compute dtype.
        normalize: decoded uint8 pixels -> the network's float input (`images.normalize`), captured with the
            image part.
    """

    def __init__(self, model: ImageRewardModel, normalize: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.model = model
        self.normalize = normalize
        self._lock = threading.Lock()
        self._vision: dict[int, _Captured] = {}
        self._text: dict[int, _Captured] = {}

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
        """uint8 pixels (n, 3, H, W) on the device -> image tokens (n, 197, width), or None when n is past
        the largest bucket."""
        n = pixels.shape[0]
        b = bucket_for(n)
        if b is None:
            return None
        with self._lock:
            if b not in self._vision:
                static = torch.zeros((b, *pixels.shape[1:]), dtype=torch.uint8, device=pixels.device)
                self._vision[b] = _capture(
                    lambda: self.model.encode_images(self.normalize(static).to(dtype)), (static,)
                )
            captured = self._vision[b]
            captured.inputs[0][:n].copy_(pixels)
            captured.graph.replay()
            return captured.output[:n].clone()

    @torch.inference_mode()
    def score_embeddings(
        self, image_embeds: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor | None:
        """Image tokens (n, 197, width) and one prompt's tokens (1, 35) -> rewards (n,) float32, or None past
        the largest bucket."""
        n = image_embeds.shape[0]
        b = bucket_for(n)
        if b is None:
            return None
        device = image_embeds.device
        with self._lock:
            if b not in self._text:
                embeds = torch.zeros((b, *image_embeds.shape[1:]), dtype=image_embeds.dtype, device=device)
                ids = torch.zeros((b, MAX_PROMPT_TOKENS), dtype=torch.int64, device=device)
                mask = torch.ones((b, MAX_PROMPT_TOKENS), dtype=torch.int64, device=device)
                self._text[b] = _capture(
                    lambda: self.model.forward_head(self.model.encode_text(ids, mask, embeds)), (embeds, ids, mask)
                )
            captured = self._text[b]
            embeds, ids, mask = captured.inputs
            embeds[:n].copy_(image_embeds)
            ids.copy_(input_ids.to(device, non_blocking=True).expand(b, -1))
            mask.copy_(attention_mask.to(device, non_blocking=True).expand(b, -1))
            captured.graph.replay()
            return captured.output[:n].clone()
