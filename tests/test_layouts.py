"""The full-size checkpoint of every judge, as its published file lays it out (keys, shapes, dtypes; meta
tensors, no memory), loads strictly into the judge's network; a key removed, mis-shaped or added is an error
that names the file's own key."""

from __future__ import annotations

import re

import pytest
import torch

import imagereward
from imagereward.judges import available_judges

# Per judge: keys of its file to change (the projections, the scale a score is made with, the keys the loader
# converts); the keys it ignores or rebuilds on purpose are named in its module (`ignored`).
CHANGED_KEYS = {
    "ImageReward-v1.0": (
        "blip.visual_encoder.blocks.23.attn.qkv.weight",
        "blip.text_encoder.encoder.layer.11.crossattention.self.key.weight",
        "mlp.layers.7.bias",
    ),
    "CLIP": ("visual.transformer.resblocks.23.attn.in_proj_weight", "text_projection"),
    "BLIP": ("text_encoder.encoder.layer.11.attention.self.query.weight", "vision_proj.weight"),
    "Aesthetic": ("layers.7.weight",),
    "PickScore": ("visual_projection.weight", "logit_scale"),
    "HPSv2.1": ("visual.proj", "logit_scale"),
}
CASES = [(judge, key) for judge, keys in CHANGED_KEYS.items() for key in keys]


def ignored(judge: str, key: str) -> bool:
    from imagereward.judges import blip, clip, pickscore
    from imagereward.model import checkpoint

    return {
        "ImageReward-v1.0": lambda k: k in checkpoint.IGNORED_KEYS,
        "CLIP": lambda k: k in clip.IGNORED_KEYS,
        "BLIP": blip.is_ignored,
        "PickScore": lambda k: k in pickscore.POSITION_IDS,
    }.get(judge, lambda k: False)(key)


def test_every_judge_has_a_full_size_layout() -> None:
    assert sorted(CHANGED_KEYS) == sorted(available_judges())


@pytest.mark.parametrize("judge", list(CHANGED_KEYS))
def test_the_full_size_layout_loads_strictly(judge: str, full_layout) -> None:
    entries = full_layout.entries(judge)
    model = full_layout.build(judge, full_layout.state(judge))
    loaded = sum(torch.Size(shape).numel() for k, (shape, _) in entries.items() if not ignored(judge, k))
    assert (
        sum(p.numel() for p in model.parameters())
        + sum(b.numel() for n, b in model.named_buffers() if n in entries and not ignored(judge, n))
        == loaded
    )
    assert sum(p.numel() for p in model.parameters()) > 900_000


@pytest.mark.parametrize("judge, key", CASES, ids=[f"{j}:{k}" for j, k in CASES])
@pytest.mark.parametrize("change", ["remove", "misshape"])
def test_a_removed_or_misshaped_key_is_named_by_the_files_own_name(
    judge: str, key: str, change: str, full_layout
) -> None:
    state = full_layout.state(judge)
    if change == "remove":
        del state[key]
        expected = rf"missing keys \['?{re.escape(key)}"
    else:
        state[key] = torch.empty((3, 5) if tuple(state[key].shape) != (3, 5) else (4, 6), device="meta")
        expected = rf"mis-shaped weights \[{re.escape(key)}"
    with pytest.raises(imagereward.CheckpointError, match=expected):
        full_layout.build(judge, state)


@pytest.mark.parametrize("judge", list(CHANGED_KEYS))
def test_an_unknown_key_is_an_error_naming_it(judge: str, full_layout) -> None:
    state = full_layout.state(judge)
    state["an.unexpected.key"] = torch.empty(2, device="meta")
    with pytest.raises(imagereward.CheckpointError, match=r"unexpected keys \[an\.unexpected\.key"):
        full_layout.build(judge, state)
