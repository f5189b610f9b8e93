"""The differentiable path, against the original's: `score_gard` and `differentiable_rewards` give the original's
rewards and gradients (`fixtures/parity/gradients.npz`, made by the original's `score_gard` as ReFL calls it),
frozen or not, under autocast; the inference paths build no graph."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import imagereward
from originals import PARITY

GRADIENTS = np.load(PARITY / "gradients.npz")
META = json.loads((PARITY / "gradients.json").read_text(encoding="utf-8"))
N_IMAGES = len(META["sizes_hw"])
REWARD_TOLERANCE = 1e-4
GRADIENT_TOLERANCE = 2e-4  # of each gradient's largest magnitude (the float32 noise floor is ~1e-5)


@pytest.fixture(scope="module")
def model():
    model = imagereward.load(str(PARITY), device="cpu")
    model.requires_grad_(False)  # as ReFL does: gradients flow to the images only
    return model


def image(i: int) -> torch.Tensor:
    return torch.from_numpy(GRADIENTS[f"images01/{i}"]).clone()


def gradient_error(got: torch.Tensor, want: np.ndarray) -> float:
    """The largest difference, relative to the largest magnitude of the original's gradient."""
    return float(np.abs(got.detach().numpy() - want).max() / np.abs(want).max())


def test_the_tokens_are_refls() -> None:
    from imagereward.model.tokenizer import encode_prompt

    for entry in META["tokens"]:
        tokens = encode_prompt(entry["prompt"])
        assert tokens.input_ids[0].tolist() == entry["input_ids"]
        assert tokens.attention_mask[0].tolist() == entry["attention_mask"]


def test_score_gard_gives_the_originals_rewards_and_gradients(model) -> None:
    """The original's signature: token ids, mask, normalised pixels -> (B, 1); its gradient to the pixels."""
    entry = META["tokens"][0]
    pixels = torch.stack([torch.from_numpy(GRADIENTS[f"pixels/{i}"]) for i in range(N_IMAGES)]).requires_grad_(True)
    ids = torch.tensor([entry["input_ids"]] * N_IMAGES)
    mask = torch.tensor([entry["attention_mask"]] * N_IMAGES)
    rewards = model.score_gard(ids, mask, pixels)
    assert rewards.shape == (N_IMAGES, 1) and rewards.requires_grad
    assert np.abs(rewards[:, 0].detach().numpy() - GRADIENTS["rewards"][0]).max() <= REWARD_TOLERANCE
    rewards.sum().backward()
    for i in range(N_IMAGES):
        assert gradient_error(pixels.grad[i], GRADIENTS[f"grad_pixels/0/{i}"]) <= GRADIENT_TOLERANCE, i


@pytest.mark.parametrize("p", range(len(META["tokens"])))
def test_differentiable_rewards_give_the_originals_through_refls_preprocessing(model, p: int) -> None:
    """Images in [0, 1] of four sizes (upscaled, landscape, portrait, exact), each through ReFL's tensor
    preprocessing: the original's rewards, and its gradients to the [0, 1] images."""
    prompt = META["tokens"][p]["prompt"]
    for i in range(N_IMAGES):
        x = image(i)[None].requires_grad_(True)
        reward = model.differentiable_rewards(prompt, x)
        assert reward.shape == (1,)
        assert abs(reward.item() - GRADIENTS["rewards"][p][i]) <= REWARD_TOLERANCE, (p, i)
        reward.sum().backward()
        assert gradient_error(x.grad[0], GRADIENTS[f"grad_images01/{p}/{i}"]) <= GRADIENT_TOLERANCE, (p, i)


