"""The reward model's training step, as the original's (`train/src/train.py` with `--rank_pair`, and
`ImageReward.encode_pair` / `forward`):

1. each pair's better and worse images preprocessed as for scoring (no augmentation) and the prompt's 35 tokens;
2. the better and the worse images through the ViT, each through the text encoder (cross-attending to its own
   image) with the prompt, the CLS feature cast to float32 into the head: the **raw** head outputs (the scoring
   normalisation is not part of training), `rewards` (B, 2) = [better, worse];
3. loss: `cross_entropy(rewards, 0)` per pair (= softplus(worse - better)), their mean, divided by the
   accumulation steps on the way back;
4. every `accumulation_steps` micro-batches: Adam (not AdamW, every parameter given, the frozen ones without
   gradients skipped) at the learning rate of `AnnealingLR` (`schedule.py`), then zero_grad.

With `dropout`, the original's training dropout is in place: the head's Dropout 0.2, 0.2, 0.1 after its first three
Linears, BERT's hidden and attention-probability dropout 0.1, and the ViT's DropPath rising from 0 to 0.1 over its
blocks (`create_vit` for ViT-L). At inference (eval mode) all of it is inactive, so scoring is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ImageError, InputError
from ..images import reading as imgs
from .config import TrainConfig
from .freezing import add_lora, first_trained_block, freeze_as_original
from .schedule import lr_at

HEAD_DROPOUT = (0.2, 0.2, 0.1)  # after the head's first three Linears, as the original `MLP`
TEXT_DROPOUT = 0.1  # BERT's hidden and attention-probability dropout (med_config.json)
VIT_DROP_PATH = 0.1  # the ViT's stochastic depth, rising linearly over its blocks (BLIP's create_vit, ViT-L)
PRECISIONS = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TrainStep:
    """What one micro-batch computed: the mean loss (before the division by the accumulation steps), each pair's
    loss, the raw rewards (B, 2: better, worse), the share of pairs ranked right, the learning rate of the
    optimizer step it belongs to, whether the optimizer stepped, the pairs left out (a sentence each); with
    `record`, the CLS features and the gradients before the optimizer step."""

    loss: torch.Tensor
    loss_list: torch.Tensor
    rewards: torch.Tensor
    accuracy: float
    lr: float
    stepped: bool
    skipped: list[str]
    record: dict[str, Any] = field(default_factory=dict)


class FeatureCache:
    """The frozen bottom of the ViT's output per image (the tokens entering its first trained block), kept
    within a byte budget (beyond it, images are encoded again); hits and misses counted."""

    def __init__(self, budget_bytes: float) -> None:
        self.budget = budget_bytes
        self.used = 0
        self.store: dict[str, torch.Tensor] = {}
        self.hits = self.misses = 0

    def get(self, key: str) -> torch.Tensor | None:
        found = self.store.get(key)
        self.hits += found is not None
        self.misses += found is None
        return found

    def put(self, key: str, value: torch.Tensor) -> None:
        size = value.numel() * value.element_size()
        if self.used + size <= self.budget:
            self.store[key] = value
            self.used += size


class RewardTrainer:
    """Fine-tunes an ImageReward model by the original's recipe (see the module doc).

    Args:
        model: an ImageReward model (`imagereward.load` / `RM.load`), or a name or folder `imagereward.load`
            takes; trained in place (float32 master weights; `mixed_precision` runs the encoders under autocast).
        config: the settings (default `TrainConfig.original()`).
        device: where to train (default the model's device, or CUDA when loading by name and one is present).
        total_steps: the schedule's optimizer steps when `config.total_steps` is None (the run gives its own).
        warn: gets a sentence for each pair left out (an image that cannot be read).

    Attributes:
        model: the model being trained. optimizer: Adam. steps: optimizer steps taken. trainable: the names
        of the parameters that train.
    """

    def __init__(
        self,
        model: Any,
        config: TrainConfig | None = None,
        device: str | torch.device | None = None,
        total_steps: int | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config = config or TrainConfig.original()
        self.model = model = _model(model, device)
        if device is not None:
            model.to(device)
        model.to(torch.float32)  # master weights; mixed precision is autocast's
        if config.lora_rank is not None:
            add_lora(model, config)
        else:
            freeze_as_original(model, config)
        if config.dropout:
            _install_dropout(model)
        self.trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=config.lr, betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_eps
        )
        self.schedule_total = config.total_steps or total_steps
        if self.schedule_total is None:
            raise InputError("Give the schedule's length: TrainConfig(total_steps=N), or total_steps=N here.")
        self.steps = 0  # optimizer steps taken (the original's scheduler steps)
        self.micro = 0
        self.warn = warn
        self.first_trained_block = first_trained_block(model)
        # the preprocessed pixels of each image read, as the original's pair store keeps them (uint8 here)
        self.pixels = FeatureCache(config.pixel_cache_gb * 2**30)
        self.cache = FeatureCache(config.cache_gb * 2**30) if config.cache_features else None
        if self.cache is not None and self.first_trained_block == 0:
            self.cache = None  # nothing below the trained part to keep

    @property
    def device(self) -> torch.device:
        return self.model.visual_encoder.cls_token.device

    @property
    def lr(self) -> float:
        """The learning rate of the next optimizer step."""
        return lr_at(self.config, self.steps, self.schedule_total)

    # ----------------------------------------------------------------------------------------------- a step
    def step(self, pairs: Sequence[Any], record: bool = False) -> TrainStep:
        """One micro-batch of `pairs` ((prompt, better, worse) tuples or `Pair`s; images as paths, bytes or
        PIL images), and the optimizer step when it completes an accumulation (see the module doc).

        Raises:
            InputError: no pairs, or none whose images can be read (each named).
        """
        batch, skipped = self._batch(pairs)
        for sentence in skipped:
            if self.warn is not None:
                self.warn(sentence)
        if batch is None:
            raise InputError("No pair of this batch could be read: " + "; ".join(skipped[:3]))
        ids, mask, better, worse, keys = batch
        config, model = self.config, self.model
        model.train()
        lr = self.lr
        rewards, features = self._rewards(ids, mask, better, worse, keys)
        loss_list = F.cross_entropy(
            rewards, torch.zeros(len(rewards), dtype=torch.long, device=rewards.device), reduction="none"
        )
        loss = loss_list.mean()
        (loss / config.accumulation_steps).backward()
        self.micro += 1
        kept: dict[str, Any] = {}
        if record:
            kept["features"] = features.detach()
        stepped = self.micro % config.accumulation_steps == 0
        if stepped:
            if record:
                kept["grad"] = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.optimizer.step()
            self.optimizer.zero_grad()
            self.steps += 1
            _forget_scores(model)
        accuracy = float((rewards[:, 0] > rewards[:, 1]).float().mean())
        return TrainStep(loss.detach(), loss_list.detach(), rewards.detach(), accuracy, lr, stepped, skipped, kept)

    @torch.no_grad()
    def evaluate(self, pairs: Sequence[Any], batch_size: int | None = None) -> tuple[torch.Tensor, list[str]]:
        """The raw rewards (N, 2: better, worse) of `pairs` in eval mode (no dropout), as the original's
        validation pass; pairs whose images cannot be read are left out (named in the second value)."""
        model, size = self.model, batch_size or self.config.batch_size
        was_training = model.training
        model.eval()
        out, skipped = [], []
        try:
            for start in range(0, len(pairs), size):
                batch, missed = self._batch(pairs[start : start + size])
                skipped += missed
                if batch is not None:
                    ids, mask, better, worse, keys = batch
                    out.append(self._rewards(ids, mask, better, worse, keys)[0].float().cpu())
        finally:
            model.train(was_training)
        return (torch.cat(out) if out else torch.empty(0, 2)), skipped

    def _rewards(self, ids, mask, better, worse, keys):  # noqa: ANN001, ANN202 - tensors; (rewards (B, 2), features)
        """The better and worse images' raw rewards (B, 2) and the CLS features, under autocast if asked."""
        model, n = self.model, ids.shape[0]
        precision = PRECISIONS.get(self.config.mixed_precision)
        with torch.autocast(self.device.type, dtype=precision, enabled=precision is not None):
            images = self._encode_images(torch.cat([better, worse]), keys)
            features = model.encode_text(torch.cat([ids, ids]), torch.cat([mask, mask]), images)
        raw = _head(model, features.float())
        return torch.stack([raw[:n], raw[n:]], dim=1), features

    def _encode_images(self, pixels: torch.Tensor, keys: list[str]) -> torch.Tensor:
        """The ViT's tokens; with the cache, its frozen bottom is read from the cache (or computed once without
        DropPath and kept) and only the blocks from the first trained one run."""
        model = self.model
        if self.cache is None:
            return model.encode_images(pixels)
        vit, k = model.visual_encoder, self.first_trained_block
        rows: list[torch.Tensor | None] = [self.cache.get(key) if key else None for key in keys]
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            was_training = vit.training
            vit.eval()
            with torch.no_grad():
                bottom = _vit_bottom(vit, pixels[missing], k)
            vit.train(was_training)
            for i, row in zip(missing, bottom):
                rows[i] = row
                if keys[i]:
                    self.cache.put(keys[i], row.clone())
        x = torch.stack(rows)  # type: ignore[arg-type]
        for block in vit.blocks[k:]:
            x = block(x)
        return vit.norm(x)

    def _batch(self, pairs: Sequence[Any]):  # noqa: ANN202 - ((ids, mask, better, worse, keys) | None, skipped)
        from ..model.tokenizer import encode_prompt

        if not pairs:
            raise InputError("Give the step a list of (prompt, better image, worse image) pairs.")
        size = self.model.config.vision.image_size
        prompts, better, worse, keys, skipped = [], [], [], [], []
        for number, pair in enumerate(pairs):
            prompt, good, bad, source = _unpack(pair, number)
            try:
                pixels = [self._pixels(image, size) for image in (good, bad)]
            except ImageError as e:
                skipped.append(f"{source}: {e} (the pair left out)")
                continue
            prompts.append(prompt)
            better.append(pixels[0][0])
            worse.append(pixels[1][0])
            keys += [pixels[0][1], pixels[1][1]]
        if not prompts:
            return None, skipped
        tokens = [encode_prompt(p) for p in prompts]
        device = self.device
        ids = torch.cat([t.input_ids for t in tokens]).to(device)
        mask = torch.cat([t.attention_mask for t in tokens]).to(device)
        to = lambda rows: imgs.normalize(torch.stack(rows).to(device))  # noqa: E731
        order = keys[0::2] + keys[1::2]  # better images first, as the pixels are stacked
        return (ids, mask, to(better), to(worse), order), skipped

    def _pixels(self, image: Any, size: int) -> tuple[torch.Tensor, str]:
        """An image's preprocessed uint8 pixels (read once, then from memory) and its key.

        Raises:
            ImageError: the image cannot be read (named).
        """
        key = _key(image)
        found = self.pixels.get(key) if key else None
        if found is None:
            found = imgs.load_pixels(image, _name(image), size)
            if key:
                self.pixels.put(key, found)
        return found, key

    # ----------------------------------------------------------------------------------------------- saving
    def save(self, folder: str | Path) -> Path:
        """`folder/ImageReward.pt` (the original's keys; LoRA adapters merged into the weights) and
        `med_config.json` (and `vision_config.json` when the ViT is not ViT-L/16), a folder `imagereward.load`,
        `RM.load`, the page (`IMAGEREWARD_MODEL`) and the command line read."""
        from ..model.checkpoint import to_original_layout

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = _merged_state(self.model)
        torch.save(to_original_layout(state), folder / "ImageReward.pt")
        config = self.model.config
        (folder / "med_config.json").write_text(json.dumps(med_config(config), indent=1) + "\n", encoding="utf-8")
        from ..model.config import VisionConfig

        if config.vision != VisionConfig():
            vision = {k: getattr(config.vision, k) for k in VisionConfig.__dataclass_fields__}
            (folder / "vision_config.json").write_text(json.dumps(vision, indent=1) + "\n", encoding="utf-8")
        return folder

    def state_dict(self) -> dict[str, Any]:
        """What resuming needs: the trainable weights, Adam's state, the step counters."""
        weights = {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}
        return {"weights": weights, "optimizer": self.optimizer.state_dict(), "steps": self.steps, "micro": self.micro}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        parameters = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in state["weights"].items():
                parameters[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps, self.micro = int(state["steps"]), int(state["micro"])
        _forget_scores(self.model)


def med_config(config: Any) -> dict[str, Any]:
    """The original's `med_config.json` (a BERT config) for a model config."""
    t = config.text
    return {
        "architectures": ["BertModel"],
        "attention_probs_dropout_prob": TEXT_DROPOUT,
        "hidden_act": t.hidden_act,
        "hidden_dropout_prob": TEXT_DROPOUT,
        "hidden_size": t.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": t.intermediate_size,
        "layer_norm_eps": t.layer_norm_eps,
        "max_position_embeddings": t.max_position_embeddings,
        "model_type": "bert",
        "num_attention_heads": t.num_attention_heads,
        "num_hidden_layers": t.num_hidden_layers,
        "pad_token_id": t.pad_token_id,
        "type_vocab_size": 2,
        "vocab_size": t.vocab_size,
        "encoder_width": config.vision.width,
        "add_cross_attention": True,
    }


def _model(model: Any, device: str | torch.device | None) -> nn.Module:
    """The ImageReward model as given, or loaded by name or folder (in float32)."""
    if isinstance(model, nn.Module):
        if not hasattr(model, "encode_text") or not hasattr(model, "head"):
            raise InputError(f"{type(model).__name__} is not an ImageReward model: train one `imagereward.load` gives")
        return model
    from ..judges.imagereward import load

    return load(model, device=device, dtype=torch.float32)


def _install_dropout(model: nn.Module) -> None:
    """The original's training dropout (see the module doc), inactive in eval mode."""
    from timm.layers import DropPath

    model.head_dropout = HEAD_DROPOUT
    for module in model.text_encoder.modules():
        if isinstance(module, nn.Dropout):
            module.p = TEXT_DROPOUT
    blocks = model.visual_encoder.blocks
    rates = [x.item() for x in torch.linspace(0, VIT_DROP_PATH, len(blocks))]
    for block, rate in zip(blocks, rates):
        if rate > 0:
            block.drop_path1 = DropPath(rate).train(block.training)  # a new module in the model's mode
            block.drop_path2 = DropPath(rate).train(block.training)


def _head(model: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """The head's raw output (B,), with the original's dropout after its first three Linears in training."""
    rates = getattr(model, "head_dropout", ())
    x = features
    for k, layer in enumerate(model.head):
        x = layer(x)
        if k < len(rates):
            x = F.dropout(x, rates[k], training=model.training)
    return x.squeeze(-1)


def _vit_bottom(vit: nn.Module, pixels: torch.Tensor, k: int) -> torch.Tensor:
    """timm's `forward_features` up to (not including) block `k`."""
    x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(pixels))))
    for block in vit.blocks[:k]:
        x = block(x)
    return x


