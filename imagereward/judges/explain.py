"""Why a judge gave an image its score: what it read of the prompt, which read words mattered, and where in the
image it looked. Estimates of what drove the score, not proofs of it.

- **What it read** (`reading.Reading`): the prompt split where the judge's tokenizer stops.
- **Which words mattered**: for each word it read, `score(prompt) - score(prompt without that word)`, exact by
  definition (the same judge, the same image; the image's features are computed once, so each word costs a text
  pass). A positive number: the word raised the score. Removing a word can bring an unread word into the read
  part; that is part of the difference too.
- **Where it looked** (ImageReward): a signed map over the image encoder's patches (14 x 14 of the 224 crop),
  integrated gradients of the score with respect to the pixels from the dataset's mean image (normalised
  pixels 0), in `STEPS` steps, summed over each patch's pixels and channels: positive where the pixels raised the
  score. Chosen over plain gradient x input because it is more faithful by a deletion test: on the fixture model,
  masking the quarter of patches the map ranks highest lowers the score by 1.15 on average (gradient x input:
  0.62, SmoothGrad: 0.62, a random quarter: +0.02; `benchmarks/explain_faithfulness.py`); docs/python.md gives the
  numbers.
  `crop_box` is the 224 crop in the original image's pixels: what the model sees of the image.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..images import reading as imgs
from ..images.decoding import Decoded, content_key
from ..images.transforms import Preprocessing
from ..model.tokenizer import MAX_PROMPT_CHARS, cut_at_whitespace
from .base import Judge
from .reading import Reading

# Integrated gradients: steps from the mean image to the image (batched: one forward and backward pass).
STEPS = 4
_WORD = re.compile(r"\S+")
_FREEZING = threading.Lock()


@contextlib.contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """The module's weights out of the graph for the duration (`requires_grad` False, restored after): a
    gradient to the input then keeps no activations for weight gradients (the float32 explanation's memory
    over the loaded model: +5.3 GB before, +2.8 GB after, docs/python.md). A no-op for a frozen module (as the app
    serves it); a module that trains holds a lock meanwhile, so that two passes never restore each other's
    flags early."""
    if not any(p.requires_grad for p in module.parameters()):
        yield
        return
    with _FREEZING:
        trained = [p for p in module.parameters() if p.requires_grad]
        for p in trained:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in trained:
                p.requires_grad_(True)


@dataclass(frozen=True)
class Word:
    """A word the judge read (all of it, or its start only: `read` is how many of its characters), where it is
    in the prompt, and how much it moved the score."""

    text: str
    start: int
    end: int
    delta: float
    read: int

    @property
    def partial(self) -> bool:
        """Whether the judge stopped reading inside this word."""
        return self.read < len(self.text)


@dataclass(frozen=True)
class Explanation:
    """Why a judge gave an image its score (see the module doc): an estimate of what drove it.

    Attributes:
        prompt: the prompt (its first `MAX_PROMPT_CHARS` characters, all a judge ever reads).
        score: the image's score for it.
        reading: what the judge read of the prompt.
        words: the read words in prompt order, each with its effect on the score.
        heatmap: float32 (grid, grid): per patch of the 224 crop, what raised (positive) or lowered the score.
        crop_box: (left, top, right, bottom) of the crop in the original image's pixels.
        image_size: (width, height) of the original image.
    """

    prompt: str
    score: float
    reading: Reading
    word_effects: tuple[Word, ...]
    heatmap: np.ndarray
    crop_box: tuple[float, float, float, float]
    image_size: tuple[int, int]

    @property
    def read(self) -> str:
        return self.reading.read

    @property
    def unread(self) -> str:
        return self.reading.unread

    @property
    def words(self) -> list[tuple[str, float]]:
        """(word, effect on the score) of each read word, in prompt order."""
        return [(w.text, w.delta) for w in self.word_effects]

    def as_dict(self) -> dict[str, Any]:
        """The explanation as JSON values (the API's answer)."""
        return {
            "prompt": self.prompt,
            "score": self.score,
            "read": self.reading.read,
            "unread": self.reading.unread,
            "tokens_read": self.reading.tokens_read,
            "tokens_total": self.reading.tokens_total,
            "words": [
                {"word": w.text, "start": w.start, "end": w.end, "delta": w.delta, "partial": w.partial}
                for w in self.word_effects
            ],
            "heatmap": self.heatmap.round(6).tolist(),
            "crop_box": list(self.crop_box),
            "image_size": list(self.image_size),
        }


def without(prompt: str, start: int, end: int) -> str:
    """`prompt` with the word at [start, end) removed, and the whitespace after it (or, for a word with none
    after it, the whitespace before it)."""
    tail = prompt[end:]
    after = len(tail) - len(tail.lstrip())
    if after:
        return prompt[:start] + prompt[end + after :]
    head = prompt[:start]
    return head.rstrip() + tail


def word_effects(judge: Judge, prompt: str, decoded: Decoded, reading: Reading) -> tuple[float, list[Word]]:
    """The score of `decoded` for `prompt`, and each read word's effect on it (`score(prompt) - score(prompt
    without the word)`): one image-encoder pass, then every prompt's text pass together (`Judge.score_pairs`).
    A word the judge stopped reading inside counts as read, and is removed whole."""
    spans = []
    for match in _WORD.finditer(prompt) if not reading.ignored else ():
        if match.start() >= len(reading.read):
            break
        spans.append(match.span())
    prompts = [prompt, *(without(prompt, a, b) for a, b in spans)]
    results = judge.score_pairs(prompts, [decoded] * len(prompts))
    scores = [r.score if hasattr(r, "score") else float("nan") for r in results]
    read = len(reading.read)
    return scores[0], [Word(prompt[a:b], a, b, scores[0] - s, min(b, read) - a) for (a, b), s in zip(spans, scores[1:])]


def patch_map(model: Any, tokens: Any, pixels: torch.Tensor, patch: int, steps: int = STEPS) -> np.ndarray:
    """Integrated gradients of ImageReward's score over the image encoder's patches (see the module doc).

    Args:
        model: the ImageReward judge (`score_gard`).
        tokens: the prompt's tokens.
        pixels: uint8 (3, S, S) as its preprocessing makes them.
        patch: the encoder's patch side.
        steps: integration steps.

    Returns:
        float32 (S // patch, S // patch).
    """
    x = imgs.normalize(pixels)[None].to(model.device)  # (1, 3, S, S)
    alphas = torch.arange(1, steps + 1, dtype=torch.float32, device=x.device).view(-1, 1, 1, 1) / steps
    path = (alphas * x).requires_grad_(True)  # (steps, 3, S, S): from the mean image (0) to the image
    ids, mask = tokens.input_ids.expand(steps, -1), tokens.attention_mask.expand(steps, -1)
    with torch.enable_grad(), frozen(model):
        (grad,) = torch.autograd.grad(model.score_gard(ids, mask, path).sum(), path)
    attribution = (grad.float().mean(0) * x[0].float()).sum(0)  # (S, S)
    side = attribution.shape[-1] // patch
    return attribution.view(side, patch, side, patch).sum((1, 3)).detach().cpu().numpy().astype(np.float32)


def crop_box(width: int, height: int, preprocessing: Preprocessing) -> tuple[float, float, float, float]:
    """The square a resize-and-crop preprocessing keeps, in the original image's pixels."""
    size = preprocessing.size
    new_w, new_h = preprocessing.resized(width, height)
    left, top = int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))
    sx, sy = width / new_w, height / new_h
    return (left * sx, top * sy, (left + size) * sx, (top + size) * sy)


