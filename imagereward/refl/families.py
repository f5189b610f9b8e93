"""The pipeline kinds ReFL trains, each as one record of what the step needs of it: the model trained, how prompts
condition it, how a rollout step moves the latents and what the clean estimate is, how latents decode, what the
pretraining loss targets, and how the result is saved.

- `StableDiffusion` (diffusers' `StableDiffusionPipeline`, the original `ReFL.py`'s): a UNet conditioned on CLIP's
  last hidden states; DDPM (the original builds `DDPMScheduler` from the pipeline's scheduler config); the clean
  estimate is the step's `pred_original_sample`.
- `StableDiffusionXL` (the original `ReFL_SDXL.py`'s): two CLIP text encoders, their penultimate hidden states side
  by side, the second's projected pooled output and the added time ids (original size, crop corner, target size)
  as the UNet's added conditions; DDPM as above. The empty prompt under guidance is zeros when the pipeline says
  `force_zeros_for_empty_prompt` (its default), as diffusers' pipeline does.
- `Flux` (flow matching on packed latents): CLIP's pooled output and T5's states, position ids, 2 x 2 packed
  latents, the pipeline's shifted schedule, the embedded (distilled) guidance; the clean estimate x_t - sigma * v.
- `StableDiffusion3` (flow matching, which the original lacks): an MMDiT transformer conditioned on the two CLIPs'
  penultimate states (padded to T5's width) followed by T5's states (zeros when the pipeline has no T5), and the
  pooled outputs side by side; `FlowMatchEulerDiscreteScheduler`'s Euler steps; the clean estimate is
  x_t - sigma * v; latents decode as `z / scaling_factor + shift_factor`.

Each is what diffusers' own pipeline computes for the same prompts, latents and scheduler (tested against
`encode_prompt` and the pipeline's own generation), with prompts tokenized as the original's slow CLIP tokenizer
does (`tokens.ClipTokens`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import InputError
from .tokens import ClipTokens


@dataclass
class Noised:
    """The denoising loss's input: x_t at timesteps t, the target, the noise drawn, and what diffusers' scripts
    take off the prediction first (the noise, for a "sample" prediction type; else None)."""

    noisy: torch.Tensor
    t: torch.Tensor
    target: torch.Tensor
    noise: torch.Tensor
    subtract: torch.Tensor | None = None


@dataclass
class Advance:
    """One rollout step: the next latents, and the clean latents this step estimates."""

    prev: torch.Tensor
    clean: torch.Tensor


class StableDiffusion:
    """Stable Diffusion 1.x/2.x, as the original `ReFL.py` runs it (see the module doc)."""

    pipeline_class = "StableDiffusionPipeline"
    model_folder = "unet"
    parts: tuple[str, ...] = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
    original_latent_size: int | None = 64  # ReFL.py draws (B, 4, 64, 64) whatever the model
    true_cfg = True  # guidance by an unconditional call beside each conditional one (Flux embeds it instead)

    def __init__(self, folder: Path) -> None:
        from diffusers import AutoencoderKL

        self.folder = folder
        self.index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
        self.vae = AutoencoderKL.from_pretrained(folder, subfolder="vae")
        self.scheduler = self._scheduler()
        self.train_scheduler = self._scheduler()  # the pretraining loss's, never given inference steps
        self.size = 0  # the images' side, once the latents' is known (`latent_size`)
        self._load_text()

    # ---- loading
    def _scheduler(self) -> Any:
        from diffusers import DDPMScheduler

        return DDPMScheduler.from_pretrained(self.folder, subfolder="scheduler")

    def _load_text(self) -> None:
        from transformers import CLIPTextModel

        self.tokenizer = ClipTokens(self.folder / "tokenizer")
        self.text_encoder = CLIPTextModel.from_pretrained(self.folder, subfolder="text_encoder")

    def model_class(self) -> Any:
        from diffusers import UNet2DConditionModel

        return UNet2DConditionModel

    def load_model(self) -> torch.nn.Module:
        return self.model_class().from_pretrained(self.folder, subfolder=self.model_folder)

    text_names: tuple[str, ...] = ("text_encoder",)

    def frozen(self) -> list[torch.nn.Module]:
        """The parts that do not train (moved and cast with the trainer)."""
        return [self.vae, *self.text_parts.values()]

    @property
    def text_parts(self) -> dict[str, torch.nn.Module]:
        """The text encoders present, by the pipeline's names for them."""
        return {name: getattr(self, name) for name in self.text_names if getattr(self, name) is not None}

    # ---- sizes
    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def latent_size(self, model: torch.nn.Module, asked: int | None) -> int:
        """The latents' side: as asked, else the original's 64 (Stable Diffusion) or the model's own size; the
        images' side (`size`) follows."""
        side = asked if asked is not None else self.original_latent_size or int(model.config.sample_size)
        self.size = side * self.vae_scale_factor
        return side

    # ---- conditioning
    def conditioning(self, prompts: Sequence[str], device: torch.device) -> dict[str, Any]:
        """The model call's text conditions for `prompts` (keyword arguments)."""
        return {"encoder_hidden_states": self.text_encoder(self.tokenizer(prompts).to(device))[0]}

    def unconditional(self, count: int, device: torch.device) -> dict[str, Any]:
        """The conditions classifier-free guidance pairs with them: the empty prompt's."""
        return self.conditioning([""] * count, device)

    @staticmethod
    def join(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
        """Two batches of conditions as one (guidance's doubled call)."""
        return {
            k: {i: torch.cat([first[k][i], second[k][i]]) for i in first[k]}
            if isinstance(first[k], dict)
            else torch.cat([first[k], second[k]])
            for k in first
        }

    # ---- the rollout
    def initial_latents(
        self, model: torch.nn.Module, count: int, size: int, generator: torch.Generator | None, device: torch.device
    ) -> torch.Tensor:
        channels = int(model.config.in_channels)
        return torch.randn((count, channels, size, size), generator=generator, device=device)

    def set_timesteps(self, steps: int, size: int, device: torch.device) -> torch.Tensor:
        self.scheduler.set_timesteps(steps, device=device)
        return self.scheduler.timesteps

    def predict(self, model: torch.nn.Module, latents: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]):  # noqa: ANN201
        model_input = self.scheduler.scale_model_input(latents, t)
        return model(model_input, t, **cond).sample

    def advance(
        self, output: torch.Tensor, index: int, t: torch.Tensor, latents: torch.Tensor, generator: Any
    ) -> Advance:
        stepped = self.scheduler.step(output, t, latents, generator=generator)
        return Advance(stepped.prev_sample, stepped.pred_original_sample)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Clean latents to the VAE's image in [-1, 1], as the original: `vae.decode(1 / scaling_factor * z)`."""
        return self.vae.decode(1 / self.vae.config.scaling_factor * latents).sample

    # ---- the pretraining loss
    def encode_images(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Images in [-1, 1] to latents, a sample of the VAE's latent distribution x scaling_factor."""
        return self.vae.encode(images).latent_dist.sample(generator) * self.vae.config.scaling_factor

    def noised(self, latents: torch.Tensor, generator: torch.Generator | None) -> Noised:
        """The denoising loss's input, noise then timesteps drawn from `generator`; x_t by the scheduler's
        `add_noise`, the target the scheduler's prediction type asks for (noise, velocity or sample), as the
        original SDXL script's `_pretrain_loss`."""
        noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
        steps = self.train_scheduler.config.num_train_timesteps
        t = torch.randint(0, steps, (latents.shape[0],), generator=generator, device=latents.device)
        noisy = self.train_scheduler.add_noise(latents, noise, t)
        kind = self.train_scheduler.config.prediction_type
        if kind == "epsilon":
            return Noised(noisy, t, noise, noise)
        if kind == "v_prediction":
            return Noised(noisy, t, self.train_scheduler.get_velocity(latents, noise, t), noise)
        if kind == "sample":
            return Noised(noisy, t, latents, noise, subtract=noise)
        raise InputError(f"the scheduler's prediction_type {kind!r} is not epsilon, v_prediction or sample")

    def pretrain_predict(self, model: torch.nn.Module, noisy: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]):  # noqa: ANN201
        return model(noisy, t, **cond).sample

    # ---- saving
    def pipeline(self) -> Any:
        import diffusers

        return getattr(diffusers, self.pipeline_class)

    def save_extra(self) -> dict[str, Any]:
        return {"safety_checker": None}

    def lora_argument(self) -> str:
        return "unet_lora_layers"


