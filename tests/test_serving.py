"""The app's plain functions: settings, loading without crashing, request limits, formatting."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import EXPECTED, PARITY, image_path
from imagereward import formatting
from imagereward.ranking import InputError, rank_images
from imagereward.serving import Settings, gallery_paths, load_for_serving, rank_request, read_examples

CASE = EXPECTED["rank"][0]
PATHS = [str(image_path(n)) for n in CASE["images"]]


def test_settings_from_env() -> None:
    s = Settings.from_env({"IMAGEREWARD_MODEL": "/m", "IMAGEREWARD_DEVICE": "cpu", "IMAGEREWARD_MAX_IMAGES": "5"})
    assert (s.model, s.device, s.dtype, s.max_images) == ("/m", "cpu", None, 5)
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize("value", ["0", "-1", "lots"])
def test_bad_max_images_says_what_is_expected(value: str) -> None:
    with pytest.raises(ValueError, match="IMAGEREWARD_MAX_IMAGES must be a positive whole number"):
        Settings.from_env({"IMAGEREWARD_MAX_IMAGES": value})


def test_unloadable_weights_are_explained_not_raised(tmp_path: Path) -> None:
    loaded = load_for_serving(Settings(model=str(tmp_path / "nowhere")))
    assert loaded.model is None
    assert "could not be loaded" in loaded.error and "IMAGEREWARD_MODEL" in loaded.error
    assert loaded.label == f"{tmp_path / 'nowhere'} (not loaded)"


def test_loaded_label_names_weights_device_and_dtype() -> None:
    loaded = load_for_serving(Settings(model=str(PARITY), device="cpu"))
    assert loaded.error is None and loaded.label == f"{PARITY} on cpu (float32)"


def test_too_many_images_are_cut_with_a_warning(tiny_model) -> None:
    ranking, notes = rank_request(tiny_model, CASE["prompt"], [(p, None) for p in PATHS], max_images=5)
    assert len(ranking.ranked) == 5
    assert any("Only the first 5 of 12 images were scored" in n for n in notes)


def test_gallery_values_of_every_shape() -> None:
    assert gallery_paths(
        [("a.png", None), ["b.png", "cap"], "c.png", {"path": "d.png"}, {"image": {"path": "e.png"}}]
    ) == [
        "a.png",
        "b.png",
        "c.png",
        "d.png",
        "e.png",
    ]
    assert gallery_paths(None) == []


@pytest.mark.parametrize(
    "prompt, images, match",
    [("", PATHS[:1], "Type a prompt first"), ("   ", PATHS[:1], "Type a prompt first"), ("a cat", [], "at least one")],
)
def test_nothing_to_score(tiny_model, prompt: str, images: list, match: str) -> None:
    with pytest.raises(InputError, match=match):
        rank_images(tiny_model, prompt, images)


def test_formatting_of_a_ranking(tiny_model, tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"no")
    ranking = rank_images(tiny_model, EXPECTED["prompts"][3], PATHS[:3] + [str(bad)])
    assert [item.rank for item in ranking.ranked] == [1, 2, 3]
    assert formatting.caption(1, 1.234) == "#1 · 1.23" and formatting.caption(2, -0.005) == "#2 · -0.01"
    assert formatting.table_rows(ranking)[0][:2] == [1, ranking.ranked[0].name]
    assert formatting.chart_rows(ranking)["image"][0] == f"#1 {ranking.ranked[0].name}"
    assert formatting.api_rows(ranking)[0] == {
        "rank": 1,
        "name": ranking.ranked[0].name,
        "score": ranking.ranked[0].score,
    }
    notes = formatting.warnings_for(ranking)
    assert any("bad.png (not an image file" in n for n in notes)
    assert any("reads only the first 35" in n for n in notes)
    assert "Scored 3 images with X in" in formatting.status_line(ranking, "X")


def test_examples_exist_and_are_images() -> None:
    rows = read_examples(Path(__file__).parent.parent / "examples")
    assert len(rows) >= 3
    for prompt, images in rows:
        assert prompt and len(images) >= 3 and all(Path(p).is_file() for p in images)
