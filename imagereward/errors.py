"""Exceptions whose message is a sentence a person can act on (the app and the CLI show it as is).

One hierarchy under `ImageRewardError`, so that front ends catch the package's errors narrowly and let bugs
surface. Every error pickles and unpickles to an equal error: ZeroGPU returns results and exceptions across
processes by pickling.
"""

from __future__ import annotations

from typing import Sequence


class ImageRewardError(Exception):
    """Base class of this package's errors."""


class CheckpointError(ImageRewardError, ValueError):
    """A checkpoint that cannot be read, or whose keys or shapes do not fit the model."""


class WeightsUnavailableError(ImageRewardError, OSError):
    """Weights that could not be downloaded and are not in the local cache."""


class ImageError(ImageRewardError, ValueError):
    """One input image that could not be scored; `name` says which, `reason` why. The other images of the
    same call are still scored."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return type(self), (self.name, self.reason)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and (other.name, other.reason) == (self.name, self.reason)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.name, self.reason))

    def renamed(self, name: str) -> ImageError:
        """The same error for another input (e.g. a second reference to the same file)."""
        return type(self)(name, self.reason)


class ImageLoadError(ImageError):
    """An input that could not be read: missing, not an image, a format that is not accepted, corrupt,
    too large, or refused (a path the caller may not open)."""


class NonFiniteRewardError(ImageError):
    """An image whose reward came out as inf or NaN, even in the safest precision the model has."""


class InputError(ImageRewardError, ValueError):
    """Input that cannot be scored at all (no prompt, no readable image); the message says what to do.
    `failures` lists the images that could not be read or scored, if that was the reason."""

    def __init__(self, message: str, failures: Sequence[ImageError] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.failures = list(failures)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return type(self), (self.message, self.failures)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and (other.message, other.failures) == (self.message, self.failures)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.message))
