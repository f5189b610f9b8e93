"""The reward model's training settings: the original training code's flags (`train/src/config/options.py` and
`train/scripts/train_one_node.sh`, the run that trained the published ImageReward), one record, no globals.

`TrainConfig.original()` is `train_one_node.sh`'s recipe: 64 pairs an optimizer step (4 GPUs x 4 pairs x 4
accumulation steps; here `batch_size=16, accumulation_steps=4` on one device, the same mean), 10 epochs, lr 1e-5,
cosine decay without warm-up, the lower 70% of both encoders frozen, dropout on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("no", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """The original's flags under clearer names (the original's in brackets), and what it lacks.

    Attributes:
        lr: Adam's learning rate at the top of the schedule [`--lr`].
        warmup: the warm-up's share of the optimizer steps [`--warmup`]; with any warm-up the first step runs
            at lr 0, as the original's `AnnealingLR` (its moments still advance).
        schedule: "cosine", "linear" or "constant" [`--lr-decay-style`].
        decay_ratio: the schedule ends at `decay_ratio * lr` [`--lr-decay-ratio`].
        total_steps: optimizer steps the schedule spans; None: every epoch's, as the original
            (`epochs * batches // accumulation_steps`) [`--lr-decay-iters`].
        batch_size: pairs a micro-batch [`--batch_size` x GPUs].
        accumulation_steps: micro-batches an optimizer step (the loss divided by it) [`--accumulation_steps`].
        epochs: passes over the training pairs [`--epochs`].
        fix_rate: the share of both encoders frozen from the bottom, by the original's rule (`freezing.py`)
            [`--fix_rate`]; 0 trains everything.
        fix_base: freeze both encoders whole, only the head trains [`--fix_base`].
        dropout: train with the original's dropout (the head's 0.2/0.2/0.1, BERT's 0.1, the ViT's DropPath 0 to
            0.1); False: none (the parity fixture's steps were recorded so).
        adam_beta1, adam_beta2, adam_eps: Adam's (not AdamW: no weight decay) [`--adam-*`].
        seed: the pairs' order, the held-out split and dropout [`--seed`].
        lora_rank: train LoRA adapters (peft) on both encoders' attention and MLP projections instead of the
            original's partial freezing (the head trains whole); None: the original's freezing.
        lora_alpha: the adapters' alpha (default the rank).
        mixed_precision: "no", "bf16" or "fp16": the encoders under autocast (the head in float32).
        cache_features: keep the frozen bottom of the ViT's output per image (the original's `--load_emb`, which
            its code parses but never reads): the next epochs skip it. The frozen blocks then run without
            DropPath (as at inference); exact with `dropout=False`.
        cache_gb: the cache's budget in memory; images beyond it are encoded again.
        pixel_cache_gb: the preprocessed pixels of each image read are kept in memory (uint8, 150 KB an image at
            224 px), as the original's pair store keeps them, within this budget; beyond it they are read again.
        heldout: the share of prompts held out (never trained on) for the agreement check; 0: none.
        patience: stop after this many evaluations without a better held-out loss; None: never.
        eval_every: also evaluate every N optimizer steps (the original: `--valid_per_epoch`); None: each epoch.
        checkpoint_every: optimizer steps between saved states (resume); None: each epoch.
    """

    lr: float = 1e-5
    warmup: float = 0.0
    schedule: str = "cosine"
    decay_ratio: float = 0.0
    total_steps: int | None = None
    batch_size: int = 16
    accumulation_steps: int = 4
    epochs: int = 10
    fix_rate: float = 0.7
    fix_base: bool = False
    dropout: bool = True
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    seed: int = 1234
    lora_rank: int | None = None
    lora_alpha: float | None = None
    mixed_precision: str = "no"
    cache_features: bool = False
    cache_gb: float = 8.0
    pixel_cache_gb: float = 4.0
    heldout: float = 0.1
    patience: int | None = None
    eval_every: int | None = None
    checkpoint_every: int | None = None

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}")
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(f"mixed_precision {self.mixed_precision!r}: use one of {', '.join(PRECISIONS)}")
        if not 0 <= self.fix_rate <= 1:
            raise ValueError(f"fix_rate {self.fix_rate}: a share between 0 and 1")
        if not 0 <= self.heldout < 1:
            raise ValueError(f"heldout {self.heldout}: a share of the prompts, at least 0 and below 1")
        if not 0 <= self.warmup <= 1:
            raise ValueError(f"warmup {self.warmup}: a share of the optimizer steps between 0 and 1")
        for name in ("batch_size", "accumulation_steps", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lora_rank is not None and self.lora_rank < 1:
            raise ValueError(f"lora_rank must be at least 1 (or None: the original's freezing), got {self.lora_rank}")

    @classmethod
    def original(cls, **changes: Any) -> TrainConfig:
        """`train_one_node.sh`'s recipe (see the module doc), with `changes`.

        Raises:
            TypeError: a name that is not a field (the message lists them).
        """
        names = [f.name for f in fields(cls)]
        unknown = [k for k in changes if k not in names]
        if unknown:
            raise TypeError(f"unknown training settings {unknown}; the settings are: {', '.join(names)}")
        return replace(cls(), **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
