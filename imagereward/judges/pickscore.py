"""PickScore v1 (Kirstain et al., 2023), as its README computes it (yuvalkirstain/PickScore):

    processor = AutoProcessor.from_pretrained("laion/CLIP-ViT-H-14-laion2B-s32B-b79K")
    model = AutoModel.from_pretrained("yuvalkirstain/PickScore_v1")
    scores = model.logit_scale.exp() * cos(text_features, image_features)
    probs = softmax(scores over the images scored together)

on transformers' `CLIPModel` (the original's own class: PickScore's file loads with its own keys) with what
transformers 4.27.3 (PickScore's pin) does around it:

- Tokens: the processor's *fast* tokenizer from its `tokenizer.json` (run here with the `tokenizers` library
  directly): NFC, whitespace collapsed, lower case; no ftfy, no `html.unescape`; a literal `<|endoftext|>` is
  the end id. `truncation=True, max_length=77` keeps the end id last; one prompt is never padded.
- Text features at `input_ids.argmax(-1)` (the first end id), as 4.27 pools, whatever `eos_token_id` the
  config holds.
- Pixels: `preprocessing.RGB_RESIZE_CROP` with the processor's sizes, then ×1/255 and its mean/std.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

import torch
import torch.nn.functional as F

from ..errors import CheckpointError
from ..images.reading import ImageInput
from ..images.transforms import RGB_RESIZE_CROP, Preprocessing
from ..model.checkpoint import load_converted, read_state_dict
from ..model.factory import resolve_device, resolve_dtype
from ..model.tokenizer import clean_prompt, read_enough
from . import sources
from .base import Baseline, JudgeSpec

PICKSCORE_MODEL = sources.HubRepo("yuvalkirstain/PickScore_v1")
PICKSCORE_PROCESSOR = sources.HubRepo("laion/CLIP-ViT-H-14-laion2B-s32B-b79K")
PICKSCORE_WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # the first the repo (or folder) has

if TYPE_CHECKING:
    from transformers import CLIPConfig, CLIPModel

MAX_TOKENS = 77
# transformers 4.27 saved these int64 buffers; later versions rebuild them (non-persistent). Files may or may
# not hold them.
POSITION_IDS = ("text_model.embeddings.position_ids", "vision_model.embeddings.position_ids")
BICUBIC = 3  # PIL's resample code, the only one CLIPImageProcessor is used with here


# ----------------------------------------------------------------------------------------------- tokens
class PickTokens(NamedTuple):
    """One prompt as PickScore's processor reads it: `ids` (1, n ≤ 77) int64, unpadded; `length` the tokens
    the prompt takes untruncated as far as it was read; whether the whole prompt was read."""

    ids: torch.Tensor
    length: int
    complete: bool


class PickTokenizer:
    """The processor's fast tokenizer (`tokenizer.json`), truncating to 77 with the end id kept last."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as e:  # the Rust side raises its own exception type on a bad file
            raise CheckpointError(f"{path} is not a tokenizers file ({e}); it should be the processor's") from e
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()

    def pieces(self, text: str) -> list[str]:
        """`text`'s tokens (as the vocabulary spells them), no start or end token."""
        encoding = self._tokenizer.encode(clean_prompt(text))
        return [token for token, special in zip(encoding.tokens, encoding.special_tokens_mask) if not special]

    def __call__(self, prompt: str) -> PickTokens:
        """Raises: TypeError: `prompt` is not a string."""
        if not isinstance(prompt, str):
            raise TypeError(f"a prompt must be a string, got {type(prompt).__name__}")
        ids, complete = read_enough(prompt, lambda text: self._tokenizer.encode(text).ids, MAX_TOKENS)
        # Truncated as the processor truncates (`truncation=True, max_length=77`): the end id kept last.
        kept = ids if len(ids) <= MAX_TOKENS else [*ids[: MAX_TOKENS - 1], ids[-1]]
        return PickTokens(torch.tensor([kept], dtype=torch.int64), len(ids), complete)


