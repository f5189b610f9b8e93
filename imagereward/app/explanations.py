"""Explanations on a public page and its API: why ImageReward gave an image its score (`judges.explain`), on
demand, for one image at a time or the few a comparison shows.

A request is checked like a scoring request before anything is decoded: the prompt must be one, and the
file one the visitor uploaded within the size limits (`intake.Intake`, one image's worth of budget each), so that a hostile `/explain` call can do no more than a `/score` one. The image is
decoded on the CPU (`prepare_explanations`); the model's work (its forward and backward passes) is one device
call (`explain_on_device`, inside `@spaces.GPU` on ZeroGPU). Explanations are kept (`ExplanationCache`, by
prompt and file) so that toggling the page's view back and forth computes nothing again.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import ImageLoadError, InputError
from ..judges.explain import Explanation, Prepared, explain_prepared, overlay, prepare
from ..judges.imagereward import ImageReward
from ..ranking import check_prompt
from .intake import Intake, PixelBudget, Roots, sent_name
from .settings import Settings

# Images one request may explain at most: the two compared and the winner.
MAX_EXPLAINED = 3
# Explanations a page keeps (each is a few kilobytes: a 14 x 14 map and the words).
CACHED = 64


@dataclass(frozen=True)
class ExplainItem:
    """One image of an explanation request, checked: its name, its path on the server, and either its pixels
    or its explanation, known already."""

    name: str
    path: str
    prepared: Prepared | None = None
    known: Explanation | None = None


@dataclass(frozen=True)
class ExplainRequest:
    """What the device needs to explain a request's images (it pickles: it crosses to a ZeroGPU worker)."""

    prompt: str
    items: list[ExplainItem]


def prepare_explanations(
    model: ImageReward,
    prompt: Any,
    files: Sequence[Any],
    roots: Roots | Sequence[str | Path],
    settings: Settings,
    names: Sequence[str] | None = None,
    known: ExplanationCache | None = None,
) -> tuple[ExplainRequest, list[ImageLoadError]]:
    """Checks a request's prompt and files and decodes the files that pass (see the module doc).

    Args:
        model: ImageReward.
        prompt: the prompt, as sent.
        files: the images' paths on the server, as sent (at most `MAX_EXPLAINED`).
        roots: the only folders files may be named in.
        settings: the limits (`pixel_budget`).
        names: how to name the files in messages (default: their file names).
        known: explanations computed before: a file found there is checked but not decoded.

    Returns:
        (the request, the files refused, each with its reason).

    Raises:
        InputError: no prompt, or more files than `MAX_EXPLAINED`.
    """
    text = check_prompt(prompt)
    if len(files) > MAX_EXPLAINED:
        raise InputError(f"At most {MAX_EXPLAINED} images can be explained at once; {len(files)} were sent.")
    names = list(names) if names is not None else [sent_name(f, k) for k, f in enumerate(files)]
    intake = Intake(roots, PixelBudget(settings.pixel_budget, [model.preprocessing]))
    items, refused = [], []
    for k, (raw, name) in enumerate(zip(files, names)):
        if not intake.take(k, raw, name):
            refused.append(intake.refused[k])
            continue
        path = intake.sources[intake.slots[k]]
        found = known.get(text, path) if known is not None else None
        try:
            prepared = prepare(model, path, name) if found is None else None
        except ImageLoadError as e:
            refused.append(e)
            continue
        items.append(ExplainItem(name, path, prepared, known=found))
    return ExplainRequest(text, items), refused


def explain_on_device(model: ImageReward, request: ExplainRequest) -> list[Explanation]:
    """The device half: each image's explanation, computed unless known already; ZeroGPU runs this inside
    `@spaces.GPU`."""
    return [item.known or explain_prepared(model, request.prompt, item.prepared) for item in request.items]  # type: ignore[arg-type]


def explain_duration(request: ExplainRequest) -> int:
    """Seconds to ask ZeroGPU for: the weights' move and a margin, plus a few seconds per image (a forward and
    backward pass of the image encoder, and one text pass per word)."""
    return 15 + 5 * sum(1 for item in request.items if item.prepared is not None)


class ExplanationCache:
    """The last `size` explanations, by prompt and file (its path, size and modification time); thread-safe."""

    def __init__(self, size: int = CACHED) -> None:
        self.size = size
        self._items: OrderedDict[tuple, Explanation] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(prompt: str, path: str) -> tuple:
        try:
            stat = os.stat(path)
        except OSError:
            return (prompt, path, None)
        return (prompt, path, stat.st_size, stat.st_mtime_ns)

    def get(self, prompt: str, path: str) -> Explanation | None:
        with self._lock:
            key = self.key(prompt, path)
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, prompt: str, path: str, explanation: Explanation) -> None:
        with self._lock:
            self._items[self.key(prompt, path)] = explanation
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def write_overlay(path: str, explanation: Explanation, folder: Path, name: str) -> Path:
    """The picture of an explanation (`explain.overlay`) as a JPEG in `folder`."""
    from ..images.reading import open_image

    with open_image(path, name) as image:
        picture = overlay(image, explanation)
    target = folder / f"why-{len(list(folder.iterdir()))}.jpg"
    picture.save(target, quality=90)
    return target