class StableDiffusionXL(StableDiffusion):
    """SDXL, as the original `ReFL_SDXL.py` conditions it (see the module doc), at the model's own size (1024 px;
    the original script draws 64 x 64 latents whatever `--resolution` says)."""

    pipeline_class = "StableDiffusionXLPipeline"
    parts = ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")
    original_latent_size = None

    def _load_text(self) -> None:
        from transformers import CLIPTextModel, CLIPTextModelWithProjection

        self.tokenizer = ClipTokens(self.folder / "tokenizer")
        self.tokenizer_2 = ClipTokens(self.folder / "tokenizer_2")
        self.text_encoder = CLIPTextModel.from_pretrained(self.folder, subfolder="text_encoder")
        self.text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(self.folder, subfolder="text_encoder_2")
        self.zeros_for_empty = bool(self.index.get("force_zeros_for_empty_prompt", True))

    text_names = ("text_encoder", "text_encoder_2")

    def conditioning(self, prompts: Sequence[str], device: torch.device) -> dict[str, Any]:
        states = []
        for tokenizer, encoder in ((self.tokenizer, self.text_encoder), (self.tokenizer_2, self.text_encoder_2)):
            out = encoder(tokenizer(prompts).to(device), output_hidden_states=True)
            states.append(out.hidden_states[-2])
        pooled = out.text_embeds  # the second encoder's projection, as the original's `prompt_embeds[0]`
        return self._conditions(torch.cat(states, dim=-1), pooled)

    def unconditional(self, count: int, device: torch.device) -> dict[str, Any]:
        if not self.zeros_for_empty:
            return self.conditioning([""] * count, device)
        width = self.text_encoder.config.hidden_size + self.text_encoder_2.config.hidden_size
        dtype = self.text_encoder_2.dtype
        states = torch.zeros((count, self.tokenizer.max_length, width), device=device, dtype=dtype)
        pooled = torch.zeros((count, self.text_encoder_2.config.projection_dim), device=device, dtype=dtype)
        return self._conditions(states, pooled)

    def _conditions(self, states: torch.Tensor, pooled: torch.Tensor) -> dict[str, Any]:
        """With the added time ids (original size, crop top-left (0, 0), target size: the generated size)."""
        side = self.size
        time_ids = torch.tensor([[side, side, 0, 0, side, side]], dtype=states.dtype, device=states.device)
        added = {"text_embeds": pooled, "time_ids": time_ids.repeat(states.shape[0], 1)}
        return {"encoder_hidden_states": states, "added_cond_kwargs": added}

    def save_extra(self) -> dict[str, Any]:
        return {}


