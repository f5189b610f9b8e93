"""The page in a real browser: Playwright driving Debian's Chromium against the real server (tiny model).

Skipped where Chromium is missing, except under CI (CI set), where a missing browser is a failure."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from appserver import running_app
from conftest import EXPECTED, PARITY, image_path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("Chromium is required for the browser tests in CI: apt-get install chromium")
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)

sync_api = (
    pytest.importorskip("playwright.sync_api")
    if not os.environ.get("CI")
    else __import__("playwright.sync_api", fromlist=["sync_playwright"])
)


sync_api.expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory):
    with running_app(
        tmp_path_factory.mktemp("browser"), IMAGEREWARD_MODEL=str(PARITY), IMAGEREWARD_MAX_IMAGES="12"
    ) as url:
        yield url


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app_url)
    page.locator("#score-btn").wait_for()
    yield page
    context.close()


def upload_and_score(page, prompt: str, paths: list[Path]) -> None:
    page.locator("#prompt textarea").fill(prompt)
    page.locator("#images input[type=file]").set_input_files([str(p) for p in paths])
    sync_api.expect(page.locator("#images .gallery-item img")).to_have_count(len(paths))
    page.locator("#score-btn").click()


def captions(page, n: int) -> list[str]:
    labels = page.locator("#ranked .caption-label")
    sync_api.expect(labels).to_have_count(n)
    return labels.all_inner_texts()


def toast_text(page) -> str:
    toast = page.locator(".toast-body").first
    toast.wait_for()
    return " ".join(page.locator(".toast-body").all_inner_texts())


@pytest.mark.parametrize("case", EXPECTED["rank"][:2], ids=lambda c: f"prompt{c['prompt_index']}")
def test_ranked_gallery_matches_the_original(page, case: dict, tmp_path: Path) -> None:
    upload_and_score(page, case["prompt"], [image_path(n) for n in case["images"]])
    got = captions(page, len(case["images"]))
    order = sorted(range(len(case["images"])), key=lambda i: case["ranking"][i])
    want = [f"#{case['ranking'][i]} · {case['rewards'][i]:.2f}" for i in order]
    assert got == want
    images = page.locator("#ranked .gallery-item img")
    names = [src.rsplit("/", 1)[-1] for src in (images.nth(i).get_attribute("src") for i in range(len(order)))]
    assert names == [case["images"][i] for i in order]
    sync_api.expect(page.locator("#status")).to_contain_text(f"Scored {len(order)} images with")
    sync_api.expect(page.locator("#table")).to_contain_text(case["images"][order[0]])
    page.screenshot(path=str(tmp_path / "ranked.png"), full_page=True)


def test_a_bad_file_is_named_and_the_good_ones_ranked(page, tmp_path: Path) -> None:
    bad = tmp_path / "not_really.png"
    bad.write_bytes(b"this is text, not a picture")
    case = EXPECTED["rank"][0]
    upload_and_score(page, case["prompt"], [image_path(case["images"][0]), bad, image_path(case["images"][1])])
    assert len(captions(page, 2)) == 2
    text = toast_text(page)
    assert "not_really.png" in text and "could not be scored" in text


def test_a_huge_image_is_refused_by_name(page, tmp_path: Path) -> None:
    from PIL import Image

    huge = tmp_path / "huge_90mpx.png"
    Image.new("1", (10_000, 9_000)).save(huge)  # 90 million pixels, a few kB on disk
    case = EXPECTED["rank"][0]
    upload_and_score(page, case["prompt"], [huge, image_path(case["images"][0])])
    assert len(captions(page, 1)) == 1
    text = toast_text(page)
    assert "huge_90mpx.png" in text and "over the limit" in text


def test_an_empty_prompt_is_a_readable_error(page) -> None:
    upload_and_score(page, "", [image_path(EXPECTED["images"][0])])
    assert "Type a prompt first" in toast_text(page)


def test_a_long_prompt_warns_about_35_tokens(page) -> None:
    long_prompt = EXPECTED["prompts"][3]
    upload_and_score(page, long_prompt, [image_path(EXPECTED["images"][0])])
    assert "reads only the first 35" in toast_text(page)


def test_an_example_row_runs(page) -> None:
    page.locator("#examples tbody tr").first.locator("td").first.click()
    labels = captions(page, 4)
    assert all(label.startswith(f"#{i + 1} · ") for i, label in enumerate(labels))


def test_page_says_which_model_is_loaded(page) -> None:
    sync_api.expect(page.locator("#model-status")).to_contain_text("parity on cpu (float32)")


def test_without_weights_the_page_explains_what_to_do(browser, tmp_path: Path) -> None:
    with running_app(tmp_path, IMAGEREWARD_MODEL="ImageReward-v1.0") as url:
        page = browser.new_page()
        page.goto(url)
        status = page.locator("#model-status")
        sync_api.expect(status).to_contain_text("No model loaded", timeout=TIMEOUT_MS)
        sync_api.expect(status).to_contain_text("IMAGEREWARD_MODEL")
        sync_api.expect(status).to_contain_text("HF_HUB_OFFLINE")
        page.close()


def test_duplicate_file_names_are_told_apart_on_the_page(page, tmp_path: Path) -> None:
    import shutil

    paths = []
    for k, name in enumerate(EXPECTED["rank"][0]["images"][:2]):
        (tmp_path / str(k)).mkdir()
        paths.append(tmp_path / str(k) / "image.png")
        shutil.copy(image_path(name), paths[-1])
    upload_and_score(page, EXPECTED["rank"][0]["prompt"], paths)
    captions(page, 2)
    sync_api.expect(page.locator("#table")).to_contain_text("image.png (2)")
