"""Building and loading the ImageReward network (`load_network`: resolve (hub or local) -> read -> convert keys
-> strict load, on the meta device first so that the checkpoint's tensors are assigned, not copied), and the
device and precision every judge is placed in (`resolve_device`, `resolve_dtype`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import torch

from .checkpoint import (
    convert_key,
    convert_state_dict,
    is_memory_mapped,
    load_converted,
    original_key,
    read_state_dict,
    release_pages,
)
from .config import ModelConfig, read_json, text_config_from_med, vision_config_from_dict
from .kernels import use_onednn_linears
from .network import ImageRewardModel
from .pretrained import resolve

ConfigSource = str | Path | Mapping[str, Any] | None
M = TypeVar("M", bound=ImageRewardModel)

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`None` picks CUDA when available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'") from e


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """`None` is float32 on the CPU (exact mode) and float16 on CUDA."""
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise ValueError(f"unsupported dtype {dtype}; use one of {sorted(_DTYPES)}")
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}")
    return _DTYPES[dtype]


def build_config(med_config: ConfigSource, vision_config: ConfigSource) -> ModelConfig:
    """The architecture from the text (med_config) and vision parts; a missing part takes the published
    ImageReward-v1.0 values (BERT-base, ViT-L/16), as the original falls back to the published med_config."""
    config = ModelConfig()
    if med_config is not None:
        config = dataclasses.replace(config, text=text_config_from_med(read_json(med_config, "med_config")))
    if vision_config is not None:
        config = dataclasses.replace(config, vision=vision_config_from_dict(read_json(vision_config, "vision_config")))
    return config


def load_network(
    build: Callable[[ModelConfig], M],
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    download_root: str | Path | None = None,
    med_config: ConfigSource = None,
    vision_config: ConfigSource = None,
    dtype: str | torch.dtype | None = None,
) -> M:
    """The ImageReward network of a registry name or a local checkpoint, in four steps: resolve (hub or local)
    -> read -> convert keys -> strict load, into the module `build(config)` makes (on the meta device, so that
    the checkpoint's tensors are assigned, not copied); then placed on `device` in `dtype` (the head float32).

    Raises:
        ValueError: unknown name, device or dtype.
        FileNotFoundError: a path that does not exist, or a folder without a checkpoint.
        imagereward.WeightsUnavailableError: the download failed and nothing is cached.
        imagereward.CheckpointError: a corrupt checkpoint, or one whose keys or shapes do not fit.
    """
    target_device = resolve_device(device)
    target_dtype = resolve_dtype(dtype, target_device)
    files = resolve(name_or_path, download_root)
    config = build_config(
        med_config if med_config is not None else files.med_config,
        vision_config if vision_config is not None else files.vision_config,
    )
    raw = read_state_dict(files.weights)
    state = convert_state_dict(raw)
    file_names = {convert_key(k): k for k in raw}  # converted key -> the file's own, for messages
    with torch.device("meta"):
        model = build(config)
    load_converted(model, state, file_key=lambda k: file_names.get(k, original_key(k)))
    del raw
    del state
    _rebuild_buffers(model)
    _place(model, target_device, target_dtype, release=is_memory_mapped(files.weights))
    use_onednn_linears(model.visual_encoder)
    use_onednn_linears(model.text_encoder)
    return model.eval()


def _place(model: ImageRewardModel, device: torch.device, dtype: torch.dtype, release: bool) -> None:
    """Moves and casts the weights one tensor at a time (the head stays float32). With `release` (weights
    memory-mapped from the checkpoint), a tensor that needed a copy gives its original's pages back at once,
    so that loading never holds the whole checkpoint and its converted copy together."""
    head = {id(p) for p in model.head.parameters()}
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is None:
                continue
            placed = param.detach().to(device=device, dtype=torch.float32 if id(param) in head else dtype)
            if placed.data_ptr() == param.data_ptr():
                continue
            module._parameters[name] = torch.nn.Parameter(placed, requires_grad=param.requires_grad)
            if release:
                release_pages(param)
    model.to(device)  # buffers


def _rebuild_buffers(model: ImageRewardModel) -> None:
    """Buffers that are not in the checkpoint are still on the meta device after loading: rebuild them."""
    embeddings = model.text_encoder.embeddings
    positions = model.config.text.max_position_embeddings
    embeddings.position_ids = torch.arange(positions).expand((1, -1))
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    assert not left, f"tensors left on the meta device: {left}"