def _merged_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights under its own names, LoRA adapters (if any) merged in and their tensors left out."""
    lora = [m for m in model.modules() if hasattr(m, "merge") and hasattr(m, "lora_A")]
    for module in lora:
        module.merge()
    try:
        state = {}
        for name, value in model.state_dict().items():
            if "lora_" in name:
                continue
            state[name.replace(".base_layer.", ".")] = value.detach().clone()
        return state
    finally:
        for module in lora:
            module.unmerge()


def _forget_scores(model: nn.Module) -> None:
    """The scoring caches hold what the old weights computed: cleared after each update."""
    cache = getattr(model, "embedding_cache", None)
    if cache is not None:
        cache.clear()
    if hasattr(model, "_float32_twin"):
        model._float32_twin = None
        model._graphs = None


def _unpack(pair: Any, number: int) -> tuple[str, Any, Any, str]:
    source = getattr(pair, "source", "") or f"pair {number}"
    if hasattr(pair, "better"):
        return pair.prompt, pair.better, pair.worse, source
    try:
        prompt, better, worse = pair
    except (TypeError, ValueError):
        raise InputError(f"pair {number}: give (prompt, better image, worse image)") from None
    if not isinstance(prompt, str):
        raise InputError(f"pair {number}: the prompt must be text")
    return prompt, better, worse, source


def _name(image: Any) -> str:
    return str(image) if isinstance(image, (str, os.PathLike)) else imgs.describe(image)


def _key(image: Any) -> str:
    """An image's identity for the feature cache: a file by path, size and time; bytes by their hash; "" for
    other inputs (never cached)."""
    if isinstance(image, (str, os.PathLike)):
        stat = os.stat(image)
        return f"{os.fspath(image)}:{stat.st_size}:{stat.st_mtime_ns}"
    if isinstance(image, (bytes, bytearray, memoryview)):
        return hashlib.sha256(image).hexdigest()
    return ""
