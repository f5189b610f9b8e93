"""The page's plain functions: settings, loading without crashing, a request handled safely (only uploaded
files, bounded work, everything reported), step by step as the ZeroGPU split runs it, and what the page shows."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
from PIL import Image

from imagereward.app import answers, downloads, view
from imagereward.app.intake import NOT_UPLOADED, gallery_paths
from imagereward.app.scoring import finish, gpu_duration, plan_prompts, prepare_request, rank_request, score_prepared
from imagereward.app.settings import Settings, load_for_serving, on_zero_gpu
from imagereward.errors import (
    CheckpointError,
    ImageError,
    ImageLoadError,
    InputError,
    NonFiniteRewardError,
    WeightsUnavailableError,
)
from imagereward.images import reading as images
from imagereward.judges import available_scores
from imagereward.model import tokenizer
from imagereward.ranking import rank_images, unique_names
from originals import EXPECTED, PARITY, image_path

CASE = EXPECTED["rank"][0]


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    """A stand-in for Gradio's upload folder holding copies of the case's images."""
    folder = tmp_path / "gradio"
    for name in CASE["images"]:
        (folder / name[:2]).mkdir(parents=True, exist_ok=True)
        shutil.copy(image_path(name), folder / name[:2] / name)
    return folder


def uploaded(uploads: Path, names: list[str]) -> list[tuple[str, None]]:
    return [(str(uploads / n[:2] / n), None) for n in names]


def rank(model, prompt, gallery, roots, **settings):  # type: ignore[no-untyped-def]
    """One prompt's request: its ranking and the notes."""
    rankings, notes = rank_request(model, prompt, gallery, roots, Settings(**settings))
    return rankings[0][1], notes


def prepared(model, prompt, gallery, roots, judges=(), pool=None, **settings):  # type: ignore[no-untyped-def]
    return prepare_request(model, prompt, gallery, roots, Settings(**settings), judges, pool)


def test_settings_from_env() -> None:
    s = Settings.from_env({"IMAGEREWARD_MODEL": "/m", "IMAGEREWARD_DEVICE": "cpu", "IMAGEREWARD_MAX_IMAGES": "5"})
    assert (s.model, s.device, s.dtype, s.max_images, s.zero_gpu) == ("/m", "cpu", None, 5, False)
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(
    "env, zero_gpu, device",
    [({}, False, None), ({"SPACES_ZERO_GPU": "true"}, True, "cuda"), ({"SPACES_ZERO_GPU": "false"}, False, None)],
)
def test_zero_gpu_is_read_from_the_platform_variable(env: dict, zero_gpu: bool, device: str | None) -> None:
    assert on_zero_gpu(env) is zero_gpu
    settings = Settings.from_env(env)
    assert (settings.zero_gpu, settings.device) == (zero_gpu, device)


@pytest.mark.parametrize("value", ["0", "-1", "lots"])
def test_bad_max_images_says_what_is_expected(value: str) -> None:
    with pytest.raises(ValueError, match="IMAGEREWARD_MAX_IMAGES must be a positive whole number"):
        Settings.from_env({"IMAGEREWARD_MAX_IMAGES": value})


def test_unloadable_weights_are_explained_not_raised(tmp_path: Path) -> None:
    loaded = load_for_serving(Settings(model=str(tmp_path / "nowhere")))
    assert loaded.model is None
    assert "could not be loaded" in loaded.error and "IMAGEREWARD_MODEL" in loaded.error
    assert loaded.label == "nowhere (not loaded)"


