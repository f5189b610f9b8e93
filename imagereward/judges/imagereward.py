"""ImageReward, the judge (Xu et al., "ImageReward", arXiv 2304.05977; the original `image-reward` 1.5): the
network (`model.ImageRewardModel`) with the original's API (`load`, `score`, `inference_rank`, `preprocess`),
batched as every judge is (`judges.base.Judge`), with CUDA graphs for small batches and float32 rescoring
where float16 overflows.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import torch
from PIL import Image

from ..images import reading as imgs
from ..images.decoding import Decoded
from ..images.reading import ImageInput
from ..images.transforms import ORIGINAL_224, RESIZE_CROP, Preprocessing
from ..model.config import MAX_PROMPT_TOKENS, ModelConfig
from ..model.factory import ConfigSource, load_network
from ..model.graphs import SmallBatchGraphs
from ..model.network import ImageRewardModel
from ..model.pretrained import PretrainedWeights, available_models, register, resolve
from ..model.tokenizer import PromptTokens, encode_prompt, prompt_pieces
from . import sources
from .base import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CACHE_SIZE,
    Judge,
    JudgeSpec,
    Result,
    Scored,
    check_batch_size,
    ranks_from_rewards,
)

__all__ = ["ImageReward", "approximate_results", "available_models", "load"]

if TYPE_CHECKING:
    from .explain import Explanation

# The published weights, by the name the original loads them with.
WEIGHTS = "ImageReward-v1.0"
_PUBLISHED = PretrainedWeights(repo_id="THUDM/ImageReward")
register(WEIGHTS, _PUBLISHED)


class ImageReward(Judge, ImageRewardModel):
    """ImageReward with the original package's API. Build it with `imagereward.load`.

    Attributes (besides `Judge`'s):
        cuda_graphs: replay small batches (up to 32 images) from CUDA graphs (`graphs.SmallBatchGraphs`):
            `None` (default) on CUDA, False never.
    """

    tokens_type = PromptTokens
    non_finite_reason = "its reward is not a finite number even in float32; the weights may hold inf or NaN"

    def __init__(
        self,
        config: ModelConfig,
        name: str = "",
        batch_size: int = DEFAULT_BATCH_SIZE,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        ImageRewardModel.__init__(self, config)
        self._init_judge(name, batch_size, cache_size)
        self.preprocessing = Preprocessing(RESIZE_CROP, config.vision.image_size)
        self.cuda_graphs: bool | None = None
        self._graphs: SmallBatchGraphs | None = None
        self._float32_twin: ImageRewardModel | None = None

    # ----------------------------------------------------------------------------------------- state
    @property
    def device(self) -> torch.device:
        return self.visual_encoder.cls_token.device

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype of the encoders (the head always runs in float32)."""
        return self.visual_encoder.cls_token.dtype

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        # Moving or casting the model invalidates the float32 copy and the CUDA graphs made before.
        self._float32_twin = None
        self._graphs = None
        return super()._apply(fn, recurse)

    # ----------------------------------------------------------------------------------- the original API
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The original's `model.preprocess(pil_image)`: float32 (3, 224, 224) on the CPU."""
        return imgs.preprocess(image, self.config.vision.image_size)

    def score(self, prompt: str, image: ImageInput | Sequence[ImageInput]) -> float | list[float]:
        """Reward of one image (a float) or of a list of images (a list of floats, also for one image).

        Raises:
            ImageError: an input could not be read or scored (its name and the reason are in the message).
        """
        if isinstance(image, (list, tuple)):
            return self.rewards(prompt, image)
        return self.rewards(prompt, [image])[0]

    def inference_rank(self, prompt: str, generations_list: Sequence[ImageInput]) -> tuple[list[int], list[float]]:
        """Ranks images as the original does: `(ranking, rewards)`, ranking[i] the 1-based rank of image i."""
        rewards = self.rewards(prompt, generations_list)
        return ranks_from_rewards(rewards), rewards

    # ------------------------------------------------------------------------------------ judge hooks
    def tokenize(self, prompt: str) -> PromptTokens:
        return encode_prompt(prompt)

    def prompt_pieces(self, text: str) -> list[str]:
        return prompt_pieces(text)

    def features_from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 pixels (N, 3, 224, 224) on the device -> ViT tokens (N, 197, width)."""
        embeds = self._graphed(lambda g: g.encode_images(pixels, self.dtype))
        if embeds is None:
            embeds = self.encode_images(imgs.normalize(pixels).to(self.dtype))
        return embeds

    def scores_from_features(self, tokens: PromptTokens, features: torch.Tensor) -> torch.Tensor:
        rewards = self._graphed(lambda g: g.score_embeddings(features, tokens.input_ids, tokens.attention_mask))
        if rewards is None:
            rewards = self.score_embeddings(features, tokens.input_ids, tokens.attention_mask)
        return rewards.cpu()

    @torch.inference_mode()
    def pair_scores(self, prompts: Sequence[str], features: torch.Tensor) -> list[float]:
        """One reward per row, each with its own prompt: one text-encoder pass per prompt length, each row run
        at its own length (as a prompt scored alone is)."""
        tokens = [self.prompt_tokens(p) for p in prompts]
        lengths = [int(t.attention_mask.sum()) for t in tokens]
        rewards: list[float] = [0.0] * len(tokens)
        for length in sorted(set(lengths)):
            rows = [k for k, n in enumerate(lengths) if n == length]
            ids = torch.cat([tokens[k].input_ids[:, :length] for k in rows]).to(self.device)
            mask = torch.cat([tokens[k].attention_mask[:, :length] for k in rows]).to(self.device)
            for k, r in zip(rows, self.forward_head(self.encode_text(ids, mask, features[rows])).cpu().tolist()):
                rewards[k] = r
        return rewards

    @torch.inference_mode()
    def rescore(self, tokens: PromptTokens, decoded: Sequence[Decoded]) -> list[Scored] | None:
        """Rewards in float32, from a float32 copy of the weights made on first use and kept, for images whose
        float16 reward overflowed (None in any other precision: float32 has nothing safer)."""
        if self.dtype != torch.float16:
            return None
        if self._float32_twin is None:
            twin = ImageRewardModel.__new__(ImageRewardModel)
            torch.nn.Module.__init__(twin)
            twin.config = self.config
            for part in ("visual_encoder", "text_encoder", "head"):
                setattr(twin, part, copy.deepcopy(getattr(self, part)).float())
            self._float32_twin = twin.eval()
        batch = torch.stack([d.pixels for d in decoded]).to(self.device)
        rewards = self._float32_twin(tokens.input_ids, tokens.attention_mask, imgs.normalize(batch)).cpu().tolist()
        return [Scored(r, torch.float32) for r in rewards]

    # --------------------------------------------------------------------------------- differentiable
    def score_gard(
        self, prompt_ids: torch.Tensor, prompt_attention_mask: torch.Tensor, image: torch.Tensor
    ) -> torch.Tensor:
        """The original's differentiable reward, under its name and signature (ReFL's trainer calls it):
        normalised rewards (B, 1) of normalised pixels, with gradients to `image` (and to the weights unless
        they are frozen). The inference paths (`score`, `rewards`, ...) never build a graph.

        Args:
            prompt_ids: (B, 35) token ids, as the BLIP tokenizer gives them with `padding='max_length',
                truncation=True, max_length=35` (`tokenizer.tokenize`).
            prompt_attention_mask: (B, 35).
            image: (B, 3, 224, 224) normalised pixels (`images.transforms.generator_pixels`, or `preprocess`).

        Returns:
            (B, 1) float32 rewards.
        """
        embeds = self.encode_images(image.to(self.device, self.dtype))
        ids, mask = prompt_ids.to(self.device), prompt_attention_mask.to(self.device)
        return self.forward_head(self.encode_text(ids, mask, embeds))[:, None]

    def differentiable_rewards(self, prompts: str | Sequence[str], images: torch.Tensor) -> torch.Tensor:
        """Rewards with gradients to `images`, for reward-feedback fine-tuning of a generator: ReFL's own
        preprocessing of the tensor (`images.transforms.generator_pixels`) and tokens (`padding='max_length',
        truncation=True, max_length=35`), then `score_gard`. Works with the weights frozen
        (`requires_grad_(False)`) and under `torch.autocast`.

        Args:
            prompts: one prompt for every image, or one per image.
            images: float (B, 3, H, W) in [0, 1], e.g. a VAE's output.

        Returns:
            (B,) float32 rewards.

        Raises:
            ValueError: `images` is not a float (B, 3, H, W) tensor, or not one prompt per image.
        """
        from ..images.transforms import generator_pixels

        batch = images.shape[0] if isinstance(images, torch.Tensor) and images.ndim == 4 else None
        prompts = [prompts] * (batch or 1) if isinstance(prompts, str) else list(prompts)
        if batch is not None and len(prompts) != batch:
            raise ValueError(f"{len(prompts)} prompts for {batch} images; give one prompt, or one per image")
        pixels = generator_pixels(images, self.config.vision.image_size)
        tokens = [encode_prompt(p) for p in prompts]
        ids = torch.cat([t.input_ids for t in tokens])
        mask = torch.cat([t.attention_mask for t in tokens])
        return self.score_gard(ids, mask, pixels)[:, 0]

    def explain(self, prompt: str, image: ImageInput, name: str | None = None) -> Explanation:
        """Why `image` gets its score for `prompt`: what the model read of the prompt, each read word's effect
        on the score, and a map of what in the 224 crop raised or lowered it (`explain.Explanation`; an
        estimate of what drove the score).

        Args:
            prompt: one prompt.
            image: one input (see `rewards`).
            name: how to name it in errors.

        Returns:
            `ex.read`, `ex.unread`, `ex.words` ([(word, effect)] in prompt order), `ex.heatmap` (float32 14 x 14,
            positive: raised the score), `ex.crop_box` ((left, top, right, bottom) of the crop in the image's
            pixels).

        Raises:
            ImageError: the image cannot be read or its resize is too large (named).
        """
        from .explain import explain

        return explain(self, prompt, image, name)

    def _graphed(self, run: Callable[[SmallBatchGraphs], torch.Tensor | None]) -> torch.Tensor | None:
        """`run` on the small-batch CUDA graphs when they are on (see `cuda_graphs`); None to run eagerly.
        A part that cannot be captured turns the graphs off with a warning."""
        if self.cuda_graphs is False or self.device.type != "cuda":
            return None
        if self._graphs is None:
            self._graphs = SmallBatchGraphs(self, imgs.normalize)
        try:
            return run(self._graphs)
        except RuntimeError as e:
            warnings.warn(f"CUDA graphs turned off, running eagerly: {e}", RuntimeWarning, stacklevel=3)
            self.cuda_graphs, self._graphs = False, None
            return None


def load(
    name_or_path: str | Path = WEIGHTS,
    device: str | torch.device | None = None,
    download_root: str | Path | None = None,
    med_config: ConfigSource = None,
    vision_config: ConfigSource = None,
    dtype: str | torch.dtype | None = None,
    *,
    name: str | None = None,
) -> ImageReward:
    """Loads an ImageReward model, a drop-in for the original's `ImageReward.load`.

    Args:
        name_or_path: a name from `available_models()` (downloaded from the Hugging Face hub), a checkpoint
            file (`.pt` or `.safetensors`), or a folder laid out like the hub repo.
        device: where to run; default CUDA when available, else the CPU.
        download_root: put downloaded files in this folder instead of the Hugging Face cache.
        med_config: the text encoder's config (path or dict); default the one beside the checkpoint.
        vision_config: the image encoder's config (path or dict); default the one beside the checkpoint,
            else ViT-L/16.
        dtype: compute dtype of the encoders; default float32 on the CPU (the original's numbers) and
            float16 on CUDA. The head always runs in float32.
        name: the original's name for `name_or_path`, accepted so that `load(name=...)` keeps working.

    Returns:
        The model in eval mode, on `device`.

    Raises:
        ValueError: unknown name, device or dtype.
        FileNotFoundError: a path that does not exist, or a folder without a checkpoint.
        imagereward.WeightsUnavailableError: the download failed and nothing is cached.
        imagereward.CheckpointError: a corrupt checkpoint, or one whose keys or shapes do not fit.
    """
    if name is not None:
        name_or_path = name
    model = load_network(
        lambda config: ImageReward(config, name=str(name_or_path)),
        name_or_path,
        device,
        download_root,
        med_config,
        vision_config,
        dtype,
    )
    return model


def _load_judge(
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    download_root: str | Path | None = None,
    weights: str | Path | None = None,
) -> ImageReward:
    """`SPEC.load`: the `weights` (a registry name or a path; default the published ones)."""
    return load(weights if weights is not None else WEIGHTS, device=device, download_root=download_root, dtype=dtype)


def _fetch(download_root: str | Path | None) -> None:
    resolve(WEIGHTS, download_root)


SPEC = JudgeSpec(
    name=WEIGHTS,
    label="ImageReward",
    load=_load_judge,
    fetch=_fetch,
    preprocessing=ORIGINAL_224,
    meaning="predicted human preference; 0 is an average generation, most scores in -2..2",
    # Its published weights live in the model's registry (`model.pretrained`): these are that entry's files.
    weights=(
        sources.HubFile(sources.HubRepo(_PUBLISHED.repo_id, _PUBLISHED.revision), (_PUBLISHED.weights_file,)),
        sources.HubFile(sources.HubRepo(_PUBLISHED.repo_id, _PUBLISHED.revision), (_PUBLISHED.med_config_file,)),
    ),
    prompt_tokens=MAX_PROMPT_TOKENS,
    paper_accuracy=65.14,
    primary=True,
    # The original's benchmark: `RM.load` keeps the weights' float32 on every device.
    benchmark_dtype="fp32",
    differentiable=True,
)
ImageReward.spec = SPEC


@torch.inference_mode()
def approximate_results(
    model: ImageReward,
    prompt: str | PromptTokens,
    paths: Sequence[str | os.PathLike],
    names: Sequence[str] | None = None,
    batch_size: int | None = None,
    read_threads: int = 16,
) -> list[Result]:
    """Rewards of image files with JPEGs decoded and resized on the GPU: APPROXIMATE (nvJPEG and torch's
    bicubic are not Pillow's; see `gpu_decode`). Files that are not RGB or grey JPEGs, and rewards that
    overflowed in half precision, go through the exact path in the same call.

    Args:
        model: an ImageReward model on CUDA (on the CPU this runs torchvision's CPU decoder instead, which is
            only useful for testing).
        prompt: the prompt (or its tokens).
        paths: image files.
        names: how to name them in errors (default: the paths).
        batch_size: images per forward pass (default `model.batch_size`).
        read_threads: threads reading files and their headers ahead of the GPU.

    Returns:
        `Scored` or `ImageError` per file, in order.
    """
    from ..images.gpu import gpu_batches

    tokens = model.prompt_tokens(prompt)
    names = list(names) if names is not None else [os.fspath(p) for p in paths]
    size = check_batch_size(batch_size or model.batch_size)
    out: list[Result | None] = [None] * len(paths)
    exact: list[int] = []
    for batch in gpu_batches(paths, names, model.config.vision.image_size, size, model.device, read_threads):
        for i, error in batch.errors.items():
            out[batch.start + i] = error
        exact.extend(batch.start + i for i in batch.exact)
        if batch.pixels is None:
            continue
        embeds = model.encode_images(imgs.normalize(batch.pixels).to(model.dtype))
        rewards = model.score_embeddings(embeds, tokens.input_ids, tokens.attention_mask).tolist()
        for i, reward in zip(batch.rows, rewards):
            if math.isfinite(reward):
                out[batch.start + i] = Scored(reward, model.dtype)
            else:  # half precision overflowed: the exact path rescores it in float32
                exact.append(batch.start + i)
    if exact:
        for i, result in zip(exact, model.results(tokens, [paths[i] for i in exact], size, [names[i] for i in exact])):
            out[i] = result
    return out  # type: ignore[return-value]
