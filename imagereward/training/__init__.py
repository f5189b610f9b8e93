"""Training the reward model: ImageReward fine-tuned on preference pairs by the original's recipe
(`train/` of THUDM/ImageReward), exactly, and what a user of 2026 expects beside it (LoRA, mixed precision,
cached frozen features, a held-out agreement check, resume, trackers). Needs the `train` extra for LoRA only.

    from imagereward.training import RewardTrainer, TrainConfig
    trainer = RewardTrainer(imagereward.load("ImageReward-v1.0"), TrainConfig.original(total_steps=100))
    out = trainer.step([(prompt, better_image, worse_image), ...])   # out.loss, out.rewards (B, 2)
    trainer.save("my-judge")                                         # ImageReward.pt + med_config.json
"""

from .config import TrainConfig
from .pairs import Pair, Pairs, read_any, read_rankings, read_table, read_verdicts
from .trainer import RewardTrainer, TrainStep

__all__ = [
    "Pair",
    "Pairs",
    "RewardTrainer",
    "TrainConfig",
    "TrainStep",
    "read_any",
    "read_rankings",
    "read_table",
    "read_verdicts",
]
