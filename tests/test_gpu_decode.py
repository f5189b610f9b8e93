"""The approximate fast path (JPEG decoded and resized by torchvision instead of Pillow), run here with
torchvision's CPU decoder: close to the exact rewards, exact for files it hands to the exact path, and the same
errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from imagereward.errors import ImageLoadError
from imagereward.judges.base import Scored
from imagereward.judges.imagereward import approximate_results
from originals import EXPECTED, IMAGE_NAMES, image_path

CASE = EXPECTED["rank"][0]


def test_close_to_the_exact_path_and_exact_where_it_hands_over(tiny_model, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    eps = tmp_path / "drawing.jpg"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    paths = [str(image_path(n)) for n in IMAGE_NAMES] + [str(bad), str(eps), str(tmp_path / "missing.jpg")]
    tiny_model.embedding_cache.resize(0)
    try:
        exact = tiny_model.results(CASE["prompt"], paths, batch_size=5)
        fast = approximate_results(tiny_model, CASE["prompt"], paths, batch_size=5)
    finally:
        tiny_model.embedding_cache.resize(256)
    jpegs = [i for i, n in enumerate(IMAGE_NAMES) if n.endswith((".jpg", ".jpeg"))]
    others = [i for i, n in enumerate(IMAGE_NAMES) if i not in jpegs]
    assert jpegs and others
    # handed to the exact path (other batch companions: float rounding only)
    np.testing.assert_allclose([fast[i].reward for i in others], [exact[i].reward for i in others], atol=1e-5, rtol=0)
    differences = [abs(fast[i].reward - exact[i].reward) for i in jpegs]
    assert max(differences) < 0.05 and all(isinstance(fast[i], Scored) for i in jpegs)
    assert [type(r) for r in fast[-3:]] == [ImageLoadError] * 3
    assert fast[-3:] == exact[-3:]


def test_grey_and_odd_sized_jpegs(tiny_model, tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    files = []
    for k, (mode, size) in enumerate(
        [("L", (300, 700)), ("RGB", (225, 224)), ("RGB", (224, 224)), ("RGB", (1000, 301))]
    ):
        array = rng.integers(0, 256, (size[1] // 8, size[0] // 8) + ((3,) if mode == "RGB" else ()), dtype=np.uint8)
        path = tmp_path / f"{k}.jpg"
        Image.fromarray(array).resize(size, Image.BILINEAR).save(path, quality=95)
        files.append(str(path))
    exact = tiny_model.rewards("a photo", files)
    fast = approximate_results(tiny_model, "a photo", files)
    assert np.abs(np.array([r.reward for r in fast]) - exact).max() < 0.05
    shutil.rmtree(tmp_path)
