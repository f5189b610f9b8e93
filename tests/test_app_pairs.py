"""`/score_pairs` and the agents' tools on the page, without a server: the package's `score_pairs` numbers, rows
in the call's order with errors in place, calls batched together kept apart, whole-call refusals, and images
sent as base64 scored as their uploads are."""

from __future__ import annotations

import base64
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from imagereward.app import agents
from imagereward.app.page import Page
from imagereward.app.remote import NOT_SENT
from imagereward.app.settings import Settings, load_for_serving
from imagereward.errors import InputError
from originals import EXPECTED, PARITY, image_path

NAMES = EXPECTED["images"][:4]
PROMPTS = [c["prompt"] for c in EXPECTED["rank"] if c["prompt"].strip()][:4]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, judges_root: Path):
    uploads = tmp_path_factory.mktemp("uploads")
    for name in NAMES:
        (uploads / name[:2]).mkdir(parents=True)
        shutil.copy(image_path(name), uploads / name[:2] / name)
    settings = Settings(
        model=str(PARITY), device="cpu", judges=("CLIP", "Aesthetic"), download_root=str(judges_root), max_images=6
    )
    page = Page(settings, roots=[str(uploads)], upload_folder=uploads, loaded=load_for_serving(settings))
    yield page
    page.close()


def uploaded(page: Page, name: str) -> dict:
    return {"path": str(Path(page.roots.folders[0]) / name[:2] / name), "meta": {"_type": "gradio.FileData"}}


def library_scores(model, prompts: list[str], names: list[str]) -> list[float]:
    from imagereward.images.decoding import Decoder

    decoder = Decoder()
    try:
        decoded = decoder.decode([str(image_path(n)) for n in names], names, [model.preprocessing])
    finally:
        decoder.close()
    return [r.score for r in model.score_pairs(prompts, decoded[model.preprocessing], names)]


def test_pairs_equal_the_package_and_errors_stay_in_place(page: Page, tiny_model, tmp_path: Path) -> None:
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[2], PROMPTS[3], "  "]
    images = [uploaded(page, NAMES[0]), uploaded(page, NAMES[1]), "/etc/passwd", uploaded(page, NAMES[3])]
    images.append(uploaded(page, NAMES[2]))
    (answer,) = page.score_pairs([prompts], [images], [[]])
    rows = answer["rows"]
    assert [r["prompt"] for r in rows] == prompts and [r["image"] for r in rows] == [
        *NAMES[:2],
        "passwd",
        NAMES[3],
        NAMES[2],
    ]
    expected = library_scores(tiny_model, [prompts[0], prompts[1], prompts[3]], [NAMES[0], NAMES[1], NAMES[3]])
    got = [rows[0]["score"], rows[1]["score"], rows[3]["score"]]
    assert got == pytest.approx(expected, abs=1e-6) and all(rows[k]["error"] is None for k in (0, 1, 3))
    assert rows[2]["score"] is None and rows[2]["error"] == NOT_SENT
    assert rows[4]["score"] is None and "prompt is empty" in rows[4]["error"]
    assert rows[0]["precision"] == "float32" and answer["model"].startswith(PARITY.name)


def test_calls_batched_together_keep_their_own_rows_and_judges(page: Page, tiny_model, judges_root: Path) -> None:
    from imagereward.judges import load_score

    first = [[PROMPTS[0], PROMPTS[1]], [uploaded(page, NAMES[0]), uploaded(page, NAMES[1])], ["CLIP"]]
    second = [[PROMPTS[2]], [uploaded(page, NAMES[2])], []]
    bad = [[PROMPTS[0]], [uploaded(page, NAMES[0]), uploaded(page, NAMES[1])], []]
    unknown = [[PROMPTS[0]], [uploaded(page, NAMES[0])], ["Nope"]]
    answers = page.score_pairs(*zip(first, second, bad, unknown))
    assert [r["image"] for r in answers[0]["rows"]] == NAMES[:2] and answers[0]["judges"] == ["ImageReward", "CLIP"]
    assert "score_CLIP" not in answers[1]["rows"][0]
    assert answers[1]["rows"][0]["score"] == pytest.approx(
        library_scores(tiny_model, [PROMPTS[2]], [NAMES[2]])[0], abs=1e-6
    )
    assert answers[2] == {
        "error": "1 prompts for 2 images: send one prompt per image.",
        "rows": [],
        "model": page.loaded.label,
    }
    assert "Nope" in answers[3]["error"] and "CLIP" in answers[3]["error"]
    clip = load_score("CLIP", device="cpu", download_root=str(judges_root))
    for prompt, name, row in zip(first[0], NAMES[:2], answers[0]["rows"]):
        assert row["score_CLIP"] == pytest.approx(clip.score(prompt, str(image_path(name))), abs=1e-6)


