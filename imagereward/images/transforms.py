"""The judges' image preprocessing, each to its original's bit, as pixels a batch can be made of.

A judge says which preprocessing it reads (`Preprocessing`: a kind and a size); judges that read the same
one score the same decoded pixels, so a request decodes each file once per kind. Each kind stops where its
original's work is still per image, before normalisation (`images.normalize`, on the device):

- `RESIZE_CROP` (ImageReward, CLIP, BLIP, Aesthetic; `images.to_pixels`): bicubic resize of the short side
  *before* the RGB conversion, centre crop with `round()` offsets -> uint8.
- `RGB_RESIZE_CROP` (PickScore: transformers 4.27's `CLIPImageProcessor`): `convert("RGB")` *first* (alpha
  dropped, not premultiplied), Pillow bicubic of the short side to `size` and the long side to
  `int(size * long / short)`, centre crop with `//` offsets -> uint8.
- `LETTERBOX` (HPSv2: open_clip's `image_transform(resize_longest_max=True)`): RGB, `ToTensor`, the long side
  resized to `size` *on the float tensor* (`round()` of the other side, antialiased bicubic, no clamp), then
  zero padding to a square -> float32 in about [0, 1]. Two deliberate differences from the original, which
  raises on both: an RGBA image is scored as its RGB (the original hands 4 channels to the model), and a
  non-square image whose long side is already `size` is padded to a square (the original skips the padding
  with the resize, and the position embedding no longer fits).

EXIF orientation is ignored by every original, and here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import ImageLoadError
from . import reading as imgs
from .reading import ImageInput

RESIZE_CROP = "resize-crop"
RGB_RESIZE_CROP = "rgb-resize-crop"
LETTERBOX = "letterbox"


def _rgb_resize_crop(image: Image.Image, size: int) -> torch.Tensor:
    image = image.convert("RGB")
    width, height = image.size
    short, long = min(width, height), max(width, height)
    new_long = int(size * long / short)
    new = (size, new_long) if width <= height else (new_long, size)
    if new != image.size:
        image = image.resize(new, Image.BICUBIC)
    top, left = (image.height - size) // 2, (image.width - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def _letterbox(image: Image.Image, size: int) -> torch.Tensor:
    rgb = np.array(image.convert("RGB"), dtype=np.uint8)
    x = torch.from_numpy(rgb).permute(2, 0, 1).to(torch.float32).div_(255)  # ToTensor (in place: one float copy)
    return letterbox(x[None], size)[0].contiguous()


def letterbox(x: torch.Tensor, size: int) -> torch.Tensor:
    """open_clip's letterbox on float (B, 3, H, W) in [0, 1]: the long side resized to `size` (`round()` of the
    other, antialiased bicubic, no clamp), then zero padding to a square; differentiable."""
    height, width = x.shape[-2:]
    scale = size / float(max(height, width))
    if scale != 1.0:
        new = (round(height * scale), round(width * scale))  # Python's round: halves to even, as the original
        x = F.interpolate(x, size=new, mode="bicubic", align_corners=False, antialias=True)
        height, width = new
    pad_h, pad_w = size - height, size - width
    if pad_h or pad_w:
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=0.0)
    return x


def _check_generator_images(images: torch.Tensor) -> None:
    """Raises ValueError unless `images` is a float (B, 3, H, W) tensor (a generator's output in [0, 1])."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a float tensor (B, 3, H, W) in [0, 1], got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"images must be floats in [0, 1] (as a VAE decodes them), got {images.dtype}")


def tensor_pixels(images: torch.Tensor, preprocessing: Preprocessing) -> torch.Tensor:
    """A judge's preprocessing on float images (B, 3, H, W) in [0, 1] (a VAE's output), differentiably, for
    reward-feedback training: float (B, 3, size, size) in about [0, 1], which the judge normalises.

    `LETTERBOX` is its original's own arithmetic (open_clip resizes the float tensor), so the pixels equal what
    the judge makes of an image file holding the same values. The resize-and-crop kinds resize with Pillow's
    bicubic on 8-bit pixels in their originals; here torch's antialiased bicubic (the same kernel) resizes the
    float tensor, then the crop takes the original's offsets: equal when no resize is needed (an image of the
    judge's size), within Pillow's rounding otherwise.

    Raises:
        ValueError: not a float (B, 3, H, W) tensor.
    """
    _check_generator_images(images)
    size = preprocessing.size
    if preprocessing.kind == LETTERBOX:
        return letterbox(images, size)
    height, width = images.shape[-2:]
    new_width, new_height = preprocessing.resized(width, height)
    x = images
    if (new_height, new_width) != (height, width):
        x = F.interpolate(x, size=(new_height, new_width), mode="bicubic", align_corners=False, antialias=True)
    if preprocessing.kind == RESIZE_CROP:
        top, left = int(round((new_height - size) / 2.0)), int(round((new_width - size) / 2.0))
    else:
        top, left = (new_height - size) // 2, (new_width - size) // 2
    return x[..., top : top + size, left : left + size]


_TRANSFORMS: dict[str, Callable[[Image.Image, int], torch.Tensor]] = {
    RESIZE_CROP: imgs.to_pixels,
    RGB_RESIZE_CROP: _rgb_resize_crop,
    LETTERBOX: _letterbox,
}
KINDS = (RESIZE_CROP, RGB_RESIZE_CROP, LETTERBOX)


@dataclass(frozen=True)
class Preprocessing:
    """One judge's preprocessing: its kind (one of `KINDS`) and the square side it makes."""

    kind: str = RESIZE_CROP
    size: int = 224

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown preprocessing {self.kind!r}; known: {list(KINDS)}")

    @property
    def dtype(self) -> torch.dtype:
        """What its pixels are: uint8, or float32 for a kind that resizes floats."""
        return torch.float32 if self.kind == LETTERBOX else torch.uint8

    def resized(self, width: int, height: int) -> tuple[int, int]:
        """The size a `width` x `height` image is resized to, before the crop or the padding."""
        if self.kind == LETTERBOX:
            scale = self.size / float(max(width, height))
            return round(width * scale), round(height * scale)
        return imgs.resized_size(width, height, self.size)

    def check_size(self, width: int, height: int, name: str) -> None:
        """Refuses an image whose resize would be too large (`images.MAX_RESIZE_FACTOR`: an aspect ratio of at
        most 64:1 for the resize-and-crop kinds; the letterbox only shrinks).

        Raises:
            ImageLoadError: naming the sizes and the limit.
        """
        imgs.check_resize(width, height, self.resized(width, height), self.size, name)

    def load(self, image: ImageInput, name: str | None = None) -> torch.Tensor:
        """Opens and preprocesses one input -> (3, size, size) of `dtype`; an image whose resize would be too
        large is refused from its header, before decoding (`check_size`).

        Raises:
            ImageLoadError: the input cannot be read or decoded, or is refused (named).
        """
        if self.kind == RESIZE_CROP:
            return imgs.load_pixels(image, name, self.size)
        name = name or imgs.describe(image)
        return self.apply(imgs.open_image(image, name, self.check_size), name)

    def apply(self, image: Image.Image, name: str) -> torch.Tensor:
        """Preprocesses an opened image (for several kinds of one file: open it once).

        Raises:
            ImageLoadError: the image cannot be decoded, or its resize would be too large (named).
        """
        self.check_size(image.width, image.height, name)
        try:
            return _TRANSFORMS[self.kind](image, self.size)
        except (OSError, ValueError) as e:
            raise ImageLoadError(name, f"the image could not be decoded ({e})") from e

    def __str__(self) -> str:
        return f"{self.kind}-{self.size}"


ORIGINAL_224 = Preprocessing(RESIZE_CROP, 224)


def parse(text: str) -> Preprocessing:
    """The inverse of `str(preprocessing)`, e.g. `letterbox-224`.

    Raises:
        ValueError: not `<kind>-<size>` with a known kind.
    """
    kind, _, size = text.rpartition("-")
    if not size.isdigit():
        raise ValueError(f"not a preprocessing: {text!r}; expected <kind>-<size> with kind one of {list(KINDS)}")
    return Preprocessing(kind, int(size))


def generator_pixels(images: torch.Tensor, size: int = 224) -> torch.Tensor:
    """What ReFL (`ImageReward/ReFL.py`, the paper's reward-feedback fine-tuning) does to a generator's output
    before `score_gard`: torchvision's `Resize(size, BICUBIC)` (antialiased, as torchvision resizes tensors),
    `CenterCrop(size)` and `Normalize` with CLIP's mean and std, on the tensor, differentiably.

    Args:
        images: float (B, 3, H, W) in [0, 1] (what a VAE decodes), any device and dtype.
        size: the square the model sees.

    Returns:
        (B, 3, size, size) normalised pixels, in `images`' dtype, with gradients to `images`.

    Raises:
        ValueError: not a float (B, 3, H, W) tensor.
    """
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    _check_generator_images(images)
    x = TF.resize(images, [size], interpolation=InterpolationMode.BICUBIC, antialias=True)
    x = TF.center_crop(x, [size, size])
    return TF.normalize(x, list(imgs.IMAGE_MEAN), list(imgs.IMAGE_STD))