# ------------------------------------------------------------------------------------------- processor
@dataclass(frozen=True)
class ImageProcessing:
    """What `preprocessor_config.json` says: the resize and crop sides, mean and std."""

    size: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def read_image_processing(path: Path) -> ImageProcessing:
    """`CLIPImageProcessor`'s settings, in the old (`"size": 224`) or new (`{"shortest_edge": 224}`) layout.

    Raises:
        CheckpointError: unreadable, or settings this re-implementation does not reproduce (named).
    """
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"could not read {path} ({e})") from e

    def side(value: Any, key: str) -> int:
        if isinstance(value, dict):
            value = value.get(key, value.get("height"))
        if not isinstance(value, int) or value < 1:
            raise CheckpointError(f"{path}: unsupported {key} {value!r}; expected a whole number of pixels")
        return value

    for flag in ("do_resize", "do_center_crop", "do_normalize", "do_convert_rgb"):
        if cfg.get(flag, True) is not True:
            raise CheckpointError(f"{path}: {flag}=false is not supported; PickScore's processor does all steps")
    if cfg.get("resample", BICUBIC) != BICUBIC:
        raise CheckpointError(f"{path}: resample {cfg['resample']!r} is not supported; PickScore's is 3 (bicubic)")
    if cfg.get("do_rescale", True) is not True or cfg.get("rescale_factor", 1 / 255) != 1 / 255:
        raise CheckpointError(f"{path}: only the 1/255 rescale is supported")
    size, crop = side(cfg.get("size", 224), "shortest_edge"), side(cfg.get("crop_size", 224), "height")
    if size != crop:
        raise CheckpointError(f"{path}: size {size} and crop_size {crop} differ; only equal ones are supported")
    mean, std = cfg.get("image_mean"), cfg.get("image_std")
    if not (isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == 3):
        raise CheckpointError(f"{path}: image_mean and image_std must be three numbers each")
    return ImageProcessing(size, crop, tuple(mean), tuple(std))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- model
def _clip_config(path: Path) -> CLIPConfig:
    from transformers import CLIPConfig

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"could not read {path} ({e})") from e
    if raw.get("model_type") != "clip":
        raise CheckpointError(f"{path} is not a CLIP config (model_type {raw.get('model_type')!r})")
    config = CLIPConfig(**{k: v for k, v in raw.items() if k not in ("model_type", "transformers_version")})
    config._attn_implementation = "sdpa"
    return config


def pickscore_from_state(state: dict[str, torch.Tensor], config_path: Path, source: str | Path) -> CLIPModel:
    """`CLIPModel` built on the meta device from `config.json`, every tensor of `state` assigned strictly
    (errors name the file's keys; its position-id buffers are accepted and rebuilt). Meta tensors give a meta
    model (for checking layouts)."""
    from transformers import CLIPModel

    config = _clip_config(config_path)
    with torch.device("meta"):
        model = CLIPModel(config)
    state = {k: v for k, v in state.items() if k not in POSITION_IDS}
    load_converted(model, state, advice=f"{source} should be PickScore_v1's model file, with its config.json.")
    text, vision = model.text_model.embeddings, model.vision_model.embeddings
    text.position_ids = torch.arange(config.text_config.max_position_embeddings).expand((1, -1))
    vision.position_ids = torch.arange(vision.num_positions).expand((1, -1))
    return model


class PickScore(Baseline):
    """PickScore v1: `logit_scale.exp()` (100) × cosine of its CLIP ViT-H/14 features (typically 15..25);
    `probabilities` gives the README's softmax over images scored together ("PickScore's choice")."""

    tokens_type = PickTokens

    def __init__(self, model: CLIPModel, tokenizer: PickTokenizer, processing: ImageProcessing, name: str = "") -> None:
        super().__init__(name)
        self.model = model
        self.tokenizer = tokenizer
        self.preprocessing = Preprocessing(RGB_RESIZE_CROP, processing.size)
        self._mean = torch.tensor(processing.mean, dtype=torch.float32).view(-1, 1, 1)
        self._std = torch.tensor(processing.std, dtype=torch.float32).view(-1, 1, 1)
        # exp(logit_scale) in float32 as the file holds it, also when the network runs in half precision
        self._scale = model.logit_scale.detach().to("cpu", torch.float32).exp()

    @property
    def device(self) -> torch.device:
        return self.model.logit_scale.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.visual_projection.weight.dtype

    def tokenize(self, prompt: str) -> PickTokens:
        return self.tokenizer(prompt)

    def prompt_pieces(self, text: str) -> list[str]:
        return self.tokenizer.pieces(text)

    @torch.inference_mode()
    def features_from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, S, S) -> normalised image features (N, embed) float32."""
        return self.features_with_grad(pixels.to(torch.float32).div(255))

    def features_with_grad(self, pixels: torch.Tensor) -> torch.Tensor:
        """float (N, 3, S, S) in [0, 1] -> normalised image features (N, embed) float32, with gradients."""
        x = pixels.to(self.device, torch.float32)
        x = x.sub(self._mean.to(x.device)).div(self._std.to(x.device)).to(self.dtype)
        pooled = self.model.vision_model(pixel_values=x).pooler_output
        return F.normalize(self.model.visual_projection(pooled).float(), dim=-1)

    @torch.inference_mode()
    def text_features(self, tokens: PickTokens) -> torch.Tensor:
        ids = tokens.ids.to(self.device)
        hidden = self.model.text_model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        pooled = hidden[torch.arange(ids.shape[0], device=ids.device), ids.argmax(dim=-1)]
        return F.normalize(self.model.text_projection(pooled).float(), dim=-1)

    @torch.inference_mode()
    def scores_from_features(self, tokens: PickTokens, features: torch.Tensor) -> torch.Tensor:
        return self._scale * (features.float() @ self.text_features(tokens)[0]).cpu()

    def scores_with_grad(self, tokens: PickTokens, features: torch.Tensor) -> torch.Tensor:
        text = self.text_features(tokens)[0].clone()
        return self._scale.to(features.device) * (features @ text)

    def probabilities(self, prompt: str, images: Sequence[ImageInput]) -> list[float]:
        """The README's `calc_probs(prompt, images)`: softmax of the scores over `images` (they sum to 1)."""
        return softmax(self.rewards(prompt, images))