def test_a_call_over_the_limit_is_refused_whole(page: Page) -> None:
    seven = [uploaded(page, NAMES[0])] * 7
    (answer,) = page.score_pairs([[PROMPTS[0]] * 7], [seven], [[]])
    assert answer["rows"] == [] and "the limit is 6" in answer["error"]
    (answer,) = page.score_pairs(["a prompt"], [[uploaded(page, NAMES[0])]], [[]])
    assert "two lists of equal length" in answer["error"]


def test_what_crosses_to_the_device_pickles(page: Page, zero_gpu) -> None:
    """On ZeroGPU, calls batched together cross in one `spaces.GPU` call (the stub pickles them), asking for
    `pairs_duration` of them."""
    page = Page(replace(page.settings, zero_gpu=True), page.roots.folders, page.downloads.upload_folder, page.loaded)
    try:
        answers = page.score_pairs(
            [[PROMPTS[0]], [PROMPTS[1]]], [[uploaded(page, NAMES[0])], [uploaded(page, NAMES[1])]], [[], []]
        )
    finally:
        page.close()
    assert [a["rows"][0]["error"] for a in answers] == [None, None]
    (call,) = zero_gpu()  # two calls, one device call
    assert call["function"] == "_pairs_device" and 15 <= call["duration"] <= 20


def data_uri(name: str) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(image_path(name).read_bytes()).decode()


def test_the_agents_scores_equal_the_pages_for_the_same_images(page: Page) -> None:
    sent = agents.agent_scores(page, PROMPTS[0], [data_uri(NAMES[0]), data_uri(NAMES[1]), "/etc/passwd"], ["CLIP"])
    uploads = page.api(PROMPTS[0], [uploaded(page, NAMES[0]), uploaded(page, NAMES[1])], ["CLIP"])
    key = {"image 1": NAMES[0], "image 2": NAMES[1]}
    assert [(key[r["image"]], r["score"], r["score_CLIP"]) for r in sent["ranked"]] == [
        (r["image"], r["score"], r["score_CLIP"]) for r in uploads["ranked"]
    ]
    assert sent["skipped"] == [{"name": "image 3", "reason": NOT_SENT}]
    with pytest.raises(InputError, match="None of the images could be received"):
        agents.agent_scores(page, PROMPTS[0], ["file:///etc/passwd"])


def test_the_agents_comparison_uses_the_pages_formula(page: Page) -> None:
    from imagereward.app.view import preference_probability

    both = agents.agent_compare(page, PROMPTS[0], data_uri(NAMES[0]), data_uri(NAMES[1]))
    assert both["p_a_preferred"] == pytest.approx(preference_probability(both["a"]["score"], both["b"]["score"]))
    assert both["preferred"] == ("a" if both["a"]["score"] >= both["b"]["score"] else "b")
    with pytest.raises(InputError, match="Both images are needed"):
        agents.agent_compare(page, PROMPTS[0], data_uri(NAMES[0]), "/etc/passwd")


def test_the_agents_explanation_is_the_pages(page: Page) -> None:
    sent = agents.agent_explain(page, PROMPTS[0], data_uri(NAMES[0]))
    direct = page.explain_api(PROMPTS[0], uploaded(page, NAMES[0]))
    assert sent["name"] == "image 1" and sent["heatmap"] == direct["heatmap"] and sent["words"] == direct["words"]