class StableDiffusion3(StableDiffusion):
    """Stable Diffusion 3 (flow matching; see the module doc)."""

    pipeline_class = "StableDiffusion3Pipeline"
    model_folder = "transformer"
    parts = ("transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")
    original_latent_size = None
    t5_length = 256  # the pipeline's max_sequence_length

    def _scheduler(self) -> Any:
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler.from_pretrained(self.folder, subfolder="scheduler")

    def _load_text(self) -> None:
        from transformers import AutoTokenizer, CLIPTextModelWithProjection, T5EncoderModel

        self.tokenizer = ClipTokens(self.folder / "tokenizer")
        self.tokenizer_2 = ClipTokens(self.folder / "tokenizer_2")
        self.text_encoder = CLIPTextModelWithProjection.from_pretrained(self.folder, subfolder="text_encoder")
        self.text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(self.folder, subfolder="text_encoder_2")
        self.tokenizer_3 = self.text_encoder_3 = None
        if (self.folder / "text_encoder_3").is_dir():
            self.tokenizer_3 = AutoTokenizer.from_pretrained(self.folder, subfolder="tokenizer_3")
            self.text_encoder_3 = T5EncoderModel.from_pretrained(self.folder, subfolder="text_encoder_3")
        self.joint_width = self.patch_size = 0  # the transformer's, set when the model loads

    def model_class(self) -> Any:
        from diffusers import SD3Transformer2DModel

        return SD3Transformer2DModel

    def load_model(self) -> torch.nn.Module:
        model = super().load_model()
        self.joint_width = int(model.config.joint_attention_dim)
        self.patch_size = int(model.config.patch_size)
        return model

    text_names = ("text_encoder", "text_encoder_2", "text_encoder_3")

    def conditioning(self, prompts: Sequence[str], device: torch.device) -> dict[str, Any]:
        states, pooled = [], []
        for tokenizer, encoder in ((self.tokenizer, self.text_encoder), (self.tokenizer_2, self.text_encoder_2)):
            out = encoder(tokenizer(prompts).to(device), output_hidden_states=True)
            states.append(out.hidden_states[-2])
            pooled.append(out.text_embeds)
        clip = torch.cat(states, dim=-1)
        if self.text_encoder_3 is None:
            t5 = torch.zeros((len(prompts), self.t5_length, self.joint_width), device=device, dtype=clip.dtype)
        else:
            ids = self.tokenizer_3(
                list(prompts), padding="max_length", max_length=self.t5_length, truncation=True, return_tensors="pt"
            ).input_ids
            t5 = self.text_encoder_3(ids.to(device))[0]
        clip = torch.nn.functional.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
        return {"encoder_hidden_states": torch.cat([clip, t5], dim=-2), "pooled_projections": torch.cat(pooled, -1)}

    def set_timesteps(self, steps: int, size: int, device: torch.device) -> torch.Tensor:
        config = self.scheduler.config
        kwargs = {}
        if config.get("use_dynamic_shifting"):  # as the pipeline: the shift from the image's token count
            from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import calculate_shift

            tokens = (size // self.patch_size) ** 2
            kwargs["mu"] = calculate_shift(
                tokens,
                config.get("base_image_seq_len", 256),
                config.get("max_image_seq_len", 4096),
                config.get("base_shift", 0.5),
                config.get("max_shift", 1.16),
            )
        self.scheduler.set_timesteps(steps, device=device, **kwargs)
        return self.scheduler.timesteps

    def predict(self, model: torch.nn.Module, latents: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]):  # noqa: ANN201
        return model(hidden_states=latents, timestep=t.expand(latents.shape[0]), **cond).sample

    def advance(
        self, output: torch.Tensor, index: int, t: torch.Tensor, latents: torch.Tensor, generator: Any
    ) -> Advance:
        """Euler's step (the scheduler's own, float32 as it upcasts), and the clean estimate x_t - sigma * v."""
        sigma = self.scheduler.sigmas[index].to(latents.device)
        clean = latents - sigma * output
        if self.scheduler.step_index not in (None, index):  # a step after ones not taken through the scheduler
            self.scheduler._step_index = index
        prev = self.scheduler.step(output, t, latents, generator=generator).prev_sample.to(latents.dtype)
        return Advance(prev, clean)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        config = self.vae.config
        return self.vae.decode(latents / config.scaling_factor + config.shift_factor).sample

    def encode_images(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        config = self.vae.config
        sample = self.vae.encode(images).latent_dist.sample(generator)
        return (sample - config.shift_factor) * config.scaling_factor

    def noised(self, latents: torch.Tensor, generator: torch.Generator | None) -> Noised:
        """Flow matching's loss input, as diffusers' SD3 training scripts with uniform weighting: noise, then a
        training timestep drawn uniformly, x_t = (1 - sigma) x + sigma noise, the target noise - x."""
        noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
        table = self.train_scheduler
        count = len(table.timesteps)
        index = torch.randint(0, count, (latents.shape[0],), generator=generator)
        t = table.timesteps[index].to(latents.device)
        sigma = table.sigmas[index].to(latents.device, latents.dtype).view(-1, *[1] * (latents.ndim - 1))
        return Noised((1 - sigma) * latents + sigma * noise, t, noise - latents, noise)

    def pretrain_predict(self, model: torch.nn.Module, noisy: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]):  # noqa: ANN201
        return model(hidden_states=noisy, timestep=t, **cond).sample

    def lora_argument(self) -> str:
        return "transformer_lora_layers"

    def save_extra(self) -> dict[str, Any]:
        return {} if self.text_encoder_3 is not None else {"text_encoder_3": None, "tokenizer_3": None}