def softmax(scores: Sequence[float]) -> list[float]:
    """PickScore's probabilities of a set of scores (float32 softmax, as `torch.softmax` in its README)."""
    if not scores:
        return []
    return torch.softmax(torch.tensor(list(scores), dtype=torch.float32), dim=-1).tolist()


def load_pickscore(
    model_dir: Path, processor_dir: Path, device: torch.device, dtype: torch.dtype, name: str = ""
) -> PickScore:
    """PickScore from a folder holding the model repo's `config.json` + `model.safetensors` (or
    `pytorch_model.bin`) and one holding the processor repo's `tokenizer.json` + `preprocessor_config.json`.

    Raises:
        CheckpointError: a file is missing, unreadable, or does not fit (named).
    """
    weights = next((model_dir / f for f in PICKSCORE_WEIGHTS if (model_dir / f).is_file()), None)
    needed = {
        model_dir / "config.json": "PickScore's config",
        processor_dir / "tokenizer.json": "the processor's tokenizer",
        processor_dir / "preprocessor_config.json": "the processor's image settings",
    }
    missing = [f"{path} ({what})" for path, what in needed.items() if not path.is_file()]
    if weights is None:
        missing.append(f"{model_dir}/{PICKSCORE_WEIGHTS[0]} (PickScore's weights)")
    if missing:
        raise CheckpointError(f"PickScore needs files that are not there: {', '.join(missing)}")
    model = pickscore_from_state(read_state_dict(weights), model_dir / "config.json", weights)  # type: ignore[arg-type]
    tokenizer = PickTokenizer(processor_dir / "tokenizer.json")
    judge = PickScore(model.float(), tokenizer, read_image_processing(processor_dir / "preprocessor_config.json"), name)
    return judge.to(device=device, dtype=dtype).eval()


def load(
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    download_root: str | Path | None = None,
) -> PickScore:
    """PickScore from its hub repos' files (`SPEC.weights`: the Hugging Face cache, or folders of
    `download_root`), fetched if missing.

    Raises:
        imagereward.WeightsUnavailableError: a file is missing and could not be downloaded.
        imagereward.CheckpointError: a file is corrupt or does not fit (named).
    """
    target = resolve_device(device)
    model_dir, processor_dir = fetch(download_root)
    return load_pickscore(model_dir, processor_dir, target, resolve_dtype(dtype, target), SPEC.name)


def fetch(download_root: str | Path | None) -> tuple[Path, Path]:
    """PickScore's model folder and its processor's folder (`SPEC.weights`: the Hugging Face cache, or `<root>/<owner>-<repo>/`)."""
    paths = [sources.fetch_file(w, download_root, SPEC.name) for w in SPEC.weights]
    return paths[0].parent, paths[2].parent


SPEC = JudgeSpec(
    name="PickScore",
    label="PickScore",
    load=load,
    fetch=fetch,
    preprocessing=Preprocessing(RGB_RESIZE_CROP, 224),
    meaning="PickScore v1: 100 x cosine of its CLIP ViT-H/14 features, typically 15..25; its choice is the softmax "
    "of the scores over the images compared",
    # The model repo's config and weights, and the processor's files from LAION's repo (not its 4 GB of
    # weights), as `from_pretrained` fetches them: the model folder, then the processor folder.
    weights=(
        sources.HubFile(PICKSCORE_MODEL, ("config.json",)),
        sources.HubFile(PICKSCORE_MODEL, PICKSCORE_WEIGHTS),
        sources.HubFile(PICKSCORE_PROCESSOR, ("tokenizer.json",)),
        sources.HubFile(PICKSCORE_PROCESSOR, ("preprocessor_config.json",)),
    ),
    prompt_tokens=MAX_TOKENS,
    choice=softmax,
    differentiable=True,
)
PickScore.spec = SPEC
