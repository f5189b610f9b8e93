"""The other judges' differentiable rewards (`Baseline.differentiable_rewards`), for reward-feedback training:
the same scores as the judges give image files holding the same pixels (HPSv2.1's letterbox at any size, the
resize-and-crop judges at their own size, and within Pillow's rounding otherwise), gradients that reach the
pixels, and the judges with no gradient path refused with the reason."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imagereward.judges import load_judge

PROMPT = "a watercolor fox in the snow"


def image_of(tmp_path, width: int, height: int, seed: int = 0):  # noqa: ANN001, ANN201 - (path, float tensor)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height // 4 + 1, width // 4 + 1, 3), dtype=np.uint8)
    pixels = np.array(Image.fromarray(base).resize((width, height), Image.BILINEAR))  # smooth, as generations
    path = tmp_path / f"image-{width}x{height}-{seed}.png"
    Image.fromarray(pixels).save(path)
    return path, torch.from_numpy(pixels).permute(2, 0, 1)[None].float().div(255)


@pytest.mark.parametrize("name", ["HPSv2.1", "PickScore", "CLIP"])
def test_the_judge_s_own_size_gives_its_score_exactly(name: str, judges_root, tmp_path) -> None:
    judge = load_judge(name, download_root=judges_root, device="cpu")
    side = judge.preprocessing.size
    path, x = image_of(tmp_path, side, side)
    x.requires_grad_(True)
    score = judge.differentiable_rewards(PROMPT, x)
    assert score.shape == (1,)
    assert score.item() == pytest.approx(judge.rewards(PROMPT, [path])[0], abs=1e-6)
    score.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_hps_letterbox_is_its_own_arithmetic_at_any_size(judges_root, tmp_path) -> None:
    """open_clip resizes the float tensor: a non-square image of another size scores as its file does."""
    judge = load_judge("HPSv2.1", download_root=judges_root, device="cpu")
    paths, xs = zip(*(image_of(tmp_path, w, h, k) for k, (w, h) in enumerate([(96, 64), (96, 64)])))
    scores = judge.differentiable_rewards([PROMPT, "a red bicycle"], torch.cat(xs))
    expected = [judge.rewards(PROMPT, [paths[0]])[0], judge.rewards("a red bicycle", [paths[1]])[0]]
    assert scores.tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("name", ["PickScore", "CLIP"])
@pytest.mark.parametrize("size", [(2, 2), (1.34, 1.16)])
def test_a_resize_is_within_pillow_s_rounding(name: str, size, judges_root, tmp_path) -> None:
    """Pillow's bicubic on 8-bit pixels against torch's antialiased bicubic on floats (the same kernel): the
    resized and cropped pixels 0.3/255 apart on average, as 8-bit rounding alone makes them (measured: 0.28 to
    0.31), at most 1.9/255; another kernel (bilinear: 2 to 4.4/255 on average) fails this."""
    from imagereward.images.transforms import tensor_pixels

    judge = load_judge(name, download_root=judges_root, device="cpu")
    side = judge.preprocessing.size
    path, x = image_of(tmp_path, round(size[0] * side), round(size[1] * side))
    ours = tensor_pixels(x, judge.preprocessing)[0]
    theirs = judge.preprocessing.load(path).float().div(255)
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().mean() < 0.5 / 255 and (ours - theirs).abs().max() < 2.5 / 255


@pytest.mark.parametrize("name", ["BLIP", "Aesthetic"])
def test_a_judge_without_a_gradient_path_is_refused_with_the_reason(name: str, judges_root) -> None:
    judge = load_judge(name, download_root=judges_root, device="cpu")
    with pytest.raises(ValueError, match=f"{name} has no differentiable path"):
        judge.differentiable_rewards(PROMPT, torch.rand(1, 3, 32, 32))
