"""The correctness bar: this package computes what the original `image-reward` 1.5 computed for the same
weights (tests/fixtures/parity, made with the original; see its README). CPU, float32."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imagereward.model.tokenizer import get_tokenizer, tokenize
from originals import EXPECTED, IMAGE_NAMES, PARITY, image_path

SCORE_TOL = 1e-4
PIXEL_TOL = 1e-6
PREPROCESSED = np.load(PARITY / "preprocess.npz")


@pytest.mark.parametrize("case", EXPECTED["tokens"], ids=lambda c: f"prompt{c['prompt_index']}")
def test_tokens_identical(case: dict) -> None:
    tokens = tokenize(case["prompt"])
    assert tokens["input_ids"][0].tolist() == case["input_ids"]
    assert tokens["attention_mask"][0].tolist() == case["attention_mask"]
    assert get_tokenizer().convert_ids_to_tokens(case["input_ids"]) == case["wordpieces"]


def test_special_tokens_have_the_original_ids() -> None:
    assert get_tokenizer().convert_tokens_to_ids(["[DEC]", "[ENC]"]) == [30522, 30523]
    assert len(get_tokenizer()) == 30524


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_preprocess_matches(tiny_model, name: str) -> None:
    with Image.open(image_path(name)) as image:
        ours = tiny_model.preprocess(image).numpy()
    assert ours.shape == (3, 224, 224) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, PREPROCESSED[name], rtol=0, atol=PIXEL_TOL)


@pytest.mark.parametrize("case", EXPECTED["scores"], ids=lambda c: f"prompt{c['prompt_index']}")
def test_score_each_image_matches(tiny_model, case: dict) -> None:
    for name, want in case["scores"].items():
        got = tiny_model.score(case["prompt"], str(image_path(name)))
        assert isinstance(got, float)
        assert abs(got - want) <= SCORE_TOL, f"{name}: {got} vs original {want}"


@pytest.mark.parametrize("case", EXPECTED["rank"], ids=lambda c: f"prompt{c['prompt_index']}")
def test_inference_rank_matches(tiny_model, case: dict) -> None:
    ranking, rewards = tiny_model.inference_rank(case["prompt"], [str(image_path(n)) for n in case["images"]])
    assert ranking == case["ranking"]
    np.testing.assert_allclose(rewards, case["rewards"], rtol=0, atol=SCORE_TOL)


@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_batching_does_not_change_rewards(tiny_model, batch_size: int) -> None:
    case = EXPECTED["rank"][1]
    tiny_model.embedding_cache.clear()
    rewards = tiny_model.rewards(case["prompt"], [image_path(n) for n in case["images"]], batch_size=batch_size)
    np.testing.assert_allclose(rewards, case["rewards"], rtol=0, atol=SCORE_TOL)


def test_intermediate_vision_embeddings_match(tiny_model) -> None:
    """The ViT output alone, so that a failure says which half of the model is off."""
    inter = np.load(PARITY / "intermediates.npz")
    for name in IMAGE_NAMES[:3]:
        decoded = tiny_model.decode([image_path(name)], [name])
        ours = tiny_model.image_features(decoded)[0].numpy()
        np.testing.assert_allclose(ours, inter[f"vision_embeds/{name}"], rtol=0, atol=1e-4)
