"""Which parameters train: the original's partial freezing (`train/src/ImageReward.py`'s `__init__`), quirks
included, or LoRA adapters (peft) on both encoders.

The original's rule, in order:
1. with `fix_base`, both encoders freeze whole (only the head trains);
2. every parameter whose name holds `_proj` freezes (only BLIP's contrastive projections, which this package does
   not load: nothing here);
3. walk the text encoder's parameters in order, freezing each, and stop right after the first whose name holds
   `layer.<int(L * fix_rate)>`; then the ViT's likewise with `blocks.<int(D * fix_rate)>`.
So the boundary layer's first parameter freezes too, the match is a substring, `int()` truncates, and with no
match the whole encoder freezes. The original hard-codes L = 12 and D = 24 (ViT-L); here they are the model's own
depths, which are those at full size (the tiny test models have 2 of each).
"""

from __future__ import annotations

from torch import nn

from ..errors import InputError
from .config import TrainConfig

LORA_TEXT = ("query", "key", "value", "dense")
LORA_VISION = ("qkv", "proj", "fc1", "fc2")


def freeze_as_original(model: nn.Module, config: TrainConfig) -> None:
    """The original's freezing (see the module doc) on an `ImageRewardModel`; everything else trains."""
    model.requires_grad_(True)
    if config.fix_base:
        model.text_encoder.requires_grad_(False)
        model.visual_encoder.requires_grad_(False)
    if config.fix_rate > 0:
        text_layers = model.config.text.num_hidden_layers
        blocks = model.config.vision.depth
        _freeze_until(model.text_encoder, f"layer.{int(text_layers * config.fix_rate)}")
        _freeze_until(model.visual_encoder, f"blocks.{int(blocks * config.fix_rate)}")


def _freeze_until(encoder: nn.Module, boundary: str) -> None:
    for name, parameter in encoder.named_parameters():
        parameter.requires_grad_(False)
        if boundary in name:
            break


def add_lora(model: nn.Module, config: TrainConfig) -> None:
    """LoRA adapters (peft; rank and alpha from the config) on both encoders' attention and MLP projections;
    the encoders' own weights frozen, the head trained whole."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise InputError("LoRA needs peft, in the training extra: pip install -e .[train]") from None

    model.requires_grad_(False)
    alpha = config.lora_alpha or config.lora_rank
    for encoder, targets in ((model.text_encoder, LORA_TEXT), (model.visual_encoder, LORA_VISION)):
        lora = LoraConfig(r=config.lora_rank, lora_alpha=alpha, target_modules=list(targets), init_lora_weights=True)
        inject_adapter_in_model(lora, encoder)
    for name, parameter in model.named_parameters():
        if "lora_" in name or name.startswith("head."):
            parameter.requires_grad_(True)


def trainable(model: nn.Module) -> list[str]:
    """The names of the parameters that train, in `named_parameters()` order."""
    return [name for name, p in model.named_parameters() if p.requires_grad]


def first_trained_block(model: nn.Module) -> int:
    """The first ViT block with a parameter that trains (its depth if none; 0 if anything below the blocks
    trains): the blocks below it are frozen, and their output can be cached."""
    vit = model.visual_encoder
    for name, parameter in vit.named_parameters():
        if not parameter.requires_grad:
            continue
        if not name.startswith("blocks."):
            return 0 if not name.startswith("norm") else len(vit.blocks)
        return int(name.split(".")[1])
    return len(vit.blocks)
