"""ImageReward, re-implemented: the same scores as the original `image-reward` package, batched and fast.

    import imagereward as RM
    model = RM.load("ImageReward-v1.0")
    rewards = model.score("<prompt>", ["a.png", "b.png"])

Paper: Xu et al., "ImageReward: Learning and Evaluating Human Preferences for Text-to-Image Generation",
arXiv 2304.05977. Original code: https://github.com/THUDM/ImageReward (PyPI `image-reward`).
"""

from typing import TYPE_CHECKING, Any

from .errors import (
    CheckpointError,
    ImageError,
    ImageLoadError,
    ImageRewardError,
    InputError,
    NonFiniteRewardError,
    WeightsUnavailableError,
)

if TYPE_CHECKING:
    from .judges import available_judges, available_scores, load_judge, load_score
    from .judges.imagereward import ImageReward, available_models, load

# The models' modules (timm, transformers: seconds to import) load on first use, so that a process that only
# decodes images (bulk scoring's Ray workers) starts without them.
_LAZY = {
    "load": "judges.imagereward",
    "available_judges": "judges",
    "available_scores": "judges",
    "load_judge": "judges",
    "load_score": "judges",
    "available_models": "judges.imagereward",
    "ImageReward": "judges.imagereward",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'imagereward' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
