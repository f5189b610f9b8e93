"""The learning rate, as the original's `AnnealingLR` (`train/src/config/learning_rates.py`, from GLM) sets it.

With N optimizer steps in the schedule, W = warmup * N (it may be fractional) and E = N - W, the optimizer step
that follows t scheduler steps (t = 0 for the first) runs at:
- `lr * t / W` while W > 0 and t <= W (so with any warm-up the first step runs at lr 0, as the original's);
- else, with s = min(1, (t - W) / E): cosine `lr * ((cos(pi s) + 1) / 2 * (1 - ratio) + ratio)`, linear
  `lr - lr * (1 - ratio) * s`, constant `lr`.
"""

from __future__ import annotations

import math

from .config import TrainConfig


def schedule_steps(config: TrainConfig, batches_per_epoch: int) -> int:
    """N: `total_steps`, else the original's `epochs * batches // accumulation_steps` (at least 1)."""
    if config.total_steps is not None:
        return max(1, config.total_steps)
    return max(1, config.epochs * batches_per_epoch // config.accumulation_steps)


def lr_at(config: TrainConfig, t: int, steps: int) -> float:
    """The learning rate of the optimizer step after `t` scheduler steps, of `steps` in all (see the module doc)."""
    start = float(config.lr)
    if config.schedule == "constant":
        return start
    warmup = config.warmup * steps
    if warmup > 0 and t <= warmup:
        return start * t / warmup
    decay = min(1.0, (t - warmup) / (steps - warmup)) if steps > warmup else 1.0
    if config.schedule == "linear":
        return start - start * (1 - config.decay_ratio) * decay
    return start * ((math.cos(math.pi * decay) + 1) / 2 * (1 - config.decay_ratio) + config.decay_ratio)
