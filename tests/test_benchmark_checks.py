"""The benchmark's self-checks (benchmarks/checks.py) on the tiny model: the arithmetic counted from the shapes
is what torch counts, a timing faster than the measured peak is refused, and a cache hit or a repeated image
is caught."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from originals import EXPECTED, image_path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import checks  # noqa: E402

PROMPT = EXPECTED["rank"][0]["prompt"]
IMAGES = [str(image_path(n)) for n in EXPECTED["images"][:4]]


def test_the_counted_arithmetic_is_what_torch_counts(tiny_model) -> None:
    tokens = tiny_model.prompt_tokens(PROMPT)
    size = tiny_model.config.vision.image_size
    pixels = torch.rand(1, 3, size, size)
    # F.linear and attention's own matrix products, which the counter counts (not oneDNN's or CPU flash attention)
    with FlopCounterMode(display=False) as counter, torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):
        tiny_model.score_gard(tokens.input_ids, tokens.attention_mask, pixels)
    counted = checks.gflop_per_image(tiny_model.config, tokens.input_ids.shape[1])
    assert counted == pytest.approx(counter.get_total_flops() / 1e9, rel=0.01)


def test_the_full_size_model_costs_what_the_paper_model_does() -> None:
    from imagereward.model.config import ModelConfig

    assert checks.gflop_per_image(ModelConfig()) == pytest.approx(137.8, abs=0.5)


def test_a_timing_faster_than_the_peak_is_refused() -> None:
    assert checks.rate(100.0, 1.0, peak=200.0, what="ours fp32") == pytest.approx(0.5)
    with pytest.raises(checks.AbovePeak, match="ours fp32: 351 GFLOP/s is above the machine's measured peak of 200"):
        checks.rate(137.0 * 16, 16 * 0.39, peak=200.0, what="ours fp32")  # runs 5-7's figure on a 200 GFLOP/s CPU


def test_a_cache_hit_is_caught(tiny_model) -> None:
    runs = 2
    size = tiny_model.embedding_cache.max_entries
    try:
        tiny_model.embedding_cache.resize(256)  # on: the second run is served from the cache
        with checks.counting_encoded(tiny_model.visual_encoder) as encoded:
            for _ in range(runs):
                tiny_model.rewards(PROMPT, IMAGES)
        with pytest.raises(AssertionError, match="served from a cache or deduplicated"):
            checks.check_all_encoded(encoded[0], len(IMAGES), runs, "ours")
        tiny_model.embedding_cache.resize(0)  # off: every run encodes every image
        with checks.counting_encoded(tiny_model.visual_encoder) as encoded:
            for _ in range(runs):
                tiny_model.rewards(PROMPT, IMAGES)
        checks.check_all_encoded(encoded[0], len(IMAGES), runs, "ours")
    finally:
        tiny_model.embedding_cache.resize(size)


def test_a_repeated_file_is_caught(tiny_model) -> None:
    with checks.counting_encoded(tiny_model.visual_encoder) as encoded:
        tiny_model.embedding_cache.resize(0)
        try:
            tiny_model.rewards(PROMPT, [IMAGES[0], IMAGES[0], IMAGES[1]])  # one file twice: decoded and encoded once
        finally:
            tiny_model.embedding_cache.resize(256)
    with pytest.raises(AssertionError):
        checks.check_all_encoded(encoded[0], 3, 1, "ours")
    with pytest.raises(AssertionError, match="1 of 3 timed images repeat another"):
        checks.check_distinct([b"a", b"a", b"b"], "ours")