def test_a_device_that_is_not_there_is_explained_not_raised(monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = load_for_serving(Settings(model=str(PARITY), device="cuda"))
    assert loaded.model is None and "could not be loaded" in loaded.error


def test_loaded_label_names_weights_device_and_dtype_never_a_server_path() -> None:
    loaded = load_for_serving(Settings(model=str(PARITY), device="cpu"))
    assert loaded.error is None and loaded.label == f"{PARITY.name} on cpu (float32)"
    assert str(PARITY.parent) not in loaded.label


def test_weights_that_cannot_be_loaded_are_explained_without_the_servers_paths(tmp_path: Path, caplog) -> None:
    folder = tmp_path / "secret-folder" / "weights"
    folder.mkdir(parents=True)
    loaded = load_for_serving(Settings(model=str(folder)))
    assert loaded.model is None and str(tmp_path) not in loaded.error and str(tmp_path) not in loaded.label
    assert loaded.label == "weights (not loaded)" and "IMAGEREWARD_MODEL" in loaded.error
    assert "no checkpoint in weights: expected ImageReward.pt" in loaded.error  # the reason, less the path
    assert str(folder) in caplog.text  # the operator finds the details in the log


def test_gallery_values_of_every_shape() -> None:
    assert gallery_paths(
        [("a.png", None), ["b.png", "cap"], "c.png", {"path": "d.png"}, {"image": {"path": "e.png"}}, 7]
    ) == ["a.png", "b.png", "c.png", "d.png", "e.png", 7]
    assert gallery_paths(None) == []


# ------------------------------------------------------------------------------- only what was uploaded
@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "/etc/does-not-exist.png",
        "relative.png",
        "{uploads}/../outside.png",
        "{uploads}/../../etc/passwd",
        "{uploads}-sibling/x.png",
        "{uploads}",
        "",
        None,
        "{uploads}/0a/\x00.png",
    ],
)
def test_a_path_outside_the_uploads_is_refused_without_touching_it(
    tiny_model, uploads: Path, path, monkeypatch
) -> None:
    import builtins
    import os

    raw = path.format(uploads=uploads) if isinstance(path, str) else path
    hostile = {raw, os.path.normpath(raw)} if isinstance(raw, str) and raw and "\x00" not in raw else set()
    hostile.discard(str(uploads))  # the root itself is the app's own folder, resolved once
    touched = []

    def spy(module, name):
        real = getattr(module, name)

        def call(p, *a, **k):
            if isinstance(p, (str, os.PathLike)) and os.fspath(p) in hostile:
                touched.append((name, p))
            return real(p, *a, **k)

        monkeypatch.setattr(module, name, call)

    for module, name in ((os, "stat"), (os, "lstat"), (os.path, "realpath"), (builtins, "open")):
        spy(module, name)
    request = prepared(tiny_model, CASE["prompt"], [(raw, None)] + uploaded(uploads, CASE["images"][:1]), [uploads])
    monkeypatch.undo()
    assert touched == []
    assert [e.reason for e in request.prompts[0].refused] == [NOT_UPLOADED]
    assert len(request.names) == 1


def test_refusal_does_not_say_whether_the_file_exists(tiny_model, uploads: Path) -> None:
    there = prepared(tiny_model, "a cat", [("/etc/hostname", None), *uploaded(uploads, CASE["images"][:1])], [uploads])
    gone = prepared(
        tiny_model, "a cat", [("/etc/no-such-file", None), *uploaded(uploads, CASE["images"][:1])], [uploads]
    )
    assert [e.reason for e in there.prompts[0].refused] == [e.reason for e in gone.prompts[0].refused] == [NOT_UPLOADED]