def vae_scale(folder: Path) -> int:
    """The pipeline's VAE scale factor (pixels per latent), from its config, before any model loads."""
    config = json.loads((folder / "vae" / "config.json").read_text(encoding="utf-8"))
    return 2 ** (len(config.get("block_out_channels", [0])) - 1)


class Flux(StableDiffusion3):
    """Flux (flow matching on packed latents): CLIP's pooled output and T5's states condition the transformer,
    with text and image position ids; the latents are packed into 2 x 2 patches; the schedule is the pipeline's
    (`sigmas` from 1 to 1/N, shifted by the image's token count); guidance-distilled models take the config's
    `guidance_scale` as their embedded guidance, as `FluxPipeline`'s `guidance_scale` (no unconditional call)."""

    pipeline_class = "FluxPipeline"
    parts = ("transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")
    text_names = ("text_encoder", "text_encoder_2")
    t5_length = 512  # the pipeline's max_sequence_length
    true_cfg = False
    original_latent_size = 128  # the pipeline's default_sample_size (its transformer's config has none)

    def _load_text(self) -> None:
        from transformers import AutoTokenizer, CLIPTextModel, T5EncoderModel

        self.tokenizer = ClipTokens(self.folder / "tokenizer")
        self.text_encoder = CLIPTextModel.from_pretrained(self.folder, subfolder="text_encoder")
        self.tokenizer_2 = AutoTokenizer.from_pretrained(self.folder, subfolder="tokenizer_2")
        self.text_encoder_2 = T5EncoderModel.from_pretrained(self.folder, subfolder="text_encoder_2")
        self.guidance = 1.0
        self.guidance_embeds = False
        self.image_ids: torch.Tensor | None = None

    def model_class(self) -> Any:
        from diffusers import FluxTransformer2DModel

        return FluxTransformer2DModel

    def load_model(self) -> torch.nn.Module:
        model = self.model_class().from_pretrained(self.folder, subfolder=self.model_folder)
        self.guidance_embeds = bool(model.config.guidance_embeds)
        return model

    def conditioning(self, prompts: Sequence[str], device: torch.device) -> dict[str, Any]:
        pooled = self.text_encoder(self.tokenizer(prompts).to(device), output_hidden_states=False).pooler_output
        ids = self.tokenizer_2(
            list(prompts), padding="max_length", max_length=self.t5_length, truncation=True, return_tensors="pt"
        ).input_ids
        states = self.text_encoder_2(ids.to(device), output_hidden_states=False)[0]
        text_ids = torch.zeros(states.shape[1], 3, device=device, dtype=self.text_encoder.dtype)
        return {"encoder_hidden_states": states, "pooled_projections": pooled, "txt_ids": text_ids}

    def initial_latents(
        self, model: torch.nn.Module, count: int, size: int, generator: torch.Generator | None, device: torch.device
    ) -> torch.Tensor:
        from diffusers import FluxPipeline

        channels = int(model.config.in_channels) // 4
        latents = torch.randn((count, channels, size, size), generator=generator, device=device)
        self.image_ids = FluxPipeline._prepare_latent_image_ids(count, size // 2, size // 2, device, latents.dtype)
        return FluxPipeline._pack_latents(latents, count, channels, size, size)

    def set_timesteps(self, steps: int, size: int, device: torch.device) -> torch.Tensor:
        import numpy as np
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        config = self.scheduler.config
        sigmas = None if config.get("use_flow_sigmas") else np.linspace(1.0, 1 / steps, steps)
        mu = calculate_shift(
            (size // 2) ** 2,
            config.get("base_image_seq_len", 256),
            config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5),
            config.get("max_shift", 1.15),
        )
        if sigmas is None:
            self.scheduler.set_timesteps(steps, device=device, mu=mu)
        else:
            self.scheduler.set_timesteps(sigmas=sigmas, device=device, mu=mu)
        self.scheduler.set_begin_index(0)
        return self.scheduler.timesteps

    def predict(self, model: torch.nn.Module, latents: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]):  # noqa: ANN201
        count = latents.shape[0]
        return self._call(model, latents, t.expand(count).to(latents.dtype) / 1000, cond)

    def _call(self, model: torch.nn.Module, latents: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]):  # noqa: ANN202
        guidance = None
        if self.guidance_embeds:
            guidance = torch.full([1], self.guidance, device=latents.device, dtype=torch.float32)
            guidance = guidance.expand(latents.shape[0])
        return model(hidden_states=latents, timestep=t, guidance=guidance, img_ids=self.image_ids, **cond).sample

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        from diffusers import FluxPipeline

        side = self.size
        unpacked = FluxPipeline._unpack_latents(latents, side, side, self.vae_scale_factor)
        config = self.vae.config
        return self.vae.decode(unpacked / config.scaling_factor + config.shift_factor).sample

    def encode_images(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        from diffusers import FluxPipeline

        latents = super().encode_images(images, generator)
        count, channels, height, width = latents.shape
        self.image_ids = FluxPipeline._prepare_latent_image_ids(
            count, height // 2, width // 2, latents.device, latents.dtype
        )
        return FluxPipeline._pack_latents(latents, count, channels, height, width)

    def pretrain_predict(self, model: torch.nn.Module, noisy: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]):  # noqa: ANN201
        return self._call(model, noisy, t.to(noisy.dtype) / 1000, cond)

    def save_extra(self) -> dict[str, Any]:
        return {}


