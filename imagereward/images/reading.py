"""Reading images and the original's preprocessing, to the bit.

The original (`ImageReward.py` `_transform`) is torchvision's `Resize(224, BICUBIC)`, `CenterCrop(224)`,
`convert("RGB")`, `ToTensor()`, `Normalize(CLIP mean, std)` on a PIL image. Its quirks are kept:
the resize runs *before* the RGB conversion (so palette and bilevel images resize with NEAREST and
RGBA premultiplied), the long side is truncated with `int()`, the crop offset uses `round()` (halves to
even), and EXIF orientation is ignored.

The work is split in two so that the expensive half can run in threads and the cheap half on the GPU:
`to_pixels` (decode, resize, crop -> uint8 (3, 224, 224)) and `normalize` (uint8 -> float).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Callable, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import ImageLoadError
from .formats import ACCEPTED_FORMATS, FORMATS, FORMATS_TEXT, IMAGE_EXTENSIONS, MAGIC_BYTES, ImageFormat  # noqa: F401

# CLIP's normalisation constants, which the original's preprocessing uses.
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)

ImageInput = Union[Image.Image, str, os.PathLike, bytes, bytearray, memoryview, np.ndarray, io.IOBase]

# Images above this many pixels are refused from their header, before decoding, as possible decompression
# bombs (Pillow's warning threshold; Pillow itself only raises at twice this).
MAX_IMAGE_PIXELS: int = 89_478_485


EMPTY = "the file is empty (0 bytes): it holds no image; upload it again"

# A resize can make an image far from square much larger than the file: 100,000 x 5 pixels (0.5 Mpx) resize to
# 4,480,000 x 224 (1 Gpx, seconds and gigabytes) before a 224 crop. The image a preprocessing resizes to may hold
# at most this many times its square's pixels: for a resize of the short side, an aspect ratio of at most 64:1.
MAX_RESIZE_FACTOR: int = 64


def describe(image: Any, index: int | None = None) -> str:
    """A short name for an input, for messages: its path, or its type and position."""
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    name = getattr(image, "filename", None) or getattr(image, "name", None)
    if isinstance(name, str) and name:
        return name
    where = f" #{index}" if index is not None else ""
    return f"{type(image).__name__} input{where}"


SizeCheck = Callable[[int, int, str], None]


def open_image(image: ImageInput, name: str | None = None, check_size: SizeCheck | None = None) -> Image.Image:
    """Opens any supported input as a PIL image without converting it (the original converts later).

    Args:
        image: a PIL image, a path (str or Path), encoded bytes, a binary file object, or a numpy array
            (H, W), (H, W, 3) or (H, W, 4) of uint8.
        name: how to name the input in errors; defaults to `describe(image)`.
        check_size: called as `check_size(width, height, name)` before the pixels are decoded (from the
            header of an encoded input); raises to refuse the image.

    Raises:
        ImageLoadError: the input is missing, not an image, corrupt, too large or of an unsupported type.
    """
    name = name or describe(image)
    if isinstance(image, Image.Image):
        if check_size is not None:
            check_size(image.width, image.height, name)
        return image
    if isinstance(image, np.ndarray):
        array = _from_array(image, name)
        if check_size is not None:
            check_size(array.width, array.height, name)
        return array
    opened = open_header(image, name)
    try:
        if check_size is not None:
            check_size(opened.width, opened.height, name)
    except ImageLoadError:
        opened.close()
        raise
    try:
        opened.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageLoadError(name, f"the image is truncated or corrupt ({e})") from e
    return opened


def open_header(image: str | os.PathLike | bytes | bytearray | memoryview | io.IOBase, name: str) -> Image.Image:
    """Opens an encoded input without decoding its pixels: the format is checked against `ACCEPTED_FORMATS`
    and the size, from the header, against `MAX_IMAGE_PIXELS`.

    Raises:
        ImageLoadError: missing, unreadable, not an accepted format, or too large.
    """
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise ImageLoadError(name, "file not found" if not path.exists() else "not a file")
        if path.stat().st_size == 0:
            raise ImageLoadError(name, EMPTY)
        source: Any = path
    elif isinstance(image, (bytes, bytearray, memoryview)):
        if len(image) == 0:
            raise ImageLoadError(name, EMPTY)
        source = io.BytesIO(bytes(image))
    elif hasattr(image, "read"):
        source = image
    else:
        raise ImageLoadError(
            name,
            f"unsupported input type {type(image).__name__}; pass a PIL image, a path, bytes, a file object or a numpy array",
        )
    try:
        opened = Image.open(source, formats=ACCEPTED_FORMATS)
    except PermissionError as e:
        raise ImageLoadError(name, "permission denied: this user may not read the file") from e
    except Image.DecompressionBombError as e:
        raise ImageLoadError(name, _too_large(None)) from e
    except UnidentifiedImageError as e:
        raise ImageLoadError(name, f"not an image in an accepted format ({FORMATS_TEXT})") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageLoadError(name, f"the image is truncated or corrupt ({e})") from e
    if opened.width * opened.height > MAX_IMAGE_PIXELS:
        opened.close()
        raise ImageLoadError(name, _too_large(opened.size))
    return opened


def _too_large(size: tuple[int, int] | None) -> str:
    what = f"{size[0]}x{size[1]} pixels" if size else "the image"
    return f"{what} is over the limit of {MAX_IMAGE_PIXELS:,} pixels; scale it down first"


def header_size(image: ImageInput, name: str) -> tuple[int, int]:
    """(width, height) of an input, read from its header (nothing is decoded).

    Raises:
        ImageLoadError: as `open_header`.
    """
    if isinstance(image, Image.Image):
        return image.size
    if isinstance(image, np.ndarray):
        return (int(image.shape[1]), int(image.shape[0])) if image.ndim >= 2 else (0, 0)
    position = image.tell() if isinstance(image, io.IOBase) else None
    with open_header(image, name) as opened:
        size = opened.size
    if position is not None:
        image.seek(position)  # type: ignore[union-attr]
    return size


def check_resize(width: int, height: int, resized: tuple[int, int], square: int, name: str) -> None:
    """Refuses an image whose resize (to `resized`, before a crop or pad to `square` x `square`) would hold more
    than `MAX_RESIZE_FACTOR` times the square's pixels.

    Raises:
        ImageLoadError: naming the sizes, the limit and what to do.
    """
    limit = MAX_RESIZE_FACTOR * square * square
    if resized[0] * resized[1] > limit:
        raise ImageLoadError(
            name,
            f"a {width}x{height} image would be resized to {resized[0]}x{resized[1]} pixels for the model, over the "
            f"limit of {limit:,} ({MAX_RESIZE_FACTOR}x the {square}x{square} it sees, an aspect ratio of at most "
            f"{MAX_RESIZE_FACTOR}:1); crop it closer to square first",
        )


def _from_array(array: np.ndarray, name: str) -> Image.Image:
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ImageLoadError(
            name,
            f"numpy array of shape {array.shape} and dtype {array.dtype}; expected uint8 (H, W), (H, W, 3) or (H, W, 4)",
        )
    return Image.fromarray(array)


def resized_size(width: int, height: int, size: int = 224) -> tuple[int, int]:
    """torchvision's `Resize(size)`: the shorter side becomes `size`, the longer is scaled and truncated."""
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    return (size, new_long) if width <= height else (new_long, size)


