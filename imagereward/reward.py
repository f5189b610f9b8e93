"""`ImageReward`: the network plus the original's scoring API (`score`, `inference_rank`, `preprocess`),
batched (see `scorer.BatchedScorer`: one image-encoder pass per batch, images decoded in parallel ahead of the
model, the same file decoded once per call, image embeddings cached by content), with CUDA graphs for small
batches and float32 rescoring where float16 overflows.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Callable, Sequence

import torch
from PIL import Image

from . import images as imgs
from .config import ModelConfig
from .graphs import SmallBatchGraphs
from .images import ImageInput
from .model import ImageRewardModel
from .preprocessing import RESIZE_CROP, Preprocessing
from .scorer import DEFAULT_BATCH_SIZE, DEFAULT_CACHE_SIZE, BatchedScorer, Decoded, Scored, ranks_from_rewards
from .tokenizer import PromptTokens, encode_prompt

__all__ = ["ImageReward"]


class ImageReward(BatchedScorer, ImageRewardModel):
    """ImageReward with the original package's API. Build it with `imagereward.load`.

    Attributes (besides `BatchedScorer`'s):
        cuda_graphs: replay small batches (up to 32 images) from CUDA graphs (`graphs.SmallBatchGraphs`):
            `None` (default) on CUDA, False never.
    """

    tokens_type = PromptTokens
    non_finite_reason = "its reward is not a finite number even in float32; the weights may hold inf or NaN"

    def __init__(
        self,
        config: ModelConfig,
        name: str = "",
        batch_size: int = DEFAULT_BATCH_SIZE,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        ImageRewardModel.__init__(self, config)
        self._init_batching(name, batch_size, cache_size)
        self.preprocessing = Preprocessing(RESIZE_CROP, config.vision.image_size)
        self.cuda_graphs: bool | None = None
        self._graphs: SmallBatchGraphs | None = None
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
        # Moving or casting the model invalidates the float32 copy and the CUDA graphs made before.
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

    # ------------------------------------------------------------------------------------ judge hooks
    def tokenize(self, prompt: str) -> PromptTokens:
        return encode_prompt(prompt)

    def features_from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 pixels (N, 3, 224, 224) on the device -> ViT tokens (N, 197, width)."""
        embeds = self._graphed(lambda g: g.encode_images(pixels, self.dtype))
        if embeds is None:
            embeds = self.encode_images(imgs.normalize(pixels).to(self.dtype))
        return embeds

    def scores_from_features(self, tokens: PromptTokens, features: torch.Tensor) -> torch.Tensor:
        return self._rewards(tokens.input_ids, tokens.attention_mask, features)

    def _rewards(self, ids: torch.Tensor, mask: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
        rewards = self._graphed(lambda g: g.score_embeddings(embeds, ids, mask))
        if rewards is None:
            rewards = self.score_embeddings(embeds, ids, mask)
        return rewards.cpu()

    @torch.inference_mode()
    def score_pairs(self, prompts: Sequence[str], decoded: Sequence[Decoded]) -> list[Scored]:
        """One reward per (prompt, image) pair: one ViT pass for all the images, and one text-encoder pass per
        prompt length, each row with its own prompt (run at its own length, as a prompt scored alone is). A
        float16 overflow is scored again in float32, pair by pair."""
        embeds = self.image_embeddings(decoded)
        tokens = [self.prompt_tokens(p) for p in prompts]
        lengths = [int(t.attention_mask.sum()) for t in tokens]
        rewards: list[float] = [0.0] * len(tokens)
        for length in sorted(set(lengths)):
            rows = [k for k, n in enumerate(lengths) if n == length]
            ids = torch.cat([tokens[k].input_ids[:, :length] for k in rows]).to(self.device)
            mask = torch.cat([tokens[k].attention_mask[:, :length] for k in rows]).to(self.device)
            for k, r in zip(rows, self.forward_head(self.encode_text(ids, mask, embeds[rows])).cpu().tolist()):
                rewards[k] = r
        scored = [Scored(r, self.dtype) for r in rewards]
        for k, r in enumerate(rewards):
            if not math.isfinite(r):
                scored[k] = self._scored(tokens[k], [decoded[k]])[0]
        return scored

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
        return self._rewards(tokens["input_ids"], tokens["attention_mask"], self.image_embeddings(pixels))

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
