"""A ReFL run: the original's loop around its step (`ReFLTrainer.step`): shuffled batches of prompts, an optimizer
step every `gradient_accumulation_steps` of them, accelerate's state saved every `checkpointing_steps`
(`checkpoint-<step>`, as the original names it: the UNet, AdamW, the schedule and every RNG), resumed from the
latest one, and the tuned pipeline saved at the end, as the original saves it.

Batches are drawn as the original's `DataLoader(shuffle=True)`, but with a generator of their own seeded per epoch
(`seed + epoch`), so a resumed run meets the same prompts in the same order; a last partial batch is dropped
(the original draws `train_batch_size` latents whatever the batch, and would fail on it). Each optimizer step's
loss, rewards and gradient norm go to `log.jsonl` in the output folder.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..errors import InputError
from .trainer import ReFLTrainer
from .validation import Validation, hacking, log_validation, save_grid, validate

CHECKPOINT = re.compile(r"checkpoint-(\d+)")


@dataclass
class ValidationPlan:
    """What to validate with: the prompts, the judges (name -> loaded judge; the trained reward's name among
    them), the seed, and every how many steps."""

    prompts: list[str]
    judges: dict[str, Any]
    trained: str
    every: int = 100
    seed: int = 0


class _Watch:
    """Validates, logs, saves the grid, and compares with the first validation of the run."""

    def __init__(self, trainer: ReFLTrainer, plan: ValidationPlan, output_dir: Path, warn) -> None:  # noqa: ANN001
        self.trainer, self.plan, self.output_dir, self.warn = trainer, plan, output_dir, warn
        self.first: Validation | None = None

    def __call__(self, step: int) -> None:
        plan = self.plan
        result = validate(self.trainer, plan.prompts, plan.judges, plan.seed, step)
        self.first = self.first or result
        warnings = hacking(self.first, result, plan.trained)
        save_grid(result, plan.prompts, self.output_dir / "validation")
        log_validation(result, self.output_dir, warnings)
        if self.trainer.accelerator.log_with:
            self.trainer.accelerator.log({f"validation/{name}": mean for name, mean in result.means.items()}, step=step)
        for sentence in warnings:
            if self.warn is not None:
                self.warn(sentence)


def latest_checkpoint(output_dir: str | Path) -> tuple[Path, int] | None:
    """The latest `checkpoint-<step>` folder in `output_dir` and its step, or None."""
    found = [
        (int(m.group(1)), p)
        for p in Path(output_dir).glob("checkpoint-*")
        if p.is_dir() and (m := CHECKPOINT.fullmatch(p.name))
    ]
    return (max(found)[1], max(found)[0]) if found else None


def check_output(output_dir: str | Path, resume: bool) -> None:
    """Refuses, before any model loads, an output folder a new run would overwrite, or a resume with nothing to
    resume.

    Raises:
        InputError: the sentence saying what to do.
    """
    path = Path(output_dir)
    if resume:
        if latest_checkpoint(path) is None:
            raise InputError(f"--resume: {path} holds no checkpoint-<step> folder to resume from")
    elif path.exists() and any(path.iterdir()):
        raise InputError(f"{path} exists and is not empty: pass --resume to continue its run, or give a new folder")


def train(
    trainer: ReFLTrainer,
    prompts: Sequence[str],
    output_dir: str | Path,
    resume: bool = False,
    progress: Callable[[int], None] | None = None,
    pretrain: Sequence[tuple[str, Path]] = (),
    validation: ValidationPlan | None = None,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Runs `trainer.config.max_train_steps` optimizer steps over `prompts` (see the module doc); with the
    config's `pretrain_loss`, each ReFL update follows an update on the pretraining loss over the next batch of
    `pretrain` ((caption, image) pairs, in an order seeded per epoch, as the prompts'); returns the tuned
    pipeline's folder (`output_dir`). With `validation`, the model is validated before the first step, every
    `validation.every` steps and at the end (`validation.py`); `warn` gets each reward-hacking sentence.

    Raises:
        InputError: fewer prompts (or pretraining pairs) than a batch, or nothing to resume.
    """
    config = trainer.config
    if config.pretrain_loss and len(pretrain) < config.train_batch_size:
        raise InputError(
            f"the pretraining loss needs at least a batch of {config.train_batch_size} images with captions"
        )
    output_dir = Path(output_dir)
    if len(prompts) < config.train_batch_size:
        raise InputError(f"{len(prompts)} prompts, fewer than a batch of {config.train_batch_size}: give more")
    step = 0
    if resume:
        found = latest_checkpoint(output_dir)
        if found is None:
            raise InputError(f"{output_dir} holds no checkpoint-<step> folder to resume from")
        trainer.accelerator.load_state(str(found[0]))
        step = found[1]
    output_dir.mkdir(parents=True, exist_ok=True)
    batches_per_epoch = len(prompts) // config.train_batch_size
    micro = step * config.gradient_accumulation_steps
    epoch, skip = divmod(micro, batches_per_epoch)
    seed = config.seed if config.seed is not None else 0
    tracking = bool(trainer.accelerator.log_with)
    if tracking:
        trainer.accelerator.init_trackers("imagereward-refl", config=_flat(config.as_dict()))
    watch = _Watch(trainer, validation, output_dir, warn) if validation is not None else None
    if watch is not None:
        watch(step)
    with open(output_dir / "log.jsonl", "a", encoding="utf-8") as log:
        while step < config.max_train_steps:
            order = torch.randperm(len(prompts), generator=torch.Generator().manual_seed(seed + epoch)).tolist()
            for b in range(skip, batches_per_epoch):
                batch = [prompts[i] for i in order[b * config.train_batch_size : (b + 1) * config.train_batch_size]]
                if config.pretrain_loss:
                    side = trainer.latent_size * trainer.family.vae_scale_factor
                    texts, images = _pretrain_batch(
                        pretrain, step * config.gradient_accumulation_steps + b, config, seed, side
                    )
                    trainer.pretrain_step(texts, images)
                out = trainer.step(batch)
                if out.grad_norm is None:
                    continue
                step += 1
                line = {
                    "step": step,
                    "loss": out.loss.item(),
                    "rewards": out.rewards.tolist(),
                    "grad_norm": out.grad_norm,
                }
                log.write(json.dumps(line) + "\n")
                log.flush()
                if tracking:
                    mean_reward = sum(line["rewards"]) / len(line["rewards"])
                    trainer.accelerator.log(
                        {"loss": line["loss"], "reward": mean_reward, "grad_norm": out.grad_norm}, step=step
                    )
                if progress is not None:
                    progress(1)
                if step % config.checkpointing_steps == 0 or step == config.max_train_steps:
                    trainer.accelerator.save_state(str(output_dir / f"checkpoint-{step}"))
                if watch is not None and (step % validation.every == 0 or step == config.max_train_steps):
                    watch(step)
                if step >= config.max_train_steps:
                    break
            epoch, skip = epoch + 1, 0
    if tracking:
        trainer.accelerator.end_training()
    return trainer.save(output_dir)


def _pretrain_batch(pairs, index: int, config, seed: int, side: int):  # noqa: ANN001, ANN202 - pairs, ReFLConfig; (texts, images)
    """The `index`-th batch of (caption, image) pairs, in an order seeded per pass over them."""
    from .pretrain_data import pretrain_images

    per_pass = len(pairs) // config.train_batch_size
    epoch, b = divmod(index, per_pass)
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed + 7919 * (epoch + 1))).tolist()
    chosen = [pairs[i] for i in order[b * config.train_batch_size : (b + 1) * config.train_batch_size]]
    return [text for text, _ in chosen], pretrain_images([image for _, image in chosen], side)


def _flat(values: dict[str, Any]) -> dict[str, Any]:
    """The config as trackers take it: numbers, text and booleans (tuples and None as text)."""
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in values.items()}