def test_a_batch_with_one_prompt_per_image_and_refls_loss(model) -> None:
    prompts = [t["prompt"] for t in META["tokens"]]
    x = torch.stack([image(0), image(0)]).requires_grad_(True)
    rewards = model.differentiable_rewards(prompts, x)
    assert np.abs(rewards.detach().numpy() - GRADIENTS["rewards"][:, 0]).max() <= REWARD_TOLERANCE
    each = torch.cat([model.differentiable_rewards(prompts[0], image(i)[None]) for i in range(N_IMAGES)])
    loss = torch.relu(2 - each).mean()  # ReFL's loss over the four images
    assert abs(loss.item() - GRADIENTS["refl_loss"][0]) <= REWARD_TOLERANCE
    with pytest.raises(ValueError, match="one prompt, or one per image"):
        model.differentiable_rewards(prompts * 2, x)
    with pytest.raises(ValueError, match=r"float tensor \(B, 3, H, W\)"):
        model.differentiable_rewards(prompts[0], x[0])


@pytest.mark.parametrize("wrong", ["zero", "detached", "another preprocessing"])
def test_the_comparison_fails_for_a_wrong_gradient(model, wrong: str) -> None:
    """The tolerance tells a right gradient from a zero one, a detached input, and the same images put through
    another preprocessing (the resize without antialiasing, as torchvision resized tensors before 0.17)."""
    from torchvision.transforms import functional as TF

    from imagereward.images.reading import IMAGE_MEAN, IMAGE_STD

    entry, i = META["tokens"][0], 1  # the landscape image: the resize matters
    want = GRADIENTS[f"grad_images01/0/{i}"]
    x = image(i)[None].requires_grad_(True)
    if wrong == "zero":
        assert gradient_error(torch.zeros_like(x[0]), want) > GRADIENT_TOLERANCE
        return
    if wrong == "detached":
        model.differentiable_rewards(entry["prompt"], x.detach().clone()).sum()
        assert x.grad is None
        return
    pixels = TF.normalize(
        TF.center_crop(TF.resize(x, [224], TF.InterpolationMode.BICUBIC, antialias=False), [224, 224]),
        list(IMAGE_MEAN),
        list(IMAGE_STD),
    )
    ids, mask = torch.tensor([entry["input_ids"]]), torch.tensor([entry["attention_mask"]])
    model.score_gard(ids, mask, pixels).sum().backward()
    assert gradient_error(x.grad[0], want) > GRADIENT_TOLERANCE


def test_weights_that_are_not_frozen_get_gradients_too() -> None:
    model = imagereward.load(str(PARITY), device="cpu")
    x = image(0)[None].requires_grad_(True)
    model.differentiable_rewards(META["tokens"][0]["prompt"], x).sum().backward()
    assert x.grad is not None and model.head[0].weight.grad is not None
    assert float(model.visual_encoder.patch_embed.proj.weight.grad.abs().sum()) > 0


def test_under_autocast_the_gradients_flow_and_the_rewards_stay_close(model) -> None:
    prompt = META["tokens"][0]["prompt"]
    x = torch.stack([image(0), image(0).flip(-1)]).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rewards = model.differentiable_rewards(prompt, x)
    assert rewards.dtype == torch.float32
    assert abs(rewards[0].item() - GRADIENTS["rewards"][0][0]) < 0.1
    rewards.sum().backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().max()) > 0


def test_the_inference_paths_build_no_graph(model, monkeypatch) -> None:
    """`rewards`, `score_decoded` and `score_pairs` run every part of the network with autograd off."""
    from originals import EXPECTED, image_path

    seen = []
    for hook in ("features_from_pixels", "scores_from_features", "pair_scores"):
        real = getattr(model, hook)

        def spy(*args, _real=real, _hook=hook):
            seen.append((_hook, torch.is_grad_enabled()))
            out = _real(*args)
            assert not isinstance(out, torch.Tensor) or out.grad_fn is None
            return out

        monkeypatch.setattr(model, hook, spy)
    paths = [str(image_path(n)) for n in EXPECTED["images"][:2]]
    model.embedding_cache.clear()
    model.rewards("a cat", paths)
    decoded = model.decode(paths, paths)
    model.embedding_cache.clear()
    model.score_decoded("a dog", decoded, paths)
    model.score_pairs(["a cat", "a dog"], decoded)
    assert {hook for hook, _ in seen} == {"features_from_pixels", "scores_from_features", "pair_scores"}
    assert not any(grad for _, grad in seen)