def test_a_link_out_of_the_uploads_is_refused(tiny_model, uploads: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    shutil.copy(image_path(CASE["images"][0]), outside)
    (uploads / "link.png").symlink_to(outside)
    request = prepared(
        tiny_model, "a cat", [(str(uploads / "link.png"), None)] * 2 + uploaded(uploads, CASE["images"][:1]), [uploads]
    )
    assert [e.reason for e in request.prompts[0].refused] == [NOT_UPLOADED] * 2


# -------------------------------------------------------------------------------------- bounded work
def test_a_huge_prompt_is_tokenized_only_as_far_as_needed(tiny_model, uploads: Path, monkeypatch) -> None:
    seen = []
    real = tokenizer.get_tokenizer()

    class Spy:
        def __call__(self, text, **kwargs):
            seen.append(len(text))
            return real(text, **kwargs)

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(tokenizer, "get_tokenizer", lambda: Spy())
    prompt = "a very detailed photograph of a cat " * 300_000  # 10.8 MB
    ranking, notes = rank(tiny_model, prompt, uploaded(uploads, CASE["images"][:2]), [uploads])
    assert max(seen) <= tokenizer.MAX_PROMPT_CHARS and len(seen) == 1
    assert any("reads only the first 35 tokens" in n for n in notes)
    short = rank_images(tiny_model, prompt[:500], [image_path(n) for n in CASE["images"][:2]])
    assert [r.score for r in ranking.ranked] == [r.score for r in short.ranked]


def test_one_file_referenced_many_times_is_decoded_once(tiny_model, uploads: Path, monkeypatch) -> None:
    calls = []
    real = images.load_pixels
    monkeypatch.setattr(images, "load_pixels", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    gallery = uploaded(uploads, CASE["images"][:1]) * 32
    ranking, _ = rank(tiny_model, CASE["prompt"], gallery, [uploads])
    assert len(calls) == 1
    assert len(ranking.ranked) == 32 and len({r.score for r in ranking.ranked}) == 1


def test_the_pixel_budget_bounds_a_request(tiny_model, uploads: Path) -> None:
    big = uploads / "big"
    big.mkdir()
    for k in range(3):
        Image.new("1", (4000, 3000 + k)).save(big / f"b{k}.png")  # 12 MPx each, a few kB
    gallery = [(str(big / f"b{k}.png"), None) for k in range(3)]
    ranking, _ = rank(tiny_model, "a cat", gallery, [uploads], pixel_budget=25_000_000)
    assert [r.name for r in ranking.ranked] == ["b0.png", "b1.png"] or len(ranking.ranked) == 2
    assert [f.name for f in ranking.failures] == ["b2.png"]
    assert "budget of 25,000,000 decoded pixels" in ranking.failures[0].reason


def test_a_refused_file_is_refused_every_time_it_appears(tiny_model, uploads: Path, monkeypatch) -> None:
    """Issue 21: eight distinct files over the budget, each sent twice: the repeats neither pass the budget
    nor are decoded; the admitted files are the ones admitted when each is sent once."""
    big = uploads / "bombs"
    big.mkdir()
    for k in range(8):
        Image.new("1", (4000, 3000 + k)).save(big / f"b{k}.png")  # 12 MPx each
    once = [(str(big / f"b{k}.png"), None) for k in range(8)]
    alone, _ = rank(tiny_model, "a cat", once, [uploads], pixel_budget=25_000_000)
    decoded = []
    real = images.load_pixels
    monkeypatch.setattr(images, "load_pixels", lambda *a, **k: decoded.append(a[0]) or real(*a, **k))
    twice, _ = rank(tiny_model, "a cat", once + once, [uploads], pixel_budget=25_000_000)
    admitted = {r.source for r in alone.ranked}
    assert len(admitted) == 2 and {r.source for r in twice.ranked} == admitted
    assert len(decoded) == 2  # each admitted file decoded once, the refused ones never
    assert len(twice.ranked) == 4 and len(twice.failures) == 12
    assert {f.reason for f in twice.failures} == {alone.failures[0].reason}


def test_the_budget_is_shared_by_every_prompt_of_a_request(tiny_model, uploads: Path) -> None:
    """Files that carry different prompts make one group each; together they still get one budget."""
    from PIL.PngImagePlugin import PngInfo

    gallery = []
    for k in range(4):
        info = PngInfo()
        info.add_text("parameters", f"prompt number {k}\nSteps: 20")
        Image.new("1", (4000, 3000 + k)).save(uploads / f"p{k}.png", pnginfo=info)
        gallery.append((str(uploads / f"p{k}.png"), None))
    rankings, notes = rank_request(tiny_model, "", gallery, [uploads], Settings(pixel_budget=25_000_000))
    assert sum(len(r.ranked) for _, r in rankings) == 2
    assert any("budget of 25,000,000 decoded pixels" in n for n in notes)


def test_a_judge_that_reads_pixels_its_own_way_counts_against_the_budget(tiny_model, uploads: Path) -> None:
    from imagereward.app.intake import PixelBudget
    from imagereward.images.transforms import LETTERBOX, Preprocessing

    Image.new("1", (4000, 3000)).save(uploads / "one.png")
    path = str(uploads / "one.png")
    PixelBudget(12_000_000, [tiny_model.preprocessing]).admit(path, "one.png")
    with pytest.raises(ImageLoadError, match="budget of 12,000,000 decoded pixels"):
        PixelBudget(12_000_000, [tiny_model.preprocessing, Preprocessing(LETTERBOX, 224)]).admit(path, "one.png")


def test_an_extreme_shape_is_refused_from_its_header(tiny_model, uploads: Path, monkeypatch) -> None:
    """Issue 21: a 100,000 x 5 image (0.5 Mpx) would be resized to 4,480,000 x 224 for the 224 crop; it is refused
    before any pixel is decoded, saying the limit, and the other images are scored."""
    Image.new("RGB", (100_000, 5), (200, 10, 10)).save(uploads / "strip.png")
    Image.new("RGB", (64 * 224, 224), (10, 200, 10)).save(uploads / "wide.png")  # exactly at the bound
    decoded, real_load = [], Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self.size) or real_load(self))
    request = prepared(
        tiny_model, "a cat", [(str(uploads / "strip.png"), None), (str(uploads / "wide.png"), None)], [uploads]
    )
    monkeypatch.undo()
    assert (100_000, 5) not in decoded and (64 * 224, 224) in decoded
    (refused,) = request.prompts[0].refused
    assert refused.name == "strip.png"
    assert refused.reason == (
        "a 100000x5 image would be resized to 4480000x224 pixels for the model, over the limit of 3,211,264 "
        "(64x the 224x224 it sees, an aspect ratio of at most 64:1); crop it closer to square first"
    )
    assert request.names == ["wide.png"]


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(tiny_model, uploads: Path, monkeypatch) -> None:
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 600 * 600)
    Image.new("RGB", (601, 600)).save(uploads / "big.png")
    ranking, _ = rank(
        tiny_model, "a cat", [(str(uploads / "big.png"), None), *uploaded(uploads, CASE["images"][:1])], [uploads]
    )
    assert [f.reason for f in ranking.failures] == [
        "601x600 pixels is over the limit of 360,000 pixels; scale it down first"
    ]


