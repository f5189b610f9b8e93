"""Explanations on the page, without a server: only uploaded files within the limits, each computed once, the
device half's values picklable (they cross to a ZeroGPU worker); and a judge found unavailable no longer
offered."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagereward.app import view
from imagereward.app.explanations import MAX_EXPLAINED
from imagereward.app.intake import NOT_UPLOADED
from imagereward.app.page import Page
from imagereward.app.settings import Settings, load_for_serving
from imagereward.errors import InputError
from originals import EXPECTED, PARITY, image_path

PROMPT = EXPECTED["rank"][0]["prompt"]


@pytest.fixture
def page(tmp_path: Path):
    settings = Settings(model=str(PARITY), device="cpu", judges=())
    uploads = tmp_path / "uploads"
    for name in EXPECTED["images"][:3]:
        (uploads / name[:2]).mkdir(parents=True)
        shutil.copy(image_path(name), uploads / name[:2] / name)
    page = Page(settings, roots=[str(uploads)], upload_folder=uploads, loaded=load_for_serving(settings))
    yield page
    page.close()


def uploaded(page: Page, k: int) -> str:
    name = EXPECTED["images"][k]
    return str(Path(page.roots.folders[0]) / name[:2] / name)


def test_the_page_explains_what_the_model_explains(page: Page, tiny_model) -> None:
    (name, path, explanation), *rest = page.explain(PROMPT, [uploaded(page, 1)])[0]
    expected = tiny_model.explain(PROMPT, uploaded(page, 1))
    assert not rest and name == EXPECTED["images"][1] and path == uploaded(page, 1)
    assert explanation.score == pytest.approx(expected.score, abs=1e-5)
    assert [w for w, _ in explanation.words] == [w for w, _ in expected.words]
    assert np.allclose([d for _, d in explanation.words], [d for _, d in expected.words], atol=1e-5)
    assert np.allclose(explanation.heatmap, expected.heatmap, atol=1e-5, rtol=1e-4)
    answer = page.explain_api(PROMPT, {"path": uploaded(page, 1)})
    assert answer["name"] == name and answer["model"] == page.loaded.label
    assert set(answer) >= {"read", "unread", "tokens_read", "tokens_total", "words", "heatmap", "crop_box"}
    assert np.asarray(answer["heatmap"]).shape == expected.heatmap.shape


def test_only_uploads_within_the_limits_are_explained(page: Page, tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    shutil.copy(image_path(EXPECTED["images"][0]), outside)
    strip = Path(page.roots.folders[0]) / "strip.png"
    Image.new("RGB", (100_000, 5)).save(strip)
    explained, refused = page.explain(PROMPT, [str(outside), str(tmp_path / "missing.png"), str(strip)])
    assert explained == []
    assert [e.reason for e in refused[:2]] == [NOT_UPLOADED, NOT_UPLOADED]  # the same, existing or not
    assert "aspect ratio of at most 64:1" in refused[2].reason
    for hostile in ("/etc/passwd", None, 7, {"path": "/etc/passwd"}):
        with pytest.raises(InputError, match=re.escape(NOT_UPLOADED)):
            page.explain_api(PROMPT, hostile)
    with pytest.raises(InputError, match="Type a prompt first"):
        page.explain("  ", [uploaded(page, 0)])
    with pytest.raises(InputError, match=f"At most {MAX_EXPLAINED} images"):
        page.explain(PROMPT, [uploaded(page, 0)] * (MAX_EXPLAINED + 1))


def test_an_explanation_is_computed_once_and_what_crosses_to_the_device_pickles(page: Page, zero_gpu) -> None:
    """On ZeroGPU the page's one device function for explanations runs in `spaces.GPU` (the stub pickles what
    crosses) and is asked only for what is not known yet: its duration says how many images crossed."""
    page = Page(replace(page.settings, zero_gpu=True), page.roots.folders, page.downloads.upload_folder, page.loaded)
    try:
        first, _ = page.explain(PROMPT, [uploaded(page, 0), uploaded(page, 1)])
        again, _ = page.explain(PROMPT, [uploaded(page, 1), uploaded(page, 0)])
        assert [(c["function"], c["duration"]) for c in zero_gpu()] == [("_explain_device", 15 + 5 * 2)]
        assert again[0][2] is first[1][2] and again[1][2] is first[0][2]  # the same objects, from the cache
        third, _ = page.explain(PROMPT, [uploaded(page, 0), uploaded(page, 2)])  # one known, one new
        assert [c["duration"] for c in zero_gpu()] == [15 + 5 * 2, 15 + 5 * 1]
        assert third[0][2] is first[0][2] and third[1][0] == EXPECTED["images"][2]
    finally:
        page.close()


def test_off_zerogpu_the_device_functions_are_plain_calls(page: Page) -> None:
    """Off ZeroGPU nothing wraps the device work (`device.device_function`), and `spaces` is never needed."""
    assert page.score_on_device == page._score_device and page.explain_on_device == page._explain_device
    assert page.pairs_on_device == page._pairs_device


def test_the_picture_shows_the_crop_over_the_image(page: Page) -> None:
    explained, _ = page.explain(PROMPT, [uploaded(page, 1)])
    (picture,) = page.write_overlays(explained).values()
    assert Path(picture).is_file() and Path(picture).is_relative_to(page.downloads.root)
    with Image.open(picture) as shown, Image.open(uploaded(page, 1)) as original:
        assert shown.size == original.size


def test_a_judge_that_cannot_load_is_no_longer_offered(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = Settings(model=str(PARITY), device="cpu", judges=("CLIP", "BLIP"), download_root=str(tmp_path / "none"))
    page = Page(settings, roots=[str(PARITY)], upload_folder=tmp_path / "uploads", loaded=load_for_serving(settings))
    try:
        assert page.offered_judges() == (["CLIP", "BLIP"], {})
        _, notes = page.rank(PROMPT, [str(image_path(EXPECTED["images"][0]))], ["CLIP"])
        assert sum("CLIP is unavailable" in n for n in notes) == 1
        offered, unavailable = page.offered_judges()
        assert offered == ["BLIP"] and list(unavailable) == ["CLIP"]
        assert view.judges_info(page.settings.judges, unavailable).endswith(
            "Unavailable right now (their weights could not be loaded): CLIP"
        )
        assert "CLIP" not in view.judges_info(page.settings.judges, unavailable).split(".")[0]
    finally:
        page.close()