def to_pixels(image: Image.Image, size: int = 224) -> torch.Tensor:
    """Resize (bicubic), centre-crop and convert to RGB as the original does -> uint8 (3, size, size)."""
    new_size = resized_size(image.width, image.height, size)
    if new_size != image.size:
        image = image.resize(new_size, Image.BICUBIC)
    top = int(round((image.height - size) / 2.0))
    left = int(round((image.width - size) / 2.0))
    image = image.crop((left, top, left + size, top + size)).convert("RGB")
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()  # (3, H, W)


_MEAN = torch.tensor(IMAGE_MEAN, dtype=torch.float32).view(-1, 1, 1)
_STD = torch.tensor(IMAGE_STD, dtype=torch.float32).view(-1, 1, 1)
_CONSTANTS: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}


def _constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and std on `device`, copied there once (no host-to-device copy per call, which also lets
    `normalize` run inside a CUDA graph)."""
    if device not in _CONSTANTS:
        _CONSTANTS[device] = (_MEAN.to(device), _STD.to(device))
    return _CONSTANTS[device]


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> float32, `ToTensor` then `Normalize` with the same float32 arithmetic; float
    pixels (already `ToTensor`'s [0, 1] scale) are only normalised."""
    x = pixels.to(torch.float32)
    if pixels.dtype == torch.uint8:
        x = x.div(255)
    mean, std = _constants(x.device)
    return x.sub(mean).div(std)


def preprocess(image: Image.Image, size: int = 224) -> torch.Tensor:
    """The original's `model.preprocess(pil_image)` -> float32 (3, size, size)."""
    return normalize(to_pixels(image, size))


def check_resize_crop(width: int, height: int, name: str, size: int = 224) -> None:
    """`check_resize` for `to_pixels`'s resize of the short side to `size`.

    Raises:
        ImageLoadError: the resized image would be too large (see `MAX_RESIZE_FACTOR`).
    """
    check_resize(width, height, resized_size(width, height, size), size, name)


def load_pixels(image: ImageInput, name: str | None = None, size: int = 224) -> torch.Tensor:
    """Opens and preprocesses one input to uint8 pixels; any failure is an `ImageLoadError` naming it (an
    image whose resize would be too large is refused from its header, see `MAX_RESIZE_FACTOR`)."""
    name = name or describe(image)
    opened = open_image(image, name, lambda w, h, n: check_resize_crop(w, h, n, size))
    try:
        return to_pixels(opened, size)
    except (OSError, ValueError) as e:
        raise ImageLoadError(name, f"the image could not be decoded ({e})") from e
