"""Tiny SDXL, Stable Diffusion 3 and Flux pipelines in diffusers' layout, built from seeded random weights (as diffusers'
own tests build theirs) and saved with `save_pretrained`: the ReFL trainer's other pipeline kinds, tested as it
trains the original's tiny Stable Diffusion (`tests/fixtures/refl/pipeline`, whose CLIP tokenizer they share).

Both make 32 px images from 16 x 16 latents (a VAE with two blocks), so a whole rollout takes a second."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from originals import FIXTURES

TOKENIZER = FIXTURES / "refl" / "pipeline" / "tokenizer"
TEXT_CONFIG = json.loads((FIXTURES / "refl" / "pipeline" / "text_encoder" / "config.json").read_text())
LATENT = 16


def _tokenizers(folder: Path) -> None:
    """tokenizer/ as the fixture's; tokenizer_2/ the same with "!" as its pad token, as SDXL's second is; the
    files the published pipelines hold (transformers 5's `save_pretrained` adds a tokenizer.json whose padding
    then overrides the configured pad token on loading, so the folders are written again after the pipeline)."""
    for name in ("tokenizer", "tokenizer_2"):
        shutil.rmtree(folder / name, ignore_errors=True)
        shutil.copytree(TOKENIZER, folder / name)
    config = folder / "tokenizer_2" / "tokenizer_config.json"
    settings = json.loads(config.read_text())
    settings["pad_token"] = "!"
    config.write_text(json.dumps(settings))


def _text_encoders(projected_first: bool):  # noqa: ANN202 - (text_encoder, text_encoder_2)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(**{k: v for k, v in TEXT_CONFIG.items() if k not in ("architectures", "torch_dtype")})
    first = (CLIPTextModelWithProjection if projected_first else CLIPTextModel)(config)
    return first.eval(), CLIPTextModelWithProjection(config).eval()


def _vae(**kwargs):  # noqa: ANN003, ANN202 - an AutoencoderKL
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=4,
        sample_size=2 * LATENT,
        **kwargs,
    )


def sdxl(folder: Path) -> Path:
    """A tiny `StableDiffusionXLPipeline` (DDPM, SDXL's betas) saved in `folder`."""
    from diffusers import DDPMScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=LATENT,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + TEXT_CONFIG["projection_dim"],
        cross_attention_dim=2 * TEXT_CONFIG["hidden_size"],
        norm_num_groups=4,
    )
    text_encoder, text_encoder_2 = _text_encoders(projected_first=False)
    _tokenizers(folder)
    pipeline = StableDiffusionXLPipeline(
        vae=_vae(),
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        tokenizer_2=CLIPTokenizer.from_pretrained(folder / "tokenizer_2"),
        unet=unet,
        scheduler=DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1),
    )
    pipeline.save_pretrained(folder)
    _tokenizers(folder)
    return folder


def sd3(folder: Path) -> Path:
    """A tiny `StableDiffusion3Pipeline` (no T5: its states are zeros, as the pipeline makes them without it)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTokenizer

    torch.manual_seed(0)
    width = 2 * TEXT_CONFIG["hidden_size"]
    transformer = SD3Transformer2DModel(
        sample_size=LATENT,
        patch_size=2,
        in_channels=4,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=width,
        pooled_projection_dim=2 * TEXT_CONFIG["projection_dim"],
        out_channels=4,
    )
    text_encoder, text_encoder_2 = _text_encoders(projected_first=True)
    _tokenizers(folder)
    pipeline = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(shift_factor=0.0609, scaling_factor=1.5035, use_quant_conv=False, use_post_quant_conv=False),
        text_encoder=text_encoder,
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        text_encoder_2=text_encoder_2,
        tokenizer_2=CLIPTokenizer.from_pretrained(folder / "tokenizer_2"),
        text_encoder_3=None,
        tokenizer_3=None,
    )
    pipeline.save_pretrained(folder)
    _tokenizers(folder)
    return folder


def _t5(folder: Path):  # noqa: ANN202 - (T5EncoderModel, its tokenizer), the tokenizer saved into folder/tokenizer_2
    """A tiny T5 encoder and a T5 tokenizer built offline (`tokenizers`' Unigram over a small word list, as a
    sentencepiece tokenizer is: `▁` word starts, `</s>` appended, `<pad>` 0)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    words = "a an the red cube on table corgi in sunglasses lighthouse at dusk bowl of ramen astronaut horse oil"
    pieces = ["<pad>", "</s>", "<unk>"] + [f"▁{w}" for w in words.split()] + list("abcdefghijklmnopqrstuvwxyz,.")
    model = Tokenizer(models.Unigram([(w, -k / 10) for k, w in enumerate(pieces)], unk_id=2))
    model.normalizer = normalizers.NFKC()
    model.pre_tokenizer = pre_tokenizers.Metaspace()
    model.decoder = decoders.Metaspace()
    model.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = T5TokenizerFast(
        tokenizer_object=model, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_ids=0
    )
    config = T5Config(vocab_size=len(pieces), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    return T5EncoderModel(config).eval(), tokenizer


def flux(folder: Path) -> Path:
    """A tiny `FluxPipeline` (guidance-distilled: `guidance_embeds`), saved in `folder`."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTokenizer

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=TEXT_CONFIG["hidden_size"],
        guidance_embeds=True,
        axes_dims_rope=(4, 4, 8),
    )
    text_encoder, _ = _text_encoders(projected_first=False)
    t5, t5_tokenizer = _t5(folder)
    shutil.copytree(TOKENIZER, folder / "tokenizer")  # CLIP's; the second tokenizer is T5's
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0, use_dynamic_shifting=True, base_image_seq_len=256, max_image_seq_len=4096, max_shift=1.15
    )
    pipeline = FluxPipeline(
        scheduler=scheduler,
        vae=_vae(shift_factor=0.1159, scaling_factor=0.3611, use_quant_conv=False, use_post_quant_conv=False),
        text_encoder=text_encoder,
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        text_encoder_2=t5,
        tokenizer_2=t5_tokenizer,
        transformer=transformer,
    )
    pipeline.save_pretrained(folder)
    shutil.rmtree(folder / "tokenizer", ignore_errors=True)
    shutil.copytree(TOKENIZER, folder / "tokenizer")
    return folder
