"""Why this score: each read word's effect equals the score differences it claims, the map is over the model's
patches of the crop it sees and passes a deletion test, and the picture shows the crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imagereward.judges.explain import explain, favouring, overlay, without
from originals import EXPECTED, image_path

PROMPTS = [p for p in EXPECTED["prompts"] if p.strip()]
LONG = PROMPTS[0] + ", golden hour lighting, 85mm lens, bokeh, award winning, trending on artstation, sharp"


def test_removing_a_word_keeps_the_rest() -> None:
    assert without("a cute cat", 2, 6) == "a cat"
    assert without("a cute cat", 7, 10) == "a cute"
    assert without("cat", 0, 3) == "" and without("big  cat ", 0, 3) == "cat "


def test_each_word_effect_is_the_score_difference_it_claims(tiny_model) -> None:
    path = str(image_path(EXPECTED["images"][1]))
    ex = tiny_model.explain(LONG, path)
    assert ex.score == pytest.approx(tiny_model.score(LONG, path), abs=1e-5)
    assert ex.read + ex.unread == LONG and ex.unread  # the long prompt is read only in part
    # every word the model read (the last one in part), in prompt order, and no unread one
    words = LONG.split()[: len(ex.read.split())]
    assert [w for w, _ in ex.words] == words
    last = ex.word_effects[-1]  # BERT reads "trending" as "trend ##ing" and stops after "trend"
    assert (last.text, last.read, last.partial) == ("trending", len("trend"), True)
    assert ex.read.endswith("trend") and ex.unread.startswith("ing")
    for word in ex.word_effects:
        rest = without(LONG, word.start, word.end)
        assert LONG[word.start : word.end] == word.text
        assert word.delta == pytest.approx(ex.score - tiny_model.score(rest, path), abs=1e-5), word.text


def test_the_map_covers_the_patches_of_the_crop_the_model_sees(tiny_model) -> None:
    path = image_path("02_landscape_640x480.jpg")
    ex = tiny_model.explain(PROMPTS[1], str(path))
    grid = tiny_model.config.vision.image_size // tiny_model.config.vision.patch_size
    assert ex.heatmap.shape == (grid, grid) and ex.heatmap.dtype == np.float32 and np.abs(ex.heatmap).max() > 0
    # 640 x 480 resizes to 298 x 224 (the long side truncated), cropped 37 px in from each side: the crop's
    # 224 resized pixels are 224 * 640 / 298 original ones, centred
    left = round((298 - 224) / 2) * 640 / 298
    assert ex.crop_box == pytest.approx((left, 0.0, left + 224 * 640 / 298, 480.0))
    assert ex.image_size == (640, 480)
    picture = overlay(Image.open(path), ex)
    assert picture.size == (640, 480)
    outside, inside = np.asarray(picture)[:, :20].mean(), np.asarray(Image.open(path).convert("RGB"))[:, :20].mean()
    assert outside < 0.6 * inside  # what the model never sees is dimmed


def masked(pixels: torch.Tensor, patches: np.ndarray, patch: int) -> torch.Tensor:
    x = pixels.clone()
    grid = x.shape[-1] // patch
    for k in patches:
        r, c = divmod(int(k), grid)
        x[:, :, r * patch : (r + 1) * patch, c * patch : (c + 1) * patch] = 0  # the mean image
    return x


def test_the_map_passes_a_deletion_test(tiny_model) -> None:
    """Masking the quarter of patches the map ranks highest lowers the score more than masking a random
    quarter: on average over the fixture images and prompts, and for most of them."""
    from imagereward.images.reading import normalize
    from imagereward.model.tokenizer import encode_prompt

    rng = np.random.default_rng(0)
    patch = tiny_model.config.vision.patch_size
    top_drops, random_drops = [], []
    for name in EXPECTED["images"][:8]:
        pixels = tiny_model.preprocessing.load(str(image_path(name)))
        x = normalize(pixels)[None]
        for prompt in PROMPTS[:2]:
            tokens = encode_prompt(prompt)
            ex = tiny_model.explain(prompt, str(image_path(name)))
            quarter = ex.heatmap.size // 4

            def score(y: torch.Tensor) -> float:
                with torch.no_grad():
                    return float(tiny_model.score_gard(tokens.input_ids, tokens.attention_mask, y)[0, 0])

            top = np.argsort(-ex.heatmap.ravel())[:quarter]
            top_drops.append(ex.score - score(masked(x, top, patch)))
            draws = [rng.permutation(ex.heatmap.size)[:quarter] for _ in range(8)]
            random_drops.append(np.mean([ex.score - score(masked(x, d, patch)) for d in draws]))
    top_drops, random_drops = np.array(top_drops), np.array(random_drops)
    assert top_drops.mean() > random_drops.mean() + 0.25, (top_drops.mean(), random_drops.mean())
    assert (top_drops > random_drops).mean() >= 0.75


def test_the_words_that_favour_a_over_b(tiny_model) -> None:
    a = tiny_model.explain(PROMPTS[0], str(image_path(EXPECTED["images"][0])))
    b = tiny_model.explain(PROMPTS[0], str(image_path(EXPECTED["images"][1])))
    best = favouring(a, b, most=3)
    gaps = sorted((wa.delta - wb.delta for wa, wb in zip(a.word_effects, b.word_effects)), reverse=True)
    assert [g for _, g in best] == pytest.approx(gaps[:3])


def test_a_refused_image_is_named(tiny_model, tmp_path) -> None:
    from imagereward import ImageLoadError

    Image.new("RGB", (100_000, 5)).save(tmp_path / "strip.png")
    with pytest.raises(ImageLoadError, match="aspect ratio of at most 64:1"):
        explain(tiny_model, "a cat", str(tmp_path / "strip.png"))


def test_the_map_leaves_a_training_model_as_it_was(tiny_model) -> None:
    """The map's backward pass runs with the weights frozen: no weight gradient is kept, the flags come back,
    and the map is the same as with the weights frozen by the caller."""
    prompt, image = PROMPTS[1], str(image_path("02_landscape_640x480.jpg"))
    flags = [p.requires_grad for p in tiny_model.parameters()]
    try:
        tiny_model.requires_grad_(True)
        trained = explain(tiny_model, prompt, image).heatmap
        assert all(p.requires_grad and p.grad is None for p in tiny_model.parameters())
        tiny_model.requires_grad_(False)
        np.testing.assert_array_equal(trained, explain(tiny_model, prompt, image).heatmap)
    finally:
        for p, flag in zip(tiny_model.parameters(), flags):
            p.requires_grad_(flag)
