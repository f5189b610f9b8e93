"""The CLIP baseline of the paper's Table 2, as `image-reward` 1.5 computes it (`models/CLIPScore.py`), on
open_clip's CLIP; and the CLIP tower the aesthetic predictor shares.

open_clip rather than transformers' `CLIPModel`: open_clip's `CLIP` has OpenAI's module layout, so OpenAI's
file loads with no key conversion (every error names the file's own keys), with QuickGELU, the causal text
mask and argmax pooling as OpenAI wrote them; its tokenizer is CLIP's byte-level BPE (`clip.tokenize`, with
`ftfy` and the BPE vocabulary shipped inside the open_clip wheel: no hub call), and HPSv2 builds on the same.

- CLIP score = cosine of the normalised text and image features (no logit scale, no x100, no clamp).
- One `ClipTower` (network + a cache of normalised image features) serves every judge on it (CLIP score, and
  the aesthetic predictor of `aesthetic.py`) when they are loaded with the same file, device and dtype: asking
  both for the same images costs one image-tower pass.
- Weights: on the CPU (float32) the file's float16 weights are upcast, as the original's `.float()`; in half
  precision they keep the file's mixed layout (float16 Linear/Conv/attention, float32 norms and embeddings),
  as `clip.load` on CUDA, and the network computes as OpenAI's does in half precision (`openai_half`): each
  LayerNorm in float32, attention sequence-first through `nn.MultiheadAttention`'s general path. The original
  runs so on a GPU, and on the CPU wherever it is given `torch.device("cpu")` rather than the string (its
  benchmark script does: its baselines test `device == "cpu"`).
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from ..images import reading as imgs
from ..images.transforms import ORIGINAL_224, RESIZE_CROP, Preprocessing
from ..model.checkpoint import load_converted, read_state_dict
from ..model.factory import resolve_device, resolve_dtype
from ..model.torchscript import is_torchscript_archive, read_torchscript_tensors
from . import sources
from .base import DEFAULT_CACHE_SIZE, Baseline, JudgeSpec
from .bpe import CONTEXT_LENGTH, OPENAI, BpeTokens, bpe_tokens
from .bpe import tokenizer as bpe_tokenizer
from .cache import EmbeddingCache

# int64 buffers of OpenAI's archive that `clip.build_model` deletes before its strict load.
IGNORED_KEYS = frozenset({"input_resolution", "context_length", "vocab_size"})


# ----------------------------------------------------------------------------------------------- tokens
def clip_tokens(prompt: str) -> BpeTokens:
    """`clip.tokenize(prompt, truncate=True)` of OpenAI's CLIP (its `<|endoftext|>` strings), bounded: see
    `bpe.bpe_tokens`.

    Raises:
        TypeError: `prompt` is not a string.
    """
    return bpe_tokens(prompt, OPENAI)


# ------------------------------------------------------------------------------------------------ tower
class ClipTower(nn.Module):
    """OpenAI's CLIP (open_clip `CLIP`) and a cache of normalised image features shared by its judges."""

    def __init__(self, model: nn.Module, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        super().__init__()
        self.model = model
        self.cache = EmbeddingCache(cache_size)

    @property
    def embed_dim(self) -> int:
        return self.model.text_projection.shape[1]

    @torch.inference_mode()
    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Decoded pixels (N, 3, S, S): uint8 (resize-crop), or float32 in [0, 1] (HPSv2.1's letterbox) ->
        normalised image features (N, embed) float32."""
        return self.encode(pixels)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """`image_features` with gradients to float `pixels` (the differentiable rewards' path)."""
        x = imgs.normalize(pixels).to(self.model.visual.conv1.weight.dtype)
        return F.normalize(self.model.encode_image(x)).float()

    @torch.inference_mode()
    def text_features(self, tokens: BpeTokens) -> torch.Tensor:
        """One prompt -> its normalised text feature (1, embed) float32."""
        device = self.model.positional_embedding.device
        return F.normalize(self.model.encode_text(tokens.ids.to(device))).float()

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        self.cache.clear()
        return super()._apply(fn, recurse)


def read_clip_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """OpenAI's file (a TorchScript archive, read without running it: `torchscript.py`) or a plain state
    dict saved with `torch.save`, as `clip.load(jit=False)` accepts either."""
    if is_torchscript_archive(path):
        return read_torchscript_tensors(path)
    return read_state_dict(path)


def _dims(state: dict[str, torch.Tensor], path: Path) -> dict[str, int]:
    """The architecture read off the weights' shapes, as `clip.build_model` does (heads = width // 64)."""
    needed = ("visual.conv1.weight", "visual.positional_embedding", "text_projection", "positional_embedding")
    needed += ("token_embedding.weight", "ln_final.weight")
    missing = [k for k in needed if k not in state]
    if missing:
        raise CheckpointError(f"{path} is not a CLIP ViT checkpoint: missing keys {missing}")
    vision_width, _, patch, _ = state["visual.conv1.weight"].shape
    grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    text_width = state["ln_final.weight"].shape[0]
    return {
        "embed_dim": state["text_projection"].shape[1],
        "vision_width": vision_width,
        "vision_layers": len({k.split(".")[3] for k in state if k.startswith("visual.transformer.resblocks.")}),
        "patch_size": patch,
        "image_size": patch * grid,
        "context_length": state["positional_embedding"].shape[0],
        "vocab_size": state["token_embedding.weight"].shape[0],
        "text_width": text_width,
        "text_heads": max(1, text_width // 64),
        "text_layers": len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")}),
    }


def build_clip(dims: dict[str, int], dtype: torch.dtype = torch.float32) -> nn.Module:
    """open_clip's CLIP of these dimensions; for half precision with OpenAI's float32 LayerNorms (see
    `openai_half`)."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    return CLIP(
        dims["embed_dim"],
        vision_cfg=CLIPVisionCfg(
            layers=dims["vision_layers"],
            width=dims["vision_width"],
            patch_size=dims["patch_size"],
            image_size=dims["image_size"],
        ),
        text_cfg=CLIPTextCfg(
            context_length=dims["context_length"],
            vocab_size=dims["vocab_size"],
            width=dims["text_width"],
            heads=dims["text_heads"],
            layers=dims["text_layers"],
        ),
        quick_gelu=True,
        cast_dtype=dtype if dtype != torch.float32 else None,
    )


def clip_from_state(
    state: dict[str, torch.Tensor], source: str | Path, dtype: torch.dtype = torch.float32
) -> nn.Module:
    """CLIP built from the weights' shapes on the meta device, every tensor of `state` assigned strictly
    (errors name the file's keys), to be run in `dtype` (see `placed`). Meta tensors in `state` give a meta
    model (for checking layouts)."""
    state = {k: v for k, v in state.items() if k not in IGNORED_KEYS}
    dims = _dims(state, Path(source))
    with torch.device("meta"):
        model = build_clip(dims, dtype)
    load_converted(model, state, advice=f"{source} should be OpenAI's CLIP ViT file (e.g. ViT-L-14.pt).")
    n = dims["context_length"]
    model.attn_mask = torch.full((n, n), float("-inf")).triu_(1)  # the causal mask, a buffer not in the file
    return model


def placed(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """An open_clip CLIP on `device`: float32 upcasts everything; half precision casts the Linear, Conv and
    attention weights and keeps norms and embeddings in float32 (OpenAI's layout, as `clip.load` on CUDA)."""
    from open_clip.model import convert_weights_to_lp

    model = model.to(device)
    if dtype == torch.float32:
        model = model.float()
    else:
        convert_weights_to_lp(model.float(), dtype)
    return model.eval()


def openai_half(model: nn.Module) -> nn.Module:
    """OpenAI's CLIP in half precision, from open_clip's built with `build_clip(dims, dtype)`: OpenAI's
    `ResidualAttentionBlock` runs `nn.MultiheadAttention` sequence-first (batch_first=False), so attention
    takes the module's general path (input projection, `scaled_dot_product_attention`, output projection)
    and never the fused fast path open_clip's batch-first blocks take in inference. In float16 the two round
    differently (2e-3 apart in a CLIP score); OpenAI's LayerNorms (float32, cast back) are `build_clip`'s."""
    from open_clip.transformer import Transformer

    for module in model.modules():
        if isinstance(module, (Transformer, nn.MultiheadAttention)):
            module.batch_first = False
    return model


def load_clip_model(path: Path, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """CLIP from OpenAI's file, placed (see `placed`), computing as OpenAI's in half precision."""
    model = placed(clip_from_state(read_clip_weights(path), path, dtype), device, dtype)
    return openai_half(model) if dtype != torch.float32 else model


_TOWERS: weakref.WeakValueDictionary[tuple, ClipTower] = weakref.WeakValueDictionary()
_TOWERS_LOCK = threading.Lock()


def shared_tower(path: Path, device: torch.device, dtype: torch.dtype) -> ClipTower:
    """The tower for this file, device and dtype: loaded once while any judge holds it."""
    key = (str(path.resolve()), path.stat().st_mtime_ns, str(device), dtype)
    with _TOWERS_LOCK:
        tower = _TOWERS.get(key)
        if tower is None:
            tower = ClipTower(load_clip_model(path, device, dtype))
            _TOWERS[key] = tower
        return tower


# ----------------------------------------------------------------------------------------------- judges
class TowerJudge(Baseline):
    """A judge on a `ClipTower`: its device, dtype and image features (cached in the tower's cache)."""

    preprocessing_kind = RESIZE_CROP

    def __init__(self, name: str, tower: ClipTower) -> None:
        super().__init__(name)
        self.tower = tower
        self.embedding_cache = tower.cache  # shared: CLIP and Aesthetic encode an image once between them
        self.preprocessing = Preprocessing(self.preprocessing_kind, tower.model.visual.image_size[0])

    @property
    def device(self) -> torch.device:
        return self.tower.model.positional_embedding.device

    @property
    def dtype(self) -> torch.dtype:
        return self.tower.model.visual.conv1.weight.dtype

    def features_from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.tower.image_features(pixels)

    def features_with_grad(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.tower.encode(pixels.to(self.device))


class ClipScore(TowerJudge):
    """CLIP score: cosine of CLIP ViT-L/14's normalised text and image features (about -1 to 1)."""

    tokens_type = BpeTokens
    flavour = OPENAI

    def accepts(self, tokens: object) -> bool:
        return isinstance(tokens, BpeTokens) and tokens.flavour == self.flavour

    def tokenize(self, prompt: str) -> BpeTokens:
        return bpe_tokens(prompt, self.flavour)

    def prompt_pieces(self, text: str) -> list[str]:
        return bpe_tokenizer(self.flavour).pieces(text)

    @torch.inference_mode()
    def scores_from_features(self, tokens: BpeTokens, features: torch.Tensor) -> torch.Tensor:
        text = self.tower.text_features(tokens)  # (1, embed)
        return (features.float() * text).sum(dim=1).cpu()

    def scores_with_grad(self, tokens: BpeTokens, features: torch.Tensor) -> torch.Tensor:
        return (features * self.tower.text_features(tokens).clone()).sum(dim=1)


def load_tower(
    download_root: str | Path | None, device: str | torch.device | None, dtype: str | torch.dtype | None
) -> ClipTower:
    """The shared tower of OpenAI's ViT-L/14 file in `download_root` (downloaded there if missing)."""
    target = resolve_device(device)
    return shared_tower(fetch(download_root), target, resolve_dtype(dtype, target))


def load(
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    download_root: str | Path | None = None,
) -> ClipScore:
    """CLIP score on OpenAI's ViT-L/14 file (`ViT-L-14.pt` in `download_root`, downloaded there if missing).

    Raises:
        imagereward.WeightsUnavailableError: the file is missing and could not be downloaded.
        imagereward.CheckpointError: the file is corrupt or does not fit (named).
    """
    return ClipScore(SPEC.name, load_tower(download_root, device, dtype))


def fetch(download_root: str | Path | None) -> Path:
    """OpenAI's `ViT-L-14.pt` in `download_root` (downloaded there, SHA-256 checked, if missing)."""
    return sources.fetch_file(SPEC.weights[0], download_root, SPEC.name)


SPEC = JudgeSpec(
    name="CLIP",
    label="CLIP",
    load=load,
    fetch=fetch,
    preprocessing=ORIGINAL_224,
    meaning="cosine of CLIP ViT-L/14 text and image features, -1..1 (typically 0.1..0.4)",
    # OpenAI's file, as the original downloads it (its SHA-256 is in the URL, and checked after a download).
    weights=(
        sources.WeightsFile(
            "https://openaipublic.azureedge.net/clip/models/"
            "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
            sha256="b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
        ),
    ),
    prompt_tokens=CONTEXT_LENGTH,
    paper_accuracy=54.82,
    # The original's benchmark: `clip.load` keeps OpenAI's float16 on a GPU, and on the CPU too: the script passes
    # `torch.device("cpu")`, which the baseline's `device == "cpu"` does not match.
    benchmark_dtype="fp16",
    differentiable=True,
)
ClipScore.spec = SPEC
