"""The original's API shapes, the embedding cache, and per-image errors that keep the good results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import imagereward
from conftest import EXPECTED, image_path
from imagereward import ImageLoadError, NonFiniteRewardError
from imagereward.ranking import InputError, rank_images
from imagereward.reward import ranks_from_rewards

CASE = EXPECTED["rank"][0]
PATHS = [str(image_path(n)) for n in CASE["images"]]


def test_score_single_is_float_list_is_list(tiny_model) -> None:
    assert isinstance(tiny_model.score(CASE["prompt"], PATHS[0]), float)
    one = tiny_model.score(CASE["prompt"], [PATHS[0]])
    assert isinstance(one, list) and len(one) == 1
    many = tiny_model.score(CASE["prompt"], PATHS)
    np.testing.assert_allclose(many, CASE["rewards"], atol=1e-4, rtol=0)


def test_inference_rank_format(tiny_model) -> None:
    ranking, rewards = tiny_model.inference_rank(CASE["prompt"], PATHS[:3])
    assert sorted(ranking) == [1, 2, 3] and all(isinstance(r, int) for r in ranking)
    assert all(isinstance(r, float) for r in rewards)
    assert ranking[int(np.argmax(rewards))] == 1


def test_ranks_from_rewards() -> None:
    assert ranks_from_rewards([0.1, 2.0, -1.0]) == [2, 1, 3]


def test_pil_images_score_like_paths(tiny_model) -> None:
    pil = [Image.open(p) for p in PATHS[:4]]
    np.testing.assert_allclose(tiny_model.score(CASE["prompt"], pil), CASE["rewards"][:4], atol=1e-4, rtol=0)


def test_bad_image_raises_with_its_name(tiny_model, tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ImageLoadError, match="broken.png: not an image file"):
        tiny_model.score(CASE["prompt"], [PATHS[0], str(bad)])


def test_try_rewards_keeps_the_good_images(tiny_model, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 nothing")
    results = tiny_model.try_rewards(CASE["prompt"], [PATHS[0], str(bad), PATHS[1]], batch_size=2)
    assert isinstance(results[1], ImageLoadError) and results[1].name.endswith("broken.jpg")
    np.testing.assert_allclose([results[0], results[2]], CASE["rewards"][:2], atol=1e-4, rtol=0)


def test_cache_skips_the_image_encoder_and_keeps_the_numbers(tiny_model) -> None:
    tiny_model.embedding_cache.clear()
    first = tiny_model.rewards(CASE["prompt"], PATHS)
    calls = []
    handle = tiny_model.visual_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        other = EXPECTED["rank"][1]
        again = tiny_model.rewards(other["prompt"], PATHS)
    finally:
        handle.remove()
    assert calls == []
    assert tiny_model.embedding_cache.hits >= len(PATHS)
    np.testing.assert_allclose(again, other["rewards"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(first, CASE["rewards"], atol=1e-4, rtol=0)


def test_cache_is_bounded(tiny_model) -> None:
    tiny_model.embedding_cache.resize(3)
    try:
        tiny_model.rewards(CASE["prompt"], PATHS)
        assert len(tiny_model.embedding_cache) == 3
    finally:
        tiny_model.embedding_cache.resize(256)


def test_prompt_must_be_a_string(tiny_model) -> None:
    with pytest.raises(TypeError, match="one prompt at a time"):
        tiny_model.rewards(["a", "b"], PATHS[:2])


def test_half_precision_stays_close(parity_dir) -> None:
    import imagereward

    model = imagereward.load(str(parity_dir), device="cpu", dtype=torch.bfloat16)
    rewards = model.rewards(CASE["prompt"], PATHS)
    assert np.abs(np.array(rewards) - CASE["rewards"]).max() < 0.1


def test_non_finite_reward_is_named_and_the_others_kept(parity_dir, monkeypatch) -> None:
    model = imagereward.load(str(parity_dir), device="cpu", dtype="fp16")
    real = model.rewards_from_pixels

    def one_nan(tokens, pixels):  # the second image of the batch overflows
        out = real(tokens, pixels).clone()
        out[1] = float("nan")
        return out

    monkeypatch.setattr(model, "rewards_from_pixels", one_nan)
    results = model.try_rewards(CASE["prompt"], PATHS[:3], names=["a.png", "b.png", "c.png"])
    assert isinstance(results[1], NonFiniteRewardError) and results[1].name == "b.png"
    assert "float16" in str(results[1]) and "dtype='fp32'" in str(results[1])
    np.testing.assert_allclose([results[0], results[2]], [CASE["rewards"][0], CASE["rewards"][2]], atol=0.02)
    with pytest.raises(NonFiniteRewardError, match=Path(PATHS[1]).name):
        model.rewards(CASE["prompt"], PATHS[:3], batch_size=3)


def test_float16_overflow_gives_non_finite_errors_not_nan_rewards(parity_dir) -> None:
    model = imagereward.load(str(parity_dir), device="cpu", dtype="fp16")
    with torch.no_grad():
        model.visual_encoder.patch_embed.proj.weight.mul_(1e8)  # beyond float16's 65504: inf from the first layer
    results = model.try_rewards(CASE["prompt"], PATHS[:2])
    assert all(isinstance(r, NonFiniteRewardError) for r in results), results
    assert "float16" in str(results[0])
    with pytest.raises(InputError, match="None of the images could be scored") as caught:
        rank_images(model, CASE["prompt"], PATHS[:2])
    assert "PNG" not in str(caught.value) and len(caught.value.failures) == 2
