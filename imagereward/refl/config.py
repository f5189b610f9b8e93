"""ReFL's settings: the original trainer's flags under their names and with their defaults (`ImageReward/ReFL.py`'s
`parse_args`), one record, no globals.

`ReFLConfig.original()` is the original's defaults exactly; `ReFLConfig(...)` takes any of them by name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

MIXED_PRECISION = ("no", "fp16", "bf16")
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")


@dataclass(frozen=True)
class ReFLConfig:
    """The original's flags (same names, same defaults), and the rollout it hard-codes, as fields.

    Attributes:
        learning_rate, adam_beta1, adam_beta2, adam_weight_decay, adam_epsilon: AdamW's (the original's
            `torch.optim.AdamW` over every UNet parameter).
        grad_scale: the loss is `relu(2 - reward).mean() * grad_scale` (the original multiplies, though its help
            says "divided").
        max_grad_norm: gradients clipped to this total 2-norm before each optimizer step.
        train_batch_size: prompts per step (the original draws this many initial latents, whatever the batch).
        gradient_accumulation_steps: micro-steps per optimizer step (the loss divided by it, as accelerate does).
        mixed_precision: "no", "fp16" or "bf16" (the VAE, text encoder and reward model cast to it, as the
            original casts them).
        lr_scheduler, lr_warmup_steps: diffusers' `get_scheduler` (the original's `constant`, no warm-up).
        max_train_steps: optimizer steps of a run.
        seed: seeds Python's `random` (the trained step's draw) and torch's generator.
        num_inference_steps: the rollout's steps (the original: 40; DDPM, or flow matching's Euler steps).
        mid_timestep_range: the trained step's index, drawn from this range, both ends included (the original:
            30 to 39).
        latent_size: the latents' side; None: the original's 64 (512 px, whatever `--resolution` says) for
            Stable Diffusion 1.x/2.x, the model's own size for SDXL and SD3 (1024 px).
        checkpointing_steps: optimizer steps between saved states.
        gradient_checkpointing: recompute the UNet's activations in the backward pass (less memory, the same
            gradients).
        use_ema: keep an exponential moving average of the UNet's weights (diffusers' `EMAModel`, `ema_decay`),
            saved in place of the trained weights, as the original's `--use_ema`.
        lora_rank: train LoRA adapters of this rank on the UNet's attention (peft) instead of the whole UNet, and
            save only the adapter (`load_lora_weights` reads it); None (the original's ReFL.py): the whole UNet.
        lora_alpha: the adapters' alpha (default the rank, as the original's SDXL-LoRA script sets it).
        lora_target_modules: the modules adapted (the original SDXL-LoRA script's: the attention projections).
        guidance_scale: classifier-free guidance in the rollout (an unconditional call on the empty prompt beside
            each conditional one, `uncond + scale * (cond - uncond)`); 1 (the original): no guidance, one call.
        draft_k: the gradient window: None (the original, ReFL): one late step, its `pred_original_sample`
            decoded; K: DRaFT-K, the rollout to its end with gradients through its last K steps, the final
            latents decoded.
        pretrain_loss: alternate each ReFL update with an update on the denoising loss over a dataset's images
            (the paper's algorithm; the original's SDXL script's `--apply_pre_loss`, which cannot run as written):
            `pretrain_loss_weight * mse(unet(x_t, t, text), target)`, t drawn from the training timesteps.
    """

    learning_rate: float = 1e-5
    grad_scale: float = 1e-3
    max_grad_norm: float = 1.0
    train_batch_size: int = 2
    gradient_accumulation_steps: int = 4
    mixed_precision: str = "no"
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    max_train_steps: int = 100
    seed: int | None = None
    num_inference_steps: int = 40
    mid_timestep_range: tuple[int, int] = (30, 39)
    latent_size: int | None = None
    checkpointing_steps: int = 100
    gradient_checkpointing: bool = False
    use_ema: bool = False
    ema_decay: float = 0.9999
    lora_rank: int | None = None
    lora_alpha: float | None = None
    lora_target_modules: tuple[str, ...] = ("to_k", "to_q", "to_v", "to_out.0")
    guidance_scale: float = 1.0
    draft_k: int | None = None
    pretrain_loss: bool = False
    pretrain_loss_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision {self.mixed_precision!r}: use one of {', '.join(MIXED_PRECISION)}")
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise ValueError(f"lr_scheduler {self.lr_scheduler!r}: use one of {', '.join(LR_SCHEDULERS)}")
        low, high = self.mid_timestep_range
        if not 0 <= low <= high < self.num_inference_steps:
            raise ValueError(
                f"mid_timestep_range {self.mid_timestep_range}: two indices into the {self.num_inference_steps} "
                "inference steps, the first not above the second"
            )
        if self.draft_k is not None and not 1 <= self.draft_k <= self.num_inference_steps:
            raise ValueError(
                f"draft_k {self.draft_k}: between 1 and the {self.num_inference_steps} steps (or None: ReFL)"
            )
        if self.lora_rank is not None and self.lora_rank < 1:
            raise ValueError(f"lora_rank must be at least 1 (or None: the whole UNet trains), got {self.lora_rank}")
        for name in ("train_batch_size", "gradient_accumulation_steps", "max_train_steps", "num_inference_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    @classmethod
    def original(cls, **changes: Any) -> ReFLConfig:
        """The original trainer's defaults (its `parse_args()` with no flags), with `changes`.

        Raises:
            TypeError: a name that is not one of the fields (the message lists them).
        """
        return cls.from_dict(changes)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ReFLConfig:
        """A config from a mapping of field names (the original's flag names, without the dashes).

        Raises:
            TypeError: a name that is not one of the fields (the message lists them).
        """
        names = [f.name for f in fields(cls)]
        unknown = [k for k in values if k not in names]
        if unknown:
            raise TypeError(f"unknown ReFL settings {unknown}; the settings are: {', '.join(names)}")
        return replace(cls(), **values)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
