"""What keeps a benchmark honest: the arithmetic an image costs, counted from the model's shapes; the rate a
timing implies, against the machine's measured GEMM peak (`machine.gemm_peak`), a figure above it refused;
and a count of the images the image encoder actually encoded, so that an embedding-cache hit or a deduplicated
file cannot pass for speed.

`tests/test_benchmark_checks.py` runs these on the tiny model.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


def gflop_per_image(config: Any, prompt_tokens: int = 35) -> float:
    """The multiply-adds (x 2) of one (prompt, image) score, from the model's shapes (`model.config`): the
    ViT's patch embedding, attention and MLP at its token count; BERT's self-attention, cross-attention to the
    image tokens and MLP at `prompt_tokens` (35: the prompt is padded to the model's length); the head. The
    layer norms, softmax and GELU are left out (a fraction of a percent)."""
    v, t, h = config.vision, config.text, config.head
    tokens = (v.image_size // v.patch_size) ** 2 + 1
    d, mlp = v.width, int(v.width * v.mlp_ratio)
    patch = 2 * (tokens - 1) * (3 * v.patch_size**2) * d
    vit_layer = 2 * tokens * (3 * d * d + d * d + 2 * d * mlp) + 2 * 2 * tokens * tokens * d
    L, H, inner = prompt_tokens, t.hidden_size, t.intermediate_size
    self_attention = 2 * L * 4 * H * H + 2 * 2 * L * L * H
    cross_attention = 2 * L * 2 * H * H + 2 * tokens * 2 * d * H + 2 * 2 * L * tokens * H
    text_layer = self_attention + cross_attention + 2 * L * 2 * H * inner
    widths = (config.head_input_size, *h.widths)
    head = sum(2 * a * b for a, b in zip(widths[:-1], widths[1:]))
    return (patch + v.depth * vit_layer + t.num_hidden_layers * text_layer + head) / 1e9


class AbovePeak(Exception):
    """A timing that implies more arithmetic per second than the machine's measured peak: a measuring error
    (a cache hit, a skipped image, another machine), never a speed-up."""


def rate(gflop: float, seconds: float, peak: float, what: str) -> float:
    """GFLOP/s of `gflop` done in `seconds`, as a fraction of `peak` GFLOP/s.

    Raises:
        AbovePeak: the fraction is above 1 (the message names `what` and both rates).
    """
    achieved = gflop / seconds
    if achieved > peak:
        raise AbovePeak(
            f"{what}: {achieved:.0f} GFLOP/s is above the machine's measured peak of {peak:.0f} GFLOP/s: a measuring "
            "error (a cache hit, a skipped image, another machine), not a speed-up"
        )
    return achieved / peak


@contextmanager
def counting_encoded(encoder: Any) -> Iterator[list[int]]:
    """Counts the images `encoder` (a module whose first input is a batch of images) encodes while the block
    runs: yields a one-element list holding the count."""
    count = [0]

    def hook(_module: Any, inputs: tuple) -> None:
        count[0] += int(inputs[0].shape[0])

    handle = encoder.register_forward_pre_hook(hook)
    try:
        yield count
    finally:
        handle.remove()


def check_all_encoded(encoded: int, images: int, runs: int, what: str) -> None:
    """That the image encoder saw every image of every timed run.

    Raises:
        AssertionError: fewer were encoded (a cache hit or a deduplicated file), or more (another image's work).
    """
    if encoded != images * runs:
        raise AssertionError(
            f"{what}: the image encoder encoded {encoded} images for {runs} runs of {images}: a timed image was "
            f"served from a cache or deduplicated (expected {images * runs})"
        )


def check_distinct(keys: list[bytes], what: str) -> None:
    """That the timed images are different pictures (their preprocessed pixels' keys all differ).

    Raises:
        AssertionError: two timed images are the same picture.
    """
    if len(set(keys)) != len(keys):
        raise AssertionError(f"{what}: {len(keys) - len(set(keys))} of {len(keys)} timed images repeat another")
