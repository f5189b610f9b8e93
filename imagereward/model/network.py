"""The ImageReward network: BLIP's ViT image encoder, BLIP's BERT text encoder with cross-attention
to the image, and the original's five-Linear head.

Re-implements `ImageReward/ImageReward.py` and `models/BLIP/{vit,med}.py` of the original
`image-reward` 1.5 package (Xu et al., "ImageReward", arXiv 2304.05977) on timm and transformers,
batched and with fused attention. The forward pass comes in parts, as timm's `forward_features` /
`forward_head`: `encode_images` -> `encode_text` -> `forward_head`.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import nn
from transformers import BlipTextConfig, BlipTextModel
from transformers.models.blip.modeling_blip_text import BlipTextSelfAttention

from .config import HeadConfig, ModelConfig, VisionConfig


def build_vision_encoder(cfg: VisionConfig) -> VisionTransformer:
    """BLIP's ViT as a timm model: class token, qkv bias, exact GELU, no head, final LayerNorm kept."""
    return VisionTransformer(
        img_size=cfg.image_size,
        patch_size=cfg.patch_size,
        embed_dim=cfg.width,
        depth=cfg.depth,
        num_heads=cfg.heads,
        mlp_ratio=cfg.mlp_ratio,
        qkv_bias=True,
        class_token=True,
        global_pool="",
        num_classes=0,
        norm_layer=partial(nn.LayerNorm, eps=cfg.layer_norm_eps),
    )


class SdpaTextSelfAttention(BlipTextSelfAttention):
    """transformers' BLIP text attention (same parameters) computed with `scaled_dot_product_attention`.

    Only the encoder use is supported: no KV cache, no attention maps. The mask is the additive 4-D mask
    that `BlipTextModel` builds (0 where attended, a large negative number on padding).
    """

    def forward(  # type: ignore[override]
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        **kwargs: object,
    ) -> tuple[torch.Tensor, None]:
        is_cross = encoder_hidden_states is not None
        source = encoder_hidden_states if is_cross else hidden_states
        mask = encoder_attention_mask if is_cross else attention_mask
        batch, length = hidden_states.shape[:2]
        heads, head_dim = self.num_attention_heads, self.attention_head_size

        def split(x: torch.Tensor) -> torch.Tensor:  # (B, L, H*D) -> (B, H, L, D)
            return x.view(x.shape[0], x.shape[1], heads, head_dim).transpose(1, 2)

        q, k, v = split(self.query(hidden_states)), split(self.key(source)), split(self.value(source))
        if mask is not None and mask.dtype != torch.bool:
            mask = mask.to(q.dtype)
        dropout = self.dropout.p if self.training else 0.0  # BERT's attention dropout, in training only
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        return context.transpose(1, 2).reshape(batch, length, self.all_head_size), None


def build_text_encoder(cfg: ModelConfig, cross_attention: bool = True) -> BlipTextModel:
    """BLIP's BERT: word + position embeddings (no token types), self-attention, cross-attention whose
    keys and values take the ViT width, no pooler. Built with cross-attention layers (``is_decoder``) and
    always called as an encoder (bidirectional self-attention), as the original calls it; without them
    (`cross_attention=False`) for BLIP's text-only mode."""
    t = cfg.text
    config = BlipTextConfig(
        vocab_size=t.vocab_size,
        hidden_size=t.hidden_size,
        encoder_hidden_size=cfg.vision.width,
        intermediate_size=t.intermediate_size,
        num_hidden_layers=t.num_hidden_layers,
        num_attention_heads=t.num_attention_heads,
        max_position_embeddings=t.max_position_embeddings,
        hidden_act=t.hidden_act,
        layer_norm_eps=t.layer_norm_eps,
        pad_token_id=t.pad_token_id,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        is_decoder=cross_attention,
    )
    config._attn_implementation = "eager"
    encoder = BlipTextModel(config, add_pooling_layer=False)
    for module in encoder.modules():
        if type(module) is BlipTextSelfAttention:
            module.__class__ = SdpaTextSelfAttention
    return encoder


def build_head(cfg: HeadConfig, input_size: int) -> nn.Sequential:
    """The original `MLP`: five Linear layers and no activation (its ReLUs are commented out)."""
    widths = (input_size, *cfg.widths)
    return nn.Sequential(*(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])))


def text_cls(
    encoder: BlipTextModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    image_embeds: torch.Tensor | None = None,
) -> torch.Tensor:
    """Prompt tokens (B, L) -> the CLS feature (B, hidden) of BLIP's BERT, attending to image tokens (B, T,
    width) when given (ImageReward), else text only (BLIP's `mode='text'`).

    Runs the embeddings and the layers directly with an additive mask built here (0 where attended, the
    dtype's lowest value on padding, as transformers' eager mask is; BLIP's -10000 gives the same softmax).
    transformers' own mask helpers would inspect the mask on the host, which costs a device sync per call and
    cannot be captured in a CUDA graph."""
    hidden = encoder.embeddings(input_ids=input_ids)
    dtype = hidden.dtype
    mask = (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min  # (B, 1, 1, L)
    return encoder.encoder(hidden, attention_mask=mask, encoder_hidden_states=image_embeds)[0][:, 0, :]


class ImageRewardModel(nn.Module):
    """The network alone. `imagereward.ImageReward` adds tokenizing, preprocessing and the scoring API."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.visual_encoder = build_vision_encoder(config.vision)
        self.text_encoder = build_text_encoder(config)
        self.head = build_head(config.head, config.head_input_size)

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, 224, 224) normalised pixels -> every ViT token after the final norm, (B, 197, width).

        Calls the module itself (with no pooling and no head, timm's `forward` is `forward_features`), so
        that `visual_encoder.compile()` takes effect."""
        return self.visual_encoder(pixel_values)

    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_embeds: torch.Tensor
    ) -> torch.Tensor:
        """Prompt tokens (B, L) attending to image tokens (B, 197, width) -> CLS feature (B, hidden).

        Bidirectional self-attention, cross-attention to every image token, as the original calls its encoder
        (see `text_cls`)."""
        return text_cls(self.text_encoder, input_ids, attention_mask, image_embeds)

    def forward_head(self, text_features: torch.Tensor) -> torch.Tensor:
        """CLS features (B, hidden) -> normalised rewards (B,), computed in float32 as the original does."""
        head_dtype = self.head[0].weight.dtype
        raw = self.head(text_features.to(head_dtype)).squeeze(-1).float()  # (B,)
        return (raw - self.config.head.reward_mean) / self.config.head.reward_std

    def score_embeddings(
        self, image_embeds: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Image tokens (N, 197, width) and ONE tokenized prompt (1, 35) -> rewards (N,) float32.

        Padding is masked out of every attention, so the CLS feature does not depend on it: only as many
        positions as the prompt has tokens are run (exact, and up to 3x less text-encoder work)."""
        n, device = image_embeds.shape[0], image_embeds.device
        length = int(attention_mask.sum(dim=-1).max())
        input_ids = input_ids[:, :length].to(device).expand(n, -1)
        attention_mask = attention_mask[:, :length].to(device).expand(n, -1)
        return self.forward_head(self.encode_text(input_ids, attention_mask, image_embeds))

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor
    ) -> torch.Tensor:
        """One prompt's tokens (1, 35) and normalised pixels (N, 3, 224, 224) -> rewards (N,) float32."""
        return self.score_embeddings(self.encode_images(pixel_values), input_ids, attention_mask)
