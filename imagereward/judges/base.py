"""The original's API of a baseline scorer (`CLIPScore`, `BLIPScore`, `AestheticScore` in `image-reward` 1.5),
on top of the shared batching (`scorer.BatchedScorer`).

The original's return types are kept: `score(prompt, path)` is a float; `score(prompt, list)` is what
`inference_rank` gives as rewards, a list (a float for a list of one); `inference_rank(prompt, [one])` is
`(1, float)`, because the original squeezes its (1, 1) result to a scalar.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from ..images import ImageInput
from ..scorer import DEFAULT_BATCH_SIZE, DEFAULT_CACHE_SIZE, BatchedScorer, ranks_from_rewards


class Baseline(BatchedScorer, nn.Module):
    """A judge with the original baseline API. Subclasses say how they read prompts and images."""

    def __init__(self, name: str, batch_size: int = DEFAULT_BATCH_SIZE, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        nn.Module.__init__(self)
        self._init_batching(name, batch_size, cache_size)

    def score(self, prompt: str, image_path: ImageInput | Sequence[ImageInput]) -> float | list[float]:
        """The score of one image (a float), or the rewards of `inference_rank` for a list."""
        if isinstance(image_path, list):
            return self.inference_rank(prompt, image_path)[1]
        return self.rewards(prompt, [image_path])[0]

    def inference_rank(
        self, prompt: str, generations_list: Sequence[ImageInput]
    ) -> tuple[list[int], list[float]] | tuple[int, float]:
        """`(ranking, rewards)` as the original returns them (1-based ranks; `(1, reward)` for one image)."""
        rewards = self.rewards(prompt, generations_list)
        if len(rewards) == 1:
            return 1, rewards[0]
        return ranks_from_rewards(rewards), rewards
