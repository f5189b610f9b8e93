"""ImageReward, re-implemented: the same scores as the original `image-reward` package, batched and fast.

    import imagereward as RM
    model = RM.load("ImageReward-v1.0")
    rewards = model.score("<prompt>", ["a.png", "b.png"])

Paper: Xu et al., "ImageReward: Learning and Evaluating Human Preferences for Text-to-Image Generation",
arXiv 2304.05977. Original code: https://github.com/THUDM/ImageReward (PyPI `image-reward`).
"""

from .errors import (
    CheckpointError,
    ImageError,
    ImageLoadError,
    ImageRewardError,
    InputError,
    NonFiniteRewardError,
    WeightsUnavailableError,
)
from .factory import load
from .judges import available_judges, available_scores, load_judge, load_score
from .pretrained import available_models
from .reward import ImageReward

__all__ = [
    "available_judges",
    "available_models",
    "available_scores",
    "load",
    "load_judge",
    "load_score",
    "ImageReward",
    "ImageRewardError",
    "CheckpointError",
    "ImageError",
    "ImageLoadError",
    "InputError",
    "NonFiniteRewardError",
    "WeightsUnavailableError",
]
__version__ = "0.1.0"
