"""ReFL: fine-tune a diffusion model so that ImageReward prefers its images, step for step the original trainer
(`ImageReward/ReFL.py`) on today's diffusers and accelerate.

    from imagereward.refl import ReFLConfig, ReFLTrainer

    trainer = ReFLTrainer("CompVis/stable-diffusion-v1-4", config=ReFLConfig.original())  # the published reward
    out = trainer.step(["a photo of a cat"] * 2)
    trainer.save("refl-out")

Needs the training extra (`pip install -e .[train]`: diffusers, accelerate, peft).
"""

from __future__ import annotations

from .config import ReFLConfig
from .prompts import load_prompts
from .trainer import ReFLTrainer, StepOutput

__all__ = ["ReFLConfig", "ReFLTrainer", "StepOutput", "load_prompts"]