def test_postscript_is_refused_by_format(tiny_model, uploads: Path) -> None:
    eps = uploads / "drawing.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n0 0 moveto 10 10 lineto stroke\n")
    assert Image.open(eps).format == "EPS"  # Pillow alone would open it (and run Ghostscript to decode it)
    ranking, _ = rank(tiny_model, "a cat", [(str(eps), None), *uploaded(uploads, CASE["images"][:1])], [uploads])
    assert ranking.failures[0].reason.startswith("not an image in an accepted format")


def test_too_many_images_are_cut_with_a_note(tiny_model, uploads: Path) -> None:
    ranking, notes = rank(tiny_model, CASE["prompt"], uploaded(uploads, CASE["images"]), [uploads], max_images=5)
    assert len(ranking.ranked) == 5
    assert any("Only the first 5 of 12 images were scored" in n for n in notes)


# ----------------------------------------------------------------------------------- everything reported
def test_the_api_response_lists_ranked_skipped_and_notes(tiny_model, uploads: Path, tmp_path: Path) -> None:
    bad = uploads / "zz" / "bad.png"
    bad.parent.mkdir()
    bad.write_bytes(b"not a picture")
    gallery = uploaded(uploads, CASE["images"][:3]) + [(str(bad), None), ("/etc/passwd", None)]
    ranking, notes = rank(tiny_model, EXPECTED["prompts"][3], gallery, [uploads], max_images=4)
    response = answers.api_response(ranking, notes, "label", EXPECTED["prompts"][3], "parity")
    assert [r["rank"] for r in response["ranked"]] == [1, 2, 3]
    assert set(response["ranked"][0]) == {"prompt", "rank", "image", "name", "score", "precision", "model"}
    assert response["skipped"] == [{"name": "bad.png", "reason": ranking.failures[0].reason}]
    assert any("Only the first 4 of 5" in n for n in response["notes"])
    assert any("reads only the first 35" in n for n in response["notes"])
    assert response["model"] == "label"


def test_duplicate_names_come_out_unique(tiny_model, uploads: Path) -> None:
    a, b = uploads / "a" / "image.png", uploads / "b" / "image.png"
    for path, source in ((a, CASE["images"][0]), (b, CASE["images"][1])):
        path.parent.mkdir()
        shutil.copy(image_path(source), path)
    ranking, _ = rank(tiny_model, CASE["prompt"], [(str(a), None), (str(b), None), (str(a), None)], [uploads])
    assert sorted(r.name for r in ranking.ranked) == ["image.png", "image.png (2)", "image.png (3)"]
    assert unique_names(["x", "x (2)", "x", "x"]) == ["x", "x (2)", "x (3)", "x (4)"]


@pytest.mark.parametrize(
    "prompt, gallery, match",
    [
        ("", 1, "Type a prompt first"),
        ("   ", 1, "Type a prompt first"),
        (None, 1, "Type a prompt first"),
        ("a cat", 0, "at least one"),
    ],
)
def test_nothing_to_score(tiny_model, uploads: Path, prompt, gallery: int, match: str) -> None:
    with pytest.raises(InputError, match=match):
        rank(tiny_model, prompt, uploaded(uploads, CASE["images"][:gallery]), [uploads])


def test_a_lone_surrogate_in_the_prompt_is_scored(tiny_model, uploads: Path) -> None:
    ranking, _ = rank(tiny_model, "a cat \udcff", uploaded(uploads, CASE["images"][:2]), [uploads])
    plain, _ = rank(tiny_model, "a cat", uploaded(uploads, CASE["images"][:2]), [uploads])
    assert [r.score for r in ranking.ranked] == [r.score for r in plain.ranked]