FAMILIES: dict[str, type[StableDiffusion]] = {
    family.pipeline_class: family for family in (StableDiffusion, StableDiffusionXL, StableDiffusion3, Flux)
}


def family_of(folder: Path, name: str | None = None) -> type[StableDiffusion]:
    """The pipeline kind a diffusers folder holds (its `model_index.json`), with its parts present.

    Raises:
        InputError: not a diffusers pipeline, a kind ReFL does not train (the kinds named), or a part missing.
    """
    shown = name or str(folder)
    index = folder / "model_index.json"
    if not index.is_file():
        raise InputError(
            f"{shown} is not a diffusers pipeline: it has no model_index.json. Give the folder `save_pretrained` "
            "wrote, or a hub id such as CompVis/stable-diffusion-v1-4."
        )
    try:
        kind = json.loads(index.read_text(encoding="utf-8")).get("_class_name")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        kind = None
    if kind not in FAMILIES:
        raise InputError(
            f"{shown} holds a {kind or 'unreadable'} pipeline; ReFL trains {', '.join(FAMILIES)} pipelines."
        )
    family = FAMILIES[kind]
    missing = [p for p in family.parts if not (folder / p).exists()]
    if missing:
        raise InputError(
            f"{shown} is not a whole {kind}: it has no {', '.join(missing)}. Give the folder `save_pretrained` wrote."
        )
    return family