def overlay(image: Image.Image, explanation: Explanation, longest: int = 768) -> Image.Image:
    """The image as the judge saw it: the crop box drawn on the whole image, and over the crop the map (red
    where the pixels raised the score, blue where they lowered it, more opaque the more)."""
    picture = image.convert("RGB")
    scale = min(1.0, longest / max(picture.size))
    if scale < 1.0:
        picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))))
    sx, sy = picture.width / explanation.image_size[0], picture.height / explanation.image_size[1]
    left, top, right, bottom = explanation.crop_box
    box = (round(left * sx), round(top * sy), round(right * sx), round(bottom * sy))
    heat = explanation.heatmap / (float(np.abs(explanation.heatmap).max()) or 1.0)
    rgba = np.zeros((*heat.shape, 4), dtype=np.uint8)
    rgba[..., 0] = np.where(heat > 0, 230, 30)
    rgba[..., 2] = np.where(heat > 0, 30, 230)
    rgba[..., 1] = 40
    rgba[..., 3] = (np.abs(heat) * 170).astype(np.uint8)
    size = (max(1, box[2] - box[0]), max(1, box[3] - box[1]))
    layer = Image.fromarray(rgba, "RGBA").resize(size, Image.NEAREST)
    shown = Image.eval(picture, lambda v: v // 2).convert("RGBA")  # what the model never sees, dimmed
    shown.paste(picture.crop(box), box[:2])
    shown.alpha_composite(layer, (box[0], box[1]))
    draw = ImageDraw.Draw(shown)
    draw.rectangle(box, outline=(255, 255, 255, 255), width=max(1, round(2 * max(sx, sy))))
    return shown.convert("RGB")


@dataclass(frozen=True)
class Prepared:
    """An image decoded for an explanation on the CPU, ready for the device (it pickles: it crosses to a ZeroGPU
    worker): its pixels as ImageReward's preprocessing makes them, and its size."""

    pixels: torch.Tensor
    size: tuple[int, int]


def prepare(model: Any, image: imgs.ImageInput, name: str | None = None) -> Prepared:
    """Opens and decodes one image for `explain_prepared` (the CPU half).

    Raises:
        ImageLoadError: the image cannot be read, or its resize is too large (named).
    """
    name = name or imgs.describe(image)
    opened = imgs.open_image(image, name, model.preprocessing.check_size)
    try:
        return Prepared(model.preprocessing.apply(opened, name), opened.size)
    finally:
        if opened is not image:
            opened.close()


def explain_prepared(model: Any, prompt: str, prepared: Prepared, steps: int = STEPS) -> Explanation:
    """The device half of `explain`."""
    decoded = Decoded(prepared.pixels, content_key(prepared.pixels))
    read = model.reading(prompt)
    prompt = cut_at_whitespace(prompt, MAX_PROMPT_CHARS)  # all a judge ever reads of it
    score, words = word_effects(model, prompt, decoded, read)
    heatmap = patch_map(model, model.prompt_tokens(prompt), prepared.pixels, model.config.vision.patch_size, steps)
    box = crop_box(*prepared.size, model.preprocessing)
    return Explanation(prompt, score, read, tuple(words), heatmap, box, prepared.size)


def explain(
    model: Any, prompt: str, image: imgs.ImageInput, name: str | None = None, steps: int = STEPS
) -> Explanation:
    """What ImageReward read of `prompt`, which read words mattered, and where it looked in `image`.

    Raises:
        ImageLoadError: the image cannot be read, or its resize is too large (named).
    """
    return explain_prepared(model, prompt, prepare(model, image, name), steps)


def favouring(a: Explanation, b: Explanation, most: int = 5, effects: bool = False) -> list[tuple]:
    """The read words that favour image A over image B most: (word, effect on A - effect on B), largest first
    (the same prompt's words, so they pair up by position); with `effects`, (word, that difference, effect on
    A, effect on B)."""
    pairs = [(wa.text, wa.delta - wb.delta, wa.delta, wb.delta) for wa, wb in zip(a.word_effects, b.word_effects)]
    ranked = sorted(pairs, key=lambda p: -p[1])[:most]
    return ranked if effects else [p[:2] for p in ranked]
