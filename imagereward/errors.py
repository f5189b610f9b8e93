"""Exceptions whose message is a sentence a person can act on (the app and the CLI show it as is)."""

from __future__ import annotations


class ImageRewardError(Exception):
    """Base class of this package's errors."""


class CheckpointError(ImageRewardError, ValueError):
    """A checkpoint that cannot be read, or whose keys or shapes do not fit the model."""


class WeightsUnavailableError(ImageRewardError, OSError):
    """Weights that could not be downloaded and are not in the local cache."""


class ImageLoadError(ImageRewardError, ValueError):
    """One input image that could not be read (or, as `NonFiniteRewardError`, scored); `name` says which,
    `reason` why."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class NonFiniteRewardError(ImageLoadError):
    """An image whose reward came out as inf or NaN (half precision overflowed on it). Treated like an
    unreadable image: named, left out, the other images still scored."""
