"""Image inputs of every supported kind, and an error naming the input for every bad one."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import imagereward.images.reading as images
from imagereward import ImageLoadError
from originals import IMAGE_NAMES, image_path

NAME = IMAGE_NAMES[1]


def reference_pixels() -> torch.Tensor:
    return images.load_pixels(image_path(NAME))


@pytest.mark.parametrize(
    "make",
    [
        lambda p: str(p),
        lambda p: Path(p),
        lambda p: p.read_bytes(),
        lambda p: bytearray(p.read_bytes()),
        lambda p: io.BytesIO(p.read_bytes()),
        lambda p: Image.open(p),
    ],
    ids=["str", "Path", "bytes", "bytearray", "file", "PIL"],
)
def test_every_input_kind_gives_the_same_pixels(make) -> None:
    assert torch.equal(images.load_pixels(make(image_path(NAME))), reference_pixels())


def test_numpy_array_input_matches_pil() -> None:
    array = np.asarray(Image.open(image_path(NAME)).convert("RGB"))
    assert torch.equal(images.load_pixels(array), reference_pixels())


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="nope.png: file not found"):
        images.load_pixels(tmp_path / "nope.png")


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ImageLoadError, match="notes.txt: not an image in an accepted format"):
        images.load_pixels(path)


def test_truncated_image(tmp_path: Path) -> None:
    data = image_path("01_rgb_structured_512.png").read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageLoadError, match="cut.png: the image is truncated or corrupt"):
        images.load_pixels(path)


def test_decompression_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 100 * 100)
    path = tmp_path / "big.png"
    Image.new("RGB", (101, 100)).save(path)
    with pytest.raises(ImageLoadError, match=r"big.png: 101x100 pixels is over the limit of 10,000 pixels"):
        images.load_pixels(path)


@pytest.mark.parametrize(
    "value, match",
    [
        (42, "unsupported input type int"),
        (np.zeros((4, 4, 3), dtype=np.float32), r"numpy array of shape \(4, 4, 3\) and dtype float32"),
        (np.zeros((4, 4, 2), dtype=np.uint8), r"expected uint8 \(H, W\), \(H, W, 3\) or \(H, W, 4\)"),
    ],
)
def test_unsupported_inputs(value, match: str) -> None:
    with pytest.raises(ImageLoadError, match=match):
        images.load_pixels(value)


@pytest.mark.parametrize(
    "size, expected",
    [((640, 480), (298, 224)), ((300, 700), (224, 522)), ((7, 5), (313, 224)), ((224, 224), (224, 224))],
)
def test_resized_size_truncates_the_long_side(size, expected) -> None:
    assert images.resized_size(*size) == expected


def test_exif_orientation_is_ignored_like_the_original() -> None:
    name = "12_exif_orientation6_398x300.jpg"
    with Image.open(image_path(name)) as image:
        assert image.getexif().get(0x0112) == 6
        plain = images.to_pixels(image)
    assert plain.shape == (3, 224, 224)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: str(p),
        lambda p: p.read_bytes(),
        lambda p: Image.open(p),
        lambda p: np.zeros((5, 100_000, 3), np.uint8),
    ],
    ids=["path", "bytes", "PIL", "numpy"],
)
def test_an_image_whose_resize_would_be_huge_is_refused_before_decoding(make, tmp_path: Path, monkeypatch) -> None:
    """A 100,000 x 5 image is 0.5 Mpx but resizes to 4,480,000 x 224 (1 Gpx) for the 224 crop: every
    preprocessing refuses it from its size, naming the limit, and never decodes it."""
    from imagereward.images.transforms import KINDS, Preprocessing

    path = tmp_path / "strip.png"
    Image.new("RGB", (100_000, 5)).save(path)
    decoded = []
    real = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self.size) or real(self))
    for kind in KINDS:
        preprocessing = Preprocessing(kind, 224)
        if preprocessing.resized(100_000, 5)[0] * preprocessing.resized(100_000, 5)[1] <= 64 * 224 * 224:
            continue  # the letterbox only shrinks
        with pytest.raises(ImageLoadError, match=r"aspect ratio of at most 64:1"):
            preprocessing.load(make(path), "strip.png")
    assert (100_000, 5) not in decoded


def test_the_resize_bound_is_an_aspect_ratio_of_64() -> None:
    from imagereward.images.transforms import ORIGINAL_224

    ORIGINAL_224.check_size(64 * 300, 300, "ok.png")
    ORIGINAL_224.check_size(2000, 150, "panorama.png")  # the fixtures' widest
    with pytest.raises(ImageLoadError, match="19264x300"):
        ORIGINAL_224.check_size(64 * 301, 300, "too-wide.png")


def test_the_scoring_api_names_the_refused_image_and_scores_the_rest(tiny_model, tmp_path: Path) -> None:
    Image.new("RGB", (5, 100_000)).save(tmp_path / "tall.png")
    results = tiny_model.try_rewards("a cat", [str(tmp_path / "tall.png"), image_path(NAME)])
    assert isinstance(results[0], ImageLoadError) and "aspect ratio of at most 64:1" in results[0].reason
    assert isinstance(results[1], float)


def test_one_table_of_formats_and_every_list_derived_from_it() -> None:
    """Each accepted format's magic bytes are what Pillow writes for it, and its extensions open as it; the
    plugin list, the extensions, the magic bytes and the texts (the page's, the MCP tools') come from the one
    table."""
    import io as _io

    from PIL import Image as _Image

    from imagereward.app import agents, remote
    from imagereward.images.reading import ACCEPTED_FORMATS, FORMATS, FORMATS_TEXT, IMAGE_EXTENSIONS, MAGIC_BYTES

    for fmt in FORMATS:
        buffer = _io.BytesIO()
        _Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, format=fmt.name)
        assert buffer.getvalue().startswith(fmt.magic), fmt.name
        for ext in fmt.extensions:
            assert _Image.registered_extensions()[ext] == fmt.name
    assert ACCEPTED_FORMATS == tuple(f.name for f in FORMATS)
    assert IMAGE_EXTENSIONS == {e for f in FORMATS for e in f.extensions}
    assert remote._MAGIC == MAGIC_BYTES
    assert all(name in FORMATS_TEXT for name in ACCEPTED_FORMATS)
    assert FORMATS_TEXT in agents.IMAGES_HELP
