"""ReFL (Reward Feedback Learning, the paper's fine-tuning of Stable Diffusion so that ImageReward prefers its
images), step for step the original trainer's (`ImageReward/ReFL.py`), on today's diffusers and accelerate.

One optimizer step (`ReFLTrainer.step`), as the original's loop body:
1. the prompts' CLIP states (`text_encoder(ids)[0]`, the text encoder frozen) and the reward model's tokens;
2. initial latents `randn(B, 4, 64, 64)`; DDPM's 40 timesteps; the trained step's index drawn from [30, 39];
3. the steps before it sampled without gradients (ancestral DDPM, no guidance: one conditional UNet call each);
4. the trained step's UNet call with gradients, its `pred_original_sample` x 1/scaling_factor decoded by the
   frozen VAE, `(x / 2 + 0.5).clamp(0, 1)`, ReFL's tensor preprocessing (antialiased bicubic resize to 224,
   centre crop, CLIP's normalisation) and the reward model's `score_gard`;
5. loss `relu(2 - reward).mean() * grad_scale`, backward through accelerate (divided by the accumulation
   steps), gradients clipped to `max_grad_norm`, AdamW, the learning-rate schedule.
Every random draw comes, in the original's order (the initial latents, then each DDPM step's noise, the trained
step's included though unused), from the `torch.Generator` given, else from torch's global generator as the
original's do; the trained step's index from Python's `random` (seeded with the config's seed, as the original's
`set_seed` seeds it; accelerate's saved state keeps it), unless given. So a step can be replayed: `out.replay()`
gives the arguments that make it again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..errors import InputError
from .config import ReFLConfig
from .families import family_of
from .tokens import reward_tokens

WEIGHT_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class StepOutput:
    """What one step computed: the loss (as backpropagated, before accelerate's division), each prompt's
    reward, the trained step's index, the gradients' total norm before clipping (None on a micro-step that
    does not step the optimizer), and what replays the step; with `record`, its intermediates."""

    loss: torch.Tensor
    rewards: torch.Tensor
    mid_timestep: int
    grad_norm: float | None
    prompts: list[str]
    rng_state: torch.Tensor | None  # the generator's state before the step's first draw
    record: dict[str, Any] = field(default_factory=dict)

    def replay(self) -> dict[str, Any]:
        """`trainer.step(**out.replay())` computes this step again (from the same weights and optimizer)."""
        generator = torch.Generator().set_state(self.rng_state) if self.rng_state is not None else None
        return {"prompts": list(self.prompts), "mid_timestep": self.mid_timestep, "generator": generator}


def pipeline_folder(pipeline: str | Path) -> Path:
    """A diffusers pipeline's folder: a local folder, or a hub id downloaded into the Hugging Face cache; one of
    the kinds ReFL trains (`families.py`), with its parts.

    Raises:
        InputError: not such a pipeline (the message says what is missing, or which kinds are trained).
    """
    path = Path(pipeline)
    if not path.exists() and "/" in str(pipeline) and not str(pipeline).startswith((".", "/")):
        from huggingface_hub import snapshot_download

        path = Path(snapshot_download(str(pipeline), allow_patterns=["*.json", "*.txt", "*.model", "*.safetensors"]))
    family_of(path, str(pipeline))
    return path


class ReFLTrainer:
    """The original's ReFL trainer (see the module doc) on `pipeline` (a diffusers folder or hub id) with
    `reward` (an ImageReward model, or a name or folder `imagereward.load` takes; default the published one).

    `log_with`: accelerate's trackers ("tensorboard", "wandb", "all", or tracker objects), writing under
    `logging_dir`; each optimizer step's loss, mean reward and gradient norm, and each validation, go to them
    (`run.train`).

    Attributes:
        unet: the model being trained. vae, text_encoder, reward: frozen. optimizer, lr_scheduler,
        accelerator: as the original prepares them.
    """

    def __init__(
        self,
        pipeline: str | Path,
        reward: Any = None,
        config: ReFLConfig | None = None,
        device: str | torch.device | None = None,
        extra_rewards: dict[Any, float] | None = None,
        log_with: Any = None,
        logging_dir: str | Path | None = None,
    ) -> None:
        from accelerate import Accelerator
        from accelerate.utils import set_seed
        from diffusers.optimization import get_scheduler

        self.config = config = config or ReFLConfig.original()
        folder = pipeline_folder(pipeline)
        kind = family_of(folder, str(pipeline))
        self.folder = folder
        if config.seed is not None:
            set_seed(config.seed)  # as the original, before any model is built
        try:
            self.accelerator = Accelerator(
                gradient_accumulation_steps=config.gradient_accumulation_steps,
                mixed_precision=config.mixed_precision,
                cpu=device is not None and str(device) == "cpu",
                log_with=log_with,
                project_dir=str(logging_dir) if logging_dir is not None else None,
            )
        except ValueError as e:  # accelerate fixes the precision and device once per process
            raise InputError(
                f"This process has already trained with other accelerate settings ({e}); accelerate keeps the "
                "first for the whole process: start a new Python process for this trainer."
            ) from None
        self.family = family = kind(folder)
        self.tokenizer, self.text_encoder = family.tokenizer, family.text_encoder
        self.vae, self.scheduler = family.vae, family.scheduler
        unet = family.load_model()
        self.latent_size = family.latent_size(unet, config.latent_size)
        family.guidance = config.guidance_scale  # a guidance-distilled model's embedded guidance (Flux)
        if config.lora_rank is not None:  # the original SDXL-LoRA script's adapters, on this UNet
            from peft import LoraConfig

            unet.requires_grad_(False)
            unet.add_adapter(
                LoraConfig(
                    r=config.lora_rank,
                    lora_alpha=config.lora_alpha or config.lora_rank,
                    init_lora_weights="gaussian",
                    target_modules=list(config.lora_target_modules),
                )
            )
        if config.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
            # The frozen VAE's decoder still carries the gradient from the reward to the latents: at 512 px its
            # activations are most of the step's memory, so it recomputes them too (the same values).
            self.vae.enable_gradient_checkpointing()
        self.ema = None
        if config.use_ema:
            from diffusers.training_utils import EMAModel

            self.ema = EMAModel(
                unet.parameters(), decay=config.ema_decay, model_cls=family.model_class(), model_config=unet.config
            )
        self.reward = _reward_model(reward)
        self.extra_rewards = [(_differentiable(r), float(w)) for r, w in (extra_rewards or {}).items()]
        for frozen in (*family.frozen(), self.reward, *(r for r, _ in self.extra_rewards)):
            frozen.requires_grad_(False)
        self.reward.eval()
        unet.train()
        optimizer = torch.optim.AdamW(
            [p for p in unet.parameters() if p.requires_grad],
            lr=config.learning_rate,
            betas=(config.adam_beta1, config.adam_beta2),
            weight_decay=config.adam_weight_decay,
            eps=config.adam_epsilon,
        )
        lr_scheduler = get_scheduler(
            config.lr_scheduler,
            optimizer=optimizer,
            num_warmup_steps=config.lr_warmup_steps * config.gradient_accumulation_steps,
            num_training_steps=config.max_train_steps * config.gradient_accumulation_steps,
        )
        self.unet, self.optimizer, self.lr_scheduler = self.accelerator.prepare(unet, optimizer, lr_scheduler)
        self.weight_dtype = WEIGHT_DTYPES[config.mixed_precision]
        target = self.accelerator.device
        for frozen in family.frozen():
            frozen.to(target, dtype=self.weight_dtype)
        self.reward.to(target, dtype=self.weight_dtype)
        for extra, _ in self.extra_rewards:  # ImageReward models in the trainer's precision, judges in their own
            extra.eval().to(target)
            if hasattr(extra, "score_gard"):
                extra.to(dtype=self.weight_dtype)

    # ----------------------------------------------------------------------------------------------- a step
    def step(
        self,
        prompts: Sequence[str],
        mid_timestep: int | None = None,
        generator: torch.Generator | None = None,
        record: bool = False,
    ) -> StepOutput:
        """One micro-step on `prompts` (an optimizer step every `gradient_accumulation_steps` of them): see
        the module doc (with the config's `guidance_scale`, the rollout is guided; with `draft_k`, it runs to its
        end with gradients through its last K steps). `mid_timestep`: the trained step's index (default drawn from the config's range);
        `generator`: where every random tensor comes from (default torch's global generator); `record`: keep
        the intermediates in `out.record` (the initial latents, the CLIP states, x_t and the UNet's output at
        the trained step, `pred_original_sample`, the reward's pixels, the gradients before clipping).

        Raises:
            InputError: no prompts, a prompt that is not text, or a trained step outside the rollout.
        """
        prompts = _prompts(prompts)
        config = self.config
        if mid_timestep is None:
            mid_timestep = random.randint(*config.mid_timestep_range)  # Python's own, as the original's
        if not 0 <= mid_timestep < config.num_inference_steps:
            raise InputError(f"mid_timestep {mid_timestep}: an index into the {config.num_inference_steps} steps")
        device = self.accelerator.device
        kept: dict[str, Any] = {}
        family = self.family
        with self.accelerator.accumulate(self.unet):
            cond = family.conditioning(prompts, device)
            uncond = self._unconditional(len(prompts))
            rng_state = (generator.get_state() if generator is not None else torch.get_rng_state()).clone()
            model = self.accelerator.unwrap_model(self.unet)
            latents = family.initial_latents(model, len(prompts), self.latent_size, generator, device)
            timesteps = family.set_timesteps(config.num_inference_steps, self.latent_size, device)
            if record:
                kept |= {
                    "initial_latents": latents.clone(),
                    "encoder_hidden_states": cond["encoder_hidden_states"].detach().clone(),
                }
            first_trained = len(timesteps) - config.draft_k if config.draft_k else mid_timestep
            for i, t in enumerate(timesteps[:first_trained]):
                with torch.no_grad():
                    noise_pred = self._noise(latents, t, cond, uncond)
                    latents = family.advance(noise_pred, i, t, latents, generator).prev
            if config.draft_k:  # DRaFT-K: the last K steps with gradients, the final latents decoded
                mid_timestep = first_trained
                for i in range(first_trained, len(timesteps)):
                    noise_pred = self._noise(latents, timesteps[i], cond, uncond)
                    latents = family.advance(noise_pred, i, timesteps[i], latents, generator).prev
                clean = latents
            else:  # ReFL: one step with gradients, its estimate of the clean latents decoded
                t = timesteps[mid_timestep]
                noise_pred = self._noise(latents, t, cond, uncond)
                clean = family.advance(noise_pred, mid_timestep, t, latents, generator).clean
            image = family.decode(clean.to(self.weight_dtype))
            image = (image / 2 + 0.5).clamp(0, 1)
            pixels = self._reward_pixels(image)
            ids, mask = reward_tokens(prompts)
            rewards = self.reward.score_gard(ids.to(device), mask.to(device), pixels)
            loss = F.relu(-rewards + 2).mean() * config.grad_scale
            for extra, weight in self.extra_rewards:  # each weighted: ImageReward's hinge, another judge's score
                if hasattr(extra, "score_gard"):
                    others = extra.score_gard(ids.to(device), mask.to(device), self._reward_pixels(image, extra))
                    loss = loss + weight * F.relu(-others + 2).mean() * config.grad_scale
                else:
                    loss = (
                        loss - weight * extra.differentiable_rewards(prompts, image.float()).mean() * config.grad_scale
                    )
            if record:
                kept |= {
                    "latents_mid": latents.detach().clone(),
                    "noise_pred_mid": noise_pred.detach().clone(),
                    "pred_original_sample": clean.detach().clone(),
                    "reward_pixels": pixels.detach().clone(),
                }
            grad_norm = self._update(loss, kept if record else None)
        if self.ema is not None and self.accelerator.sync_gradients:
            self.ema.step(self.accelerator.unwrap_model(self.unet).parameters())
        return StepOutput(loss.detach(), rewards.detach()[:, 0], mid_timestep, grad_norm, prompts, rng_state, kept)

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], generator: torch.Generator | None = None) -> torch.Tensor:
        """The prompts' clean latents by the model as it stands: the trainer's rollout (the config's steps and
        guidance) to its end, without gradients, in eval mode; every draw from `generator`, as diffusers' own
        pipeline draws them (the initial latents, then each step's noise). `decode` makes them images."""
        prompts = _prompts(prompts)
        family, device = self.family, self.accelerator.device
        model = self.accelerator.unwrap_model(self.unet)
        cond = family.conditioning(prompts, device)
        uncond = self._unconditional(len(prompts))
        latents = family.initial_latents(model, len(prompts), self.latent_size, generator, device)
        timesteps = family.set_timesteps(self.config.num_inference_steps, self.latent_size, device)
        was_training = model.training
        model.eval()
        try:
            for i, t in enumerate(timesteps):
                latents = family.advance(self._noise(latents, t, cond, uncond), i, t, latents, generator).prev
        finally:
            model.train(was_training)
        return latents

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Clean latents to images in [0, 1] by the frozen VAE (as the step decodes them)."""
        image = self.family.decode(latents.to(self.weight_dtype))
        return (image.float() / 2 + 0.5).clamp(0, 1)

    def pretrain_step(
        self,
        texts: Sequence[str],
        images: torch.Tensor,
        generator: torch.Generator | None = None,
        record: bool = False,
    ) -> StepOutput:
        """One update on the paper's pretraining loss (its own optimizer step, as the original SDXL script's
        `_pretrain_loss`): `images` (B, 3, H, W) in [-1, 1] encoded by the frozen VAE (a sample of its latent
        distribution x scaling_factor), noise and timesteps drawn (in that order, from `generator`), x_t by the
        scheduler's `add_noise`, loss `pretrain_loss_weight * mse(unet(x_t, t, CLIP(texts)), target)` with the
        target the scheduler's prediction type asks for (the noise, the velocity or the sample).

        Raises:
            InputError: not one text per image, or images that are not (B, 3, H, W) floats.
        """
        texts = _prompts(texts)
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] != len(texts):
            raise InputError(
                "Give the pretraining step one text per image, the images as a (B, 3, H, W) tensor in [-1, 1]."
            )
        config = self.config
        device = self.accelerator.device
        kept: dict[str, Any] = {}
        family = self.family
        with self.accelerator.accumulate(self.unet):
            rng_state = (generator.get_state() if generator is not None else torch.get_rng_state()).clone()
            with torch.no_grad():
                latents = family.encode_images(images.to(device, self.weight_dtype), generator)
            noised = family.noised(latents, generator)
            cond = family.conditioning(texts, device)
            pred = family.pretrain_predict(self.unet, noised.noisy, noised.t, cond)
            if noised.subtract is not None:  # diffusers' scripts' "sample" prediction: the noise taken off
                pred = pred - noised.subtract
            target, noise, t = noised.target, noised.noise, noised.t
            loss = F.mse_loss(pred.float(), target.float(), reduction="mean") * config.pretrain_loss_weight
            if record:
                kept |= {"latents": latents.clone(), "noise": noise.clone(), "timesteps": t.clone()}
            grad_norm = self._update(loss, kept if record else None)
        empty = torch.empty(0)
        return StepOutput(loss.detach(), empty, -1, grad_norm, texts, rng_state, kept)

    def _update(self, loss: torch.Tensor, kept: dict[str, Any] | None) -> float | None:
        """Backward through accelerate, and on a step that syncs: the gradients kept (into `kept`, before
        clipping), clipped to `max_grad_norm` (their total norm returned); then AdamW, the schedule, zero_grad."""
        self.accelerator.backward(loss)
        grad_norm = None
        if self.accelerator.sync_gradients:
            if kept is not None:
                kept["grad"] = {n: p.grad.detach().clone() for n, p in self._named_parameters() if p.grad is not None}
            grad_norm = float(self.accelerator.clip_grad_norm_(self.unet.parameters(), self.config.max_grad_norm))
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad()
        return grad_norm

    def _unconditional(self, count: int) -> dict[str, Any] | None:
        """The unconditional conditions classifier-free guidance needs (None: no guidance, or a model that embeds
        its guidance instead)."""
        if self.config.guidance_scale == 1.0 or not self.family.true_cfg:
            return None
        return self.family.unconditional(count, self.accelerator.device)

    def _noise(
        self, latents: torch.Tensor, t: torch.Tensor, cond: dict[str, Any], uncond: dict[str, Any] | None
    ) -> torch.Tensor:
        """The model's prediction: one conditional call (the original), or with classifier-free guidance the
        unconditional and conditional calls in one batch, `uncond + scale * (cond - uncond)`."""
        family = self.family
        if uncond is None:
            return family.predict(self.unet, latents, t, cond)
        both = family.predict(self.unet, torch.cat([latents, latents]), t, family.join(uncond, cond))
        free, conditional = both.chunk(2)
        return free + self.config.guidance_scale * (conditional - free)

    def _reward_pixels(self, image: torch.Tensor, reward: Any = None) -> torch.Tensor:
        """ReFL's `Compose([Resize(224, BICUBIC), CenterCrop(224), Normalize(CLIP's mean, std)])` on the tensor."""
        from ..images.transforms import generator_pixels

        return generator_pixels(image, (reward or self.reward).config.vision.image_size)

    def _named_parameters(self):  # noqa: ANN202 - (name, parameter) of the UNet being trained
        return self.accelerator.unwrap_model(self.unet).named_parameters()

    # ----------------------------------------------------------------------------------------------- saving
    def save(self, output_dir: str | Path) -> Path:
        """The tuned pipeline as the original saves it at the end: the pipeline's class with the trained model
        (its moving average with `use_ema`), `save_pretrained` into `output_dir` (a diffusers folder any
        pipeline loads); with LoRA, only the adapter (`pytorch_lora_weights.safetensors`, which
        `load_lora_weights` reads), as the original's SDXL-LoRA script saves it."""
        family = self.family
        model = self.accelerator.unwrap_model(self.unet)
        if self.config.lora_rank is not None:
            from diffusers.utils import convert_state_dict_to_diffusers
            from peft.utils import get_peft_model_state_dict

            layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(model))
            family.pipeline().save_lora_weights(output_dir, **{family.lora_argument(): layers})
            return Path(output_dir)
        if self.ema is not None:
            self.ema.copy_to(model.parameters())
        parts = {family.model_folder: model, **family.text_parts}
        pipeline = family.pipeline().from_pretrained(self.folder, vae=family.vae, **parts, **family.save_extra())
        pipeline.save_pretrained(output_dir)
        return Path(output_dir)


def _prompts(prompts: Sequence[str]) -> list[str]:
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise InputError("Give the step a list of prompts (text), one per image to generate.")
    return prompts


def _differentiable(reward: Any) -> Any:
    """Another reward for the loss: an ImageReward model (or a name or folder `imagereward.load` takes; a
    fine-tuned ImageReward, say), through its `score_gard`, exact to the original's; or another judge with a
    gradient path (loaded, or by name), through its `differentiable_rewards`.

    Raises:
        InputError: a judge with no differentiable path (the message says which, why, and which have one).
    """
    from ..judges import load_judge, no_gradient_path, spec

    if isinstance(reward, str):
        try:
            found = spec(reward)
        except ValueError:
            found = None
        if found is not None and not found.primary:
            if not found.differentiable:
                raise InputError(f"{found.name} cannot be a training reward: {no_gradient_path(found.name)}")
            reward = load_judge(found.name, device="cpu")
    if not isinstance(reward, torch.nn.Module) or hasattr(reward, "score_gard"):
        return _reward_model(reward)
    judge_spec = getattr(type(reward), "spec", None)
    if judge_spec is None or not judge_spec.differentiable:
        name = getattr(reward, "name", type(reward).__name__)
        raise InputError(f"{name} cannot be a training reward: {no_gradient_path(name)}")
    return reward


def _reward_model(reward: Any) -> Any:
    """The reward model: an ImageReward model as given, or loaded by name or folder (default the published
    weights) on the CPU (moved with the trainer's device after)."""
    if isinstance(reward, torch.nn.Module):
        return reward
    from ..judges.imagereward import load

    return load(device="cpu") if reward is None else load(reward, device="cpu")