# -------------------------------------------------------------------------------- across the ZeroGPU line
@pytest.mark.parametrize(
    "error",
    [
        ImageError("a.png", "why"),
        ImageLoadError("a.png", "not an image"),
        NonFiniteRewardError("b.png", "inf"),
        InputError("None of the images could be read.", [ImageLoadError("a.png", "x"), NonFiniteRewardError("b", "y")]),
        CheckpointError("bad checkpoint"),
        WeightsUnavailableError("offline"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_error_survives_a_pickle_round_trip(error: Exception) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and str(back) == str(error) and back.args == error.args
    if isinstance(error, (ImageError, InputError)):
        assert back == error


def test_the_device_half_takes_and_returns_only_picklable_values(tiny_model, uploads: Path, tmp_path: Path) -> None:
    bad = uploads / "zz" / "bad.png"
    bad.parent.mkdir()
    bad.write_bytes(b"not a picture")
    request = prepared(
        tiny_model, CASE["prompt"], uploaded(uploads, CASE["images"][:3]) + [(str(bad), None)], [uploads]
    )
    crossed = pickle.loads(pickle.dumps(request))  # what ZeroGPU does with the arguments
    results = pickle.loads(pickle.dumps(score_prepared(tiny_model, crossed)))  # and with the result
    ((_, ranking),), _ = finish(request, results)
    assert [f.name for f in ranking.failures] == ["bad.png"]
    rewards = dict(zip(CASE["images"], CASE["rewards"]))
    assert all(abs(r.score - rewards[r.name]) <= 1e-4 for r in ranking.ranked)
    assert 10 <= gpu_duration(request) <= 20


# ------------------------------------------------------------------------------------------ display
def test_formatting_of_a_ranking(tiny_model, tmp_path: Path) -> None:
    import csv
    import json
    import zipfile

    paths = [image_path(n) for n in CASE["images"][:3]]
    ranking = rank_images(tiny_model, EXPECTED["prompts"][3], paths)
    assert [item.rank for item in ranking.ranked] == [1, 2, 3]
    best = ranking.ranked[0]
    assert view.caption(1, 1.234, "a.png") == "#1 · 1.23 · a.png" and view.caption(2, -0.005) == "#2 · -0.01"
    assert view.caption(1, 0.54, "a.png", "CLIP") == "#1 · CLIP 0.54 · a.png"
    assert view.caption(1, 0.54, "a.png", "ImageReward") == "#1 · 0.54 · a.png"
    assert view.gallery_items(ranking)[0] == (best.source, f"#1 · {best.score:.2f} · {best.name}")
    assert view.table_rows(ranking)[0] == [1, best.name, round(best.score, 4), "float32"]
    assert view.winner_text(ranking) == f"**#1 · {best.name}** — score {best.score:.2f}"
    assert "Scored 3 images with X in" in view.status_line(ranking, "X")
    csv_path, json_path, zip_path = downloads.write_downloads([("p", ranking)], "X", tmp_path)
    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    assert [(r["prompt"], int(r["rank"]), r["image"], float(r["score"]), r["model"], r["precision"]) for r in rows] == [
        ("p", i.rank, i.name, i.score, "X", "float32") for i in ranking.ranked
    ]
    assert json.loads(json_path.read_text())["rankings"][0]["ranked"] == [
        {"prompt": "p", "rank": i.rank, "image": i.name, "score": i.score, "precision": "float32", "model": "X"}
        for i in ranking.ranked
    ]
    with zipfile.ZipFile(zip_path) as archive:
        assert archive.namelist() == [f"{i.rank:02d}_{i.score:+.2f}_{i.name}" for i in ranking.ranked]
        assert archive.read(archive.namelist()[0]) == Path(best.source).read_bytes()


def test_the_preference_probability_is_the_bradley_terry_model_of_the_scores() -> None:
    import math

    assert view.preference_probability(0.5, 0.5) == 0.5
    assert abs(view.preference_probability(1.0, 0.0) - 1 / (1 + math.exp(-1.0333394966054072))) < 1e-12
    assert abs(view.preference_probability(0.2, 1.7) + view.preference_probability(1.7, 0.2) - 1) < 1e-12
    text = view.compare_text("a.png", 0.0, "b.png", 1.0)
    assert "prefer **b.png** to **a.png**" in text and "74%" in text
    assert "two different images" in view.compare_text("a.png", 1.0, "a.png", 1.0)


def test_the_zip_names_repeats_before_the_extension_and_never_leaves_its_folder() -> None:
    assert downloads._safe_name("image.png (2)") == "image (2).png"
    assert "/" not in downloads._safe_name("../../etc/passwd") and "\\" not in downloads._safe_name("a\\b.png")


def test_the_rank_matrix_of_several_prompts(tiny_model) -> None:
    paths = [image_path(n) for n in CASE["images"][:3]]
    one = rank_images(tiny_model, EXPECTED["prompts"][0], paths)
    two = rank_images(tiny_model, EXPECTED["prompts"][1], paths[:2])
    headers, rows = view.matrix([("first", one), ("second", two)])
    assert headers == ["image", "first", "second"]
    by_name = {row[0]: row[1:] for row in rows}
    for item in one.ranked:
        assert by_name[item.name][0] == view.caption(item.rank, item.score)
    assert by_name[Path(paths[2]).name][1] == ""  # not scored against the second prompt
    assert "against 2 prompts" in view.status_line_many([("first", one), ("second", two)], "X")


def test_prompts_are_planned_from_lines_or_from_the_images(tiny_model, uploads: Path) -> None:
    from PIL.PngImagePlugin import PngInfo

    gallery = gallery_paths(uploaded(uploads, CASE["images"][:2]))
    groups, errors, notes = plan_prompts("a cat\n\n  a dog \n", gallery, [uploads])
    assert [(g.prompt, len(g.images)) for g in groups] == [("a cat", 2), ("a dog", 2)] and not errors
    info = PngInfo()
    info.add_text("parameters", "a red fox\nSteps: 20")
    Image.new("RGB", (32, 32)).save(uploads / "fox.png", pnginfo=info)
    groups, errors, notes = plan_prompts("", gallery + [str(uploads / "fox.png"), "/etc/passwd"], [uploads])
    assert [g.prompt for g in groups] == ["a red fox"]
    assert sorted(e.reason for e in errors) == sorted(
        [NOT_UPLOADED] + ["carries no prompt in its file, and the prompt box is empty"] * 2
    )
    with pytest.raises(InputError, match="Type a prompt first"):
        plan_prompts("  ", gallery, [uploads])
    groups, _, notes = plan_prompts("\n".join(f"p{k}" for k in range(10)), gallery, [uploads], max_prompts=3)
    assert len(groups) == 3 and any("first 3 of 10 prompts" in n for n in notes)


def test_examples_exist_and_are_images() -> None:
    rows = view.read_examples(Path(__file__).parent.parent / "examples")
    assert len(rows) >= 3
    for prompt, paths in rows:
        assert prompt and len(paths) >= 3
        for p in paths:
            with Image.open(p) as im:
                assert im.format == "JPEG" and min(im.size) >= 224


def test_planning_bounds_a_hostile_prompt_box_and_gallery(tiny_model, uploads: Path) -> None:
    from imagereward.model.tokenizer import MAX_PROMPT_CHARS

    gallery = gallery_paths(uploaded(uploads, CASE["images"][:1]))
    # only a bounded prefix of the box is split into lines: a prompt 5 MB further down is not read
    groups, _, _ = plan_prompts("a dog" + "\n" * 5_000_000 + "a cat", gallery, [uploads])
    assert [g.prompt for g in groups] == ["a dog"]
    groups, _, _ = plan_prompts("x" * 10_000_000, gallery, [uploads])
    assert len(groups) == 1 and len(groups[0].prompt) <= 8 * (MAX_PROMPT_CHARS + 1)
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", "a red fox\nSteps: 20")
    Image.new("RGB", (32, 32)).save(uploads / "fox.png", pnginfo=info)
    request = prepared(tiny_model, "", [(str(uploads / "fox.png"), None)] * 100, [uploads], max_images=5)
    assert [len(p.images) for p in request.prompts] == [5] and not request.unplanned
    assert any("first 5 of 100 images" in n for n in request.notes)


def test_a_long_prompt_box_is_counted_whole() -> None:
    """Issue 21: 5 million lines said "first 8 of 131076 prompts" (only a prefix had been split)."""
    text = "a cat\n" * 5_000_000
    groups, _, notes = plan_prompts(text, ["x.png"], [])
    assert len(groups) == 8 and notes == ["Only the first 8 of 5,000,000 prompts were scored (one prompt per line)."]
    _, _, notes = plan_prompts("a\n\n  \nb\n" * 5, ["x.png"], [])
    assert notes == ["Only the first 8 of 10 prompts were scored (one prompt per line)."]


def test_the_zip_is_bounded_and_says_what_it_left_out(tiny_model, tmp_path: Path) -> None:
    import zipfile

    paths = [image_path(n) for n in CASE["images"][:3]]
    ranking = rank_images(tiny_model, CASE["prompt"], paths)
    sizes = [Path(item.source).stat().st_size for item in ranking.ranked]
    _, _, zip_path = downloads.write_downloads([("p", ranking)], "X", tmp_path, max_zip_bytes=sizes[0] + sizes[1] - 1)
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        assert names[0].endswith(ranking.ranked[0].name) and names[-1] == "left_out.txt"
        assert ranking.ranked[1].name in archive.read("left_out.txt").decode()


def test_several_prompts_decode_the_images_once(tiny_model, uploads: Path, monkeypatch) -> None:
    calls = []
    real = images.load_pixels
    monkeypatch.setattr(images, "load_pixels", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    tiny_model.embedding_cache.clear()
    first, second = EXPECTED["rank"][0], EXPECTED["rank"][1]
    shared = [n for n in first["images"] if n in second["images"]][:3]
    rankings, _ = rank_request(
        tiny_model, f"{first['prompt']}\n{second['prompt']}", uploaded(uploads, shared), [uploads], Settings()
    )
    assert len(calls) == len(shared)
    for (prompt, ranking), case in zip(rankings, (first, second)):
        rewards = dict(zip(case["images"], case["rewards"]))
        assert prompt == case["prompt"]
        assert all(abs(item.score - rewards[item.name]) <= 1e-4 for item in ranking.ranked)


def test_chosen_judges_keep_the_offered_order_and_name_unknown_ones() -> None:
    from imagereward.app.scoring import chosen_judges
    from imagereward.app.settings import parse_judges

    assert chosen_judges(["Aesthetic", "CLIP"], ("CLIP", "BLIP", "Aesthetic")) == ("CLIP", "Aesthetic")
    assert chosen_judges(None, ("CLIP",)) == () and chosen_judges("CLIP", ("CLIP",)) == ("CLIP",)
    with pytest.raises(InputError, match="Unknown judge BLIP; offered here: CLIP."):
        chosen_judges(["BLIP"], ("CLIP",))
    with pytest.raises(InputError, match="list of names"):
        chosen_judges([{"path": "/etc/passwd"}], ("CLIP",))
    assert parse_judges(None) == tuple(available_scores()) and parse_judges("none") == ()
    assert parse_judges(" aesthetic ,CLIP".replace("aesthetic", "Aesthetic")) == ("CLIP", "Aesthetic")
    assert parse_judges("HPSv2.1,PickScore") == ("PickScore", "HPSv2.1")
    offered = r"\['CLIP', 'BLIP', 'Aesthetic', 'PickScore', 'HPSv2.1'\]"
    with pytest.raises(ValueError, match=r"unknown judges \['HPSv2'\]; use any of " + offered):
        parse_judges("HPSv2")


def test_a_judge_that_cannot_load_is_named_and_imagereward_still_ranks(tiny_model, tmp_path: Path, monkeypatch) -> None:
    from imagereward.app.judge_pool import JudgePool

    pool = JudgePool(["CLIP"], device="cpu", download_root=tmp_path / "empty")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = str(image_path(EXPECTED["images"][0]))
    request = prepared(tiny_model, "a cat", [path], [str(PARITY)], judges=["CLIP"])
    ((_, ranking),), notes = finish(request, score_prepared(tiny_model, request, pool))
    assert len(ranking.ranked) == 1 and ranking.judges == []
    assert "CLIP is unavailable right now (its weights could not be loaded)." in notes


def test_other_preprocessings_are_decoded_before_the_device_call_and_pickle(tiny_model, judges_root: Path) -> None:
    """A request for PickScore and HPSv2.1 decodes their pixels in `prepare` (the CPU half), once per
    preprocessing; the prepared request pickles (it crosses to a ZeroGPU worker) and the device half decodes
    nothing."""
    import pickle

    from imagereward.app.judge_pool import JudgePool
    from imagereward.images.transforms import LETTERBOX, RESIZE_CROP, RGB_RESIZE_CROP

    pool = JudgePool(["CLIP", "PickScore", "HPSv2.1"], device="cpu", download_root=judges_root)
    paths = [str(image_path(n)) for n in EXPECTED["images"][:3]]
    request = prepared(tiny_model, "a cat", paths, [str(PARITY)], judges=["CLIP", "PickScore", "HPSv2.1"], pool=pool)
    assert sorted(p.kind for p in request.pixels) == sorted([RESIZE_CROP, LETTERBOX, RGB_RESIZE_CROP])
    crossed = pickle.loads(pickle.dumps(request))
    for name in ("CLIP", "PickScore", "HPSv2.1"):
        pool.get(name).decode = None  # type: ignore[union-attr,method-assign]  # decoding now would fail
    ((_, ranking),), notes = finish(crossed, score_prepared(tiny_model, crossed, pool))
    assert ranking.judges == ["ImageReward", "CLIP", "PickScore", "HPSv2.1"] and not notes
    hps = load_hps_alone()
    by_name = {item.name: item.scores["HPSv2.1"] for item in ranking.ranked}
    alone = hps.rewards("a cat", paths)
    assert all(abs(by_name[Path(p).name] - s) <= 1e-6 for p, s in zip(paths, alone))


def load_hps_alone():  # type: ignore[no-untyped-def]
    from imagereward.judges import load_score
    from originals import JUDGES

    return load_score("HPSv2.1", device="cpu", download_root=JUDGES / "hpsv2")


def test_the_compare_sentence_gives_the_scores_in_the_order_it_names_the_images() -> None:
    """main: "prefer **b.png** to **a.png** … (scores 0.00 vs 1.00…)", the scores in A/B order."""
    text = view.compare_text("a.png", 0.0, "b.png", 1.0)
    assert "prefer **b.png** to **a.png**" in text and "(scores 1.00 vs 0.00;" in text
    tie = view.compare_text("a.png", 0.5, "b.png", 0.5)
    assert "no difference between **a.png** and **b.png**" in tie and "prefer" not in tie


def test_the_about_text_says_what_0_means_once(tmp_path: Path) -> None:
    """main: "0 is an average generation" twice in a row."""
    from imagereward.app.page import Page
    from imagereward.app.settings import LoadedModel

    page = Page(Settings(judges=()), roots=[str(tmp_path)], upload_folder=tmp_path, loaded=LoadedModel(None, "x"))
    assert page.about().count("average generation") == 1


def test_an_empty_file_is_called_empty(tmp_path: Path) -> None:
    """main: a 0-byte file was "not an image in an accepted format"."""
    from imagereward.errors import ImageLoadError
    from imagereward.images.reading import EMPTY, header_size

    (tmp_path / "empty.png").write_bytes(b"")
    for source in (tmp_path / "empty.png", b""):
        with pytest.raises(ImageLoadError) as refused:
            header_size(source, "empty.png")
        assert refused.value.reason == EMPTY


def test_downloads_are_named_by_the_prompt_and_the_time(tmp_path: Path) -> None:
    """main: every request's downloads were `rankings.csv`, `rankings.json`, `ranked_images.zip`."""
    assert downloads.download_stem("A Cute Corgi, sunset!", 0.0).startswith("imagereward-a-cute-corgi-sunset-19")
    assert downloads.download_stem("", 0.0).startswith("imagereward-rankings-")
    assert len(downloads.download_stem("x" * 30 + " " + "y" * 30)) < len("imagereward-") + 40 + 17
    model = load_for_serving(Settings(model=str(PARITY), device="cpu", judges=())).model
    ranking = rank_images(model, "a cat", [image_path(EXPECTED["rank"][0]["images"][0])])
    paths = downloads.write_downloads([("a cute corgi", ranking)], "parity", tmp_path)
    assert [p.name.split("-2")[0] for p in paths] == ["imagereward-a-cute-corgi"] * 3
    assert [p.suffix for p in paths] == [".csv", ".json", ".zip"] and paths[2].name.endswith("-images.zip")


def test_what_was_skipped_is_named_in_the_status_and_kept_in_the_downloads(tmp_path: Path) -> None:
    """main: the status said "Skipped 1" without a name, and the CSV and JSON recorded neither the skipped image
    nor the request's notes."""
    import csv
    import json

    bad = tmp_path / "not_really.png"
    bad.write_bytes(b"text, not a picture")
    model = load_for_serving(Settings(model=str(PARITY), device="cpu", judges=())).model
    ranking = rank_images(model, "a cat", [image_path(EXPECTED["rank"][0]["images"][0]), bad])
    status = view.status_line(ranking, "parity")
    assert "Skipped 1 that could not be scored: not_really.png (not an image in an accepted format" in status
    csv_path, json_path, _ = downloads.write_downloads(
        [("a cat", ranking)], "parity", tmp_path / "out", notes=["a note"]
    )
    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    assert [(r["image"], r["rank"], r["score"]) for r in rows][1] == ("not_really.png", "", "")
    saved = json.loads(json_path.read_text(encoding="utf-8"))
    assert saved["notes"] == ["a note"]
    (skipped,) = saved["rankings"][0]["skipped"]
    assert skipped["name"] == "not_really.png" and "not an image" in skipped["reason"]
