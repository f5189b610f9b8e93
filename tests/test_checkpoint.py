"""Reading, converting and strictly loading checkpoints, including the real full-size layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import imagereward
from imagereward.model.checkpoint import IGNORED_KEYS, convert_state_dict, read_state_dict
from imagereward.model.config import ModelConfig, text_config_from_med
from originals import EXPECTED, PARITY, image_path


def test_default_config_is_the_published_architecture() -> None:
    med = json.loads((PARITY / "med_config.full.json").read_text())
    assert ModelConfig() == ModelConfig(text=text_config_from_med(med))
    fixture = json.loads((PARITY / "config.json").read_text())
    head = ModelConfig().head
    assert (head.reward_mean, head.reward_std) == (fixture["reward_mean"], fixture["reward_std"])
    assert ModelConfig().vision.layer_norm_eps == fixture["vision"]["layer_norm_eps"] == 1e-6


def test_wrong_shape_is_named(full_layout) -> None:
    state = full_layout.state("ImageReward-v1.0")
    state["blip.text_encoder.encoder.layer.0.crossattention.self.key.weight"] = torch.empty(768, 768, device="meta")
    with pytest.raises(
        imagereward.CheckpointError,
        match=r"mis-shaped weights \[blip\.text_encoder\.encoder\.layer\.0\.crossattention\.self\.key\.weight",
    ):
        full_layout.build("ImageReward-v1.0", state)


def test_an_unexpected_blip_key_is_an_error(full_layout) -> None:
    state = full_layout.state("ImageReward-v1.0")
    state["blip.itm_head.weight"] = torch.empty(2, 768, device="meta")
    with pytest.raises(imagereward.CheckpointError, match=r"unexpected keys \[blip\.itm_head\.weight\]"):
        full_layout.build("ImageReward-v1.0", state)


def test_convert_state_dict_swaps_and_drops() -> None:
    t = torch.zeros(1)
    out = convert_state_dict(
        {
            "blip.visual_encoder.cls_token": t,
            "blip.text_encoder.encoder.layer.0.attention.self.query.weight": t,
            "mlp.layers.0.weight": t,
            "mlp.layers.2.bias": t,
            "mlp.layers.4.weight": t,
            "mlp.layers.6.weight": t,
            "mlp.layers.7.bias": t,
            "blip.vision_proj.weight": t,
            "blip.text_proj.bias": t,
            "blip.text_encoder.embeddings.position_ids": t,
        }
    )
    assert list(out) == [
        "visual_encoder.cls_token",
        "text_encoder.encoder.layer.0.attention.self.query.weight",
        "head.0.weight",
        "head.1.bias",
        "head.2.weight",
        "head.3.weight",
        "head.4.bias",
    ]
    assert all(v is t for v in out.values())


def test_truncated_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    data = (PARITY / "ImageReward.pt").read_bytes()
    (tmp_path / "ImageReward.pt").write_bytes(data[: len(data) // 2])
    shutil.copy(PARITY / "med_config.json", tmp_path)
    with pytest.raises(imagereward.CheckpointError, match="truncated or corrupt"):
        imagereward.load(str(tmp_path), device="cpu")


def test_not_a_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "ImageReward.pt").write_bytes(b"this is not a checkpoint")
    with pytest.raises(imagereward.CheckpointError, match="truncated or corrupt"):
        read_state_dict(tmp_path / "ImageReward.pt")


def test_safetensors_checkpoint_gives_the_same_scores(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = torch.load(PARITY / "ImageReward.pt", weights_only=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "ImageReward.safetensors"))
    for name in ("med_config.json", "vision_config.json"):
        shutil.copy(PARITY / name, tmp_path)
    model = imagereward.load(str(tmp_path), device="cpu")
    case = EXPECTED["scores"][0]
    name = EXPECTED["images"][0]
    assert abs(model.score(case["prompt"], image_path(name)) - case["scores"][name]) <= 1e-4


def test_checkpoint_file_with_configs_passed_explicitly() -> None:
    model = imagereward.load(
        PARITY / "ImageReward.pt",
        device="cpu",
        med_config=PARITY / "med_config.json",
        vision_config=PARITY / "vision_config.json",
    )
    assert model.config.vision.width == 128 and model.config.text.hidden_size == 64


def test_wrong_med_config_names_the_mismatch(tmp_path: Path) -> None:
    shutil.copy(PARITY / "ImageReward.pt", tmp_path)
    (tmp_path / "med_config.json").write_text((PARITY / "med_config.full.json").read_text())
    shutil.copy(PARITY / "vision_config.json", tmp_path)
    with pytest.raises(imagereward.CheckpointError, match="mis-shaped weights .*med_config.json"):
        imagereward.load(str(tmp_path), device="cpu")


def test_unknown_name_lists_available_models() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'ImageReward-v9'.*available models: \['ImageReward-v1.0'"):
        imagereward.load("ImageReward-v9")


def test_folder_without_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="expected ImageReward.pt"):
        imagereward.load(str(tmp_path))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"dtype": "fp8"}, "unknown dtype 'fp8'; use one of"), ({"device": "gpu"}, "unknown device 'gpu'; use 'cpu'")],
)
def test_bad_device_or_dtype_names_valid_choices(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        imagereward.load(str(PARITY), **kwargs)


def test_loading_leaves_no_meta_tensors_and_keeps_head_float32() -> None:
    model = imagereward.load(str(PARITY), device="cpu", dtype="bf16")
    assert model.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in model.head.parameters())
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    assert not model.training


def test_original_layout_round_trip() -> None:
    from imagereward.model.checkpoint import to_original_layout

    original = torch.load(PARITY / "ImageReward.pt", weights_only=True)
    kept = {k: v for k, v in original.items() if k not in IGNORED_KEYS}
    assert to_original_layout(convert_state_dict(original)) == kept


def test_original_keyword_name_still_works() -> None:
    model = imagereward.load(name=str(PARITY), device="cpu")
    assert model.config.vision.width == 128


def test_released_pages_of_a_mapped_checkpoint_read_back_unchanged(tmp_path: Path) -> None:
    from imagereward.model.checkpoint import is_memory_mapped, release_pages

    big = {"w": torch.arange(1 << 20, dtype=torch.float32).reshape(1024, 1024)}
    torch.save(big, tmp_path / "big.pt")
    assert is_memory_mapped(tmp_path / "big.pt")
    state = read_state_dict(tmp_path / "big.pt")
    before = state["w"].clone()
    release_pages(state["w"])
    assert torch.equal(state["w"], before)


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_half_precision_loading_keeps_the_weights(dtype: str) -> None:
    model = imagereward.load(str(PARITY), device="cpu", dtype=dtype)
    original = torch.load(PARITY / "ImageReward.pt", weights_only=True)
    ours = model.state_dict()
    for key, value in convert_state_dict(original).items():
        want = value.to(torch.float32 if key.startswith("head.") else ours[key].dtype)
        assert torch.equal(ours[key], want), key


def test_load_names_the_files_own_key(tmp_path) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(PARITY, folder, ignore=shutil.ignore_patterns("images", "*.npz"))
    state = torch.load(folder / "ImageReward.pt", weights_only=True)
    del state["mlp.layers.7.weight"]
    state["blip.visual_encoder.cls_token"] = torch.zeros(1, 1, 3)
    torch.save(state, folder / "ImageReward.pt")
    with pytest.raises(imagereward.CheckpointError) as e:
        imagereward.load(str(folder), device="cpu")
    assert "missing keys [mlp.layers.7.weight]" in str(e.value)
    assert "mis-shaped weights [blip.visual_encoder.cls_token: checkpoint (1, 1, 3)" in str(e.value)
