"""The oneDNN CPU linear gives F.linear's numbers; trimming prompt padding does not change the CLS feature."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from imagereward.model.kernels import OneDnnLinear, onednn_available, use_onednn_linears
from imagereward.model.tokenizer import tokenize


@pytest.mark.skipif(not onednn_available(), reason="this PyTorch build has no oneDNN")
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_onednn_linear_matches_f_linear(dtype: torch.dtype, tol: float) -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 48).to(dtype)
    x = torch.randn(3, 7, 64, dtype=dtype)
    want = F.linear(x, layer.weight, layer.bias)
    assert use_onednn_linears(torch.nn.Sequential(layer)) == 1 and type(layer) is OneDnnLinear
    with torch.inference_mode():
        got = layer(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got.float(), want.float(), rtol=tol, atol=tol)
    assert list(layer.state_dict()) == ["weight", "bias"]


def test_onednn_linear_falls_back_when_gradients_are_needed() -> None:
    layer = torch.nn.Linear(8, 4)
    layer.__class__ = OneDnnLinear
    x = torch.randn(2, 8, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None


def test_padding_trim_keeps_the_cls_feature(tiny_model) -> None:
    embeds = torch.randn(2, tiny_model.config.vision.num_tokens, tiny_model.config.vision.width)
    tokens = tokenize("a short prompt")
    length = int(tokens["attention_mask"].sum())
    with torch.inference_mode():
        full = tiny_model.encode_text(tokens["input_ids"].expand(2, -1), tokens["attention_mask"].expand(2, -1), embeds)
        trimmed = tiny_model.encode_text(
            tokens["input_ids"][:, :length].expand(2, -1), tokens["attention_mask"][:, :length].expand(2, -1), embeds
        )
    assert length < 35
    torch.testing.assert_close(trimmed, full, rtol=0, atol=1e-5)


@pytest.mark.skipif(not onednn_available(), reason="this PyTorch build has no oneDNN")
def test_compiled_encoders_give_the_eager_rewards(parity_dir, expected) -> None:
    """`torch.compile` traces through `OneDnnLinear` (to F.linear, which inductor lowers itself)."""
    import imagereward

    paths = [str(parity_dir / "images" / name) for name in expected["images"][:4]]
    prompt = expected["prompts"][0]
    model = imagereward.load(str(parity_dir), device="cpu")
    model.embedding_cache.resize(0)
    eager = model.rewards(prompt, paths)
    model.visual_encoder.compile()
    model.text_encoder.compile()
    compiled = model.rewards(prompt, paths)
    torch.testing.assert_close(torch.tensor(compiled), torch.tensor(eager), rtol=0, atol=1e-4)
