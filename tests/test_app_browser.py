"""The page in a real browser: Playwright driving Debian's Chromium against the real server (tiny model).

Skipped where Chromium is missing, except under CI (CI set), where a missing browser is a failure."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appserver import running_app
from originals import EXPECTED, JUDGES, PARITY, image_path

BASELINES = Path(__file__).parent / "fixtures" / "parity-baselines"
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
def app_url(tmp_path_factory: pytest.TempPathFactory, judges_root: Path):
    with running_app(
        tmp_path_factory.mktemp("browser"),
        IMAGEREWARD_MODEL=str(PARITY),
        IMAGEREWARD_MAX_IMAGES="12",
        IMAGEREWARD_DOWNLOAD_ROOT=str(judges_root),
    ) as url:
        yield url


@pytest.fixture
def page(browser, app_url):
    page = open_page(browser, app_url)
    yield page
    page.context.close()


def open_page(browser, url: str, width: int = 1400, height: int = 1800):
    """A new page (in its own context: `page.context`) at `url`, the page's own script running."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.locator("#score-btn").wait_for()
    wait_for_page_script(page)
    return page


def wait_for_page_script(page) -> None:
    """The page's own script (assets/app.js) runs after Gradio mounts: it marks the status as a live region."""
    page.locator("#status[aria-live=polite]").wait_for(state="attached")


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
    want = [f"#{case['ranking'][i]} · {case['rewards'][i]:.2f} · {case['images'][i]}" for i in order]
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
    # The status line keeps the name and the reason once the notice is gone (main: "Skipped 1" alone).
    sync_api.expect(page.locator("#status")).to_contain_text("Skipped 1 that could not be scored: not_really.png (")


def test_a_huge_image_is_refused_by_name(page, tmp_path: Path) -> None:
    from PIL import Image

    huge = tmp_path / "huge_90mpx.png"
    Image.new("1", (10_000, 9_000)).save(huge)  # 90 million pixels, a few kB on disk
    case = EXPECTED["rank"][0]
    upload_and_score(page, case["prompt"], [huge, image_path(case["images"][0])])
    assert len(captions(page, 1)) == 1
    text = toast_text(page)
    assert "huge_90mpx.png" in text and "over the limit" in text


def test_one_file_over_the_size_limit_costs_only_that_file(page, tmp_path: Path) -> None:
    """main: Gradio's own 20 MB check refused the whole pick, so "Add at least one image" and nothing scored."""
    big = tmp_path / "too_big.png"
    big.write_bytes(b"\x00" * (21 * 1024 * 1024))
    case = EXPECTED["rank"][0]
    upload_and_score(page, case["prompt"], [big, image_path(case["images"][0])])
    assert len(captions(page, 1)) == 1
    text = toast_text(page)
    assert "too_big.png" in text and "over the 20 MB a file may be" in text


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
    assert all(label.rsplit(" · ", 1)[-1].endswith(".jpg") for label in labels)


def test_no_id_is_given_twice(page) -> None:
    """main: `id="compare"` on two elements (Gradio writes a Group's elem_id twice)."""
    repeated = page.evaluate(
        """() => { const seen = {}; document.querySelectorAll('[id]').forEach(e => { if (e.id) seen[e.id] = (seen[e.id] || 0) + 1; });
        return Object.keys(seen).filter(k => seen[k] > 1); }"""
    )
    assert repeated == []


@pytest.mark.parametrize("width, height", [(1440, 1000), (390, 844)], ids=["desktop", "phone"])
def test_pictures_buttons_and_thumbnails_are_named_and_the_status_names_the_winner(
    browser, app_url, width, height
) -> None:
    """main: Best, A and B without alt text; the ranked gallery's buttons unnamed; upload thumbnails read
    "Thumbnail 1 of 3" without the file; the announced status did not name the winner; no focus ring on a
    checkbox reached by the keyboard."""
    page = open_page(browser, app_url, width, height)
    case = EXPECTED["rank"][0]
    names = case["images"][:3]
    page.locator("#prompt textarea").fill(case["prompt"])
    page.locator("#images input[type=file]").set_input_files([str(image_path(n)) for n in names])
    sync_api.expect(page.locator("#images .gallery-item img")).to_have_count(3)
    thumbs = page.locator("#images [aria-label^='Thumbnail']")
    if thumbs.count():
        sync_api.expect(thumbs.first).to_have_attribute(
            "aria-label", re.compile(r"Thumbnail 1 of 3: .+\.(png|jpg|webp)$")
        )
    page.locator("#score-btn").click()
    labels = captions(page, 3)
    best = labels[0].rsplit(" · ", 1)[-1]
    sync_api.expect(page.locator("#status")).to_contain_text(f"Best: {best} (")
    sync_api.expect(page.locator("#winner img")).to_have_attribute("alt", re.compile(rf"^Best: #1 · {re.escape(best)}"))
    sync_api.expect(page.locator("#image-a img")).to_have_attribute("alt", f"Image A: {best}")
    sync_api.expect(page.locator("#image-b img")).to_have_attribute("alt", re.compile(r"^Image B: .+"))
    buttons = page.locator("#ranked button:has(img)")
    for k in range(buttons.count()):
        assert buttons.nth(k).get_attribute("aria-label"), buttons.nth(k).inner_html()[:120]
    box = page.locator("#why-toggle input")
    box.focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    outline = box.evaluate("e => getComputedStyle(e).outlineStyle + ' ' + getComputedStyle(e).outlineWidth")
    assert outline.split()[0] != "none" and outline.split()[1] != "0px", outline
    page.context.close()


def test_on_a_phone_the_gallery_table_and_comparison_are_whole(browser, app_url) -> None:
    """At 390 px with a judge added (main: the ranked gallery a 464 px box scrolling inside itself, the 5th image
    cut; the table showing rank and image only, the rest off to the side; A and B two 160 px pictures)."""
    page = open_page(browser, app_url, 390, 844)
    page.locator("#judges label", has_text="CLIP").first.click()
    case = EXPECTED["rank"][0]
    upload_and_score(page, case["prompt"], [image_path(n) for n in case["images"][:5]])
    captions(page, 5)
    inner = page.evaluate(
        "() => { const e = document.querySelector('#ranked .grid-wrap'); return [e.scrollHeight, e.clientHeight]; }"
    )
    assert inner[0] <= inner[1] + 1, inner  # the page scrolls, not the gallery
    table = page.locator("#table table").bounding_box()
    headers = page.locator("#table thead th").all()
    assert len(headers) == 6
    for header in headers:
        box = header.bounding_box()
        assert box["x"] >= table["x"] - 1 and box["x"] + box["width"] <= min(390, table["x"] + table["width"]) + 1
    cut = page.evaluate(
        "() => Array.from(document.querySelectorAll('#table tbody td')).filter(td => td.scrollWidth > td.clientWidth + 1).length"
    )
    assert cut == 0
    for picture in ("#image-a", "#image-b"):
        assert page.locator(picture).bounding_box()["width"] >= 300
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.context.close()


def test_page_says_which_model_is_loaded(page) -> None:
    sync_api.expect(page.locator("#model-status")).to_contain_text("parity on cpu (float32)")


def test_without_weights_the_page_is_short_for_visitors_and_scoring_is_off(browser, tmp_path: Path) -> None:
    with running_app(tmp_path, IMAGEREWARD_MODEL="ImageReward-v1.0") as url:
        page = browser.new_page()
        page.goto(url)
        status = page.locator("#model-status")
        sync_api.expect(status).to_contain_text("Scoring is unavailable", timeout=TIMEOUT_MS)
        sync_api.expect(status).to_contain_text("operator")
        assert "IMAGEREWARD_MODEL" not in status.inner_text()  # the operator's details are folded away
        details = page.locator("#operator-details")
        details.get_by_text("Details for the operator").click()
        sync_api.expect(details).to_contain_text("IMAGEREWARD_MODEL")
        sync_api.expect(details).to_contain_text("HF_HUB_OFFLINE")
        sync_api.expect(page.locator("#score-btn")).to_be_disabled()
        # No examples to click into a page of "Error" badges (main: caching an example's refusal raised
        # "'Markdown' object has no attribute 'info'").
        sync_api.expect(page.locator("#examples")).to_have_count(0)
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


@pytest.mark.parametrize("width, height", [(390, 844), (768, 1024), (1440, 900)], ids=["phone", "tablet", "desktop"])
def test_at_every_width_nothing_is_clipped_and_the_results_come_into_view(
    browser, app_url, width: int, height: int
) -> None:
    page = open_page(browser, app_url, width, height)
    case = EXPECTED["rank"][0]
    upload_and_score(page, case["prompt"], [image_path(n) for n in case["images"][:8]])
    captions(page, 8)
    page.wait_for_timeout(500)
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scrolling
    box = page.locator("#ranked").bounding_box()
    for image in page.locator("#ranked .gallery-item").all():
        item = image.bounding_box()
        assert item["x"] >= box["x"] - 1 and item["x"] + item["width"] <= box["x"] + box["width"] + 1
        assert item["x"] + item["width"] <= width
    status = page.locator("#status").bounding_box()
    assert 0 <= status["y"] < height, "the results are scrolled into view after scoring"
    fit = page.locator("#ranked .gallery-item img").first.evaluate("e => getComputedStyle(e).objectFit")
    assert fit == "contain"
    # every caption below its thumbnail, none over the image
    for item in page.locator("#ranked .thumbnail-item").all():
        image = item.locator("img").bounding_box()
        label = item.locator(".caption-label").bounding_box()
        assert label["y"] >= image["y"] + image["height"] - 1, (image, label)
    page.context.close()


def test_the_comparison_shows_two_images_and_the_probability_from_their_scores(page) -> None:
    import math

    case = EXPECTED["rank"][0]
    upload_and_score(page, case["prompt"], [image_path(n) for n in case["images"][:4]])
    captions(page, 4)
    rewards = dict(zip(case["images"], case["rewards"]))
    order = sorted(case["images"][:4], key=lambda n: -rewards[n])
    text = page.locator("#compare-text")
    sync_api.expect(text).to_contain_text(order[0])
    sync_api.expect(page.locator("#image-a img")).to_have_count(1)
    sync_api.expect(page.locator("#image-b img")).to_have_count(1)
    p = 1 / (1 + math.exp(-1.0333394966054072 * (round(rewards[order[0]], 4) - round(rewards[order[1]], 4))))
    assert f"{100 * p:.0f}%" in text.inner_text() and order[1] in text.inner_text()
    page.locator("#pick-b input").fill(order[3])  # any two: #1 against #4
    page.locator("#pick-b input").press("Enter")
    sync_api.expect(text).to_contain_text(order[3])
    p = 1 / (1 + math.exp(-1.0333394966054072 * (round(rewards[order[0]], 4) - round(rewards[order[3]], 4))))
    sync_api.expect(text).to_contain_text(f"{100 * p:.0f}%")


def test_the_downloads_parse_back_to_the_ranking(page, tmp_path: Path) -> None:
    import csv
    import json
    import zipfile

    case = EXPECTED["rank"][0]
    upload_and_score(page, case["prompt"], [image_path(n) for n in case["images"][:3]])
    shown = captions(page, 3)
    links = page.locator("#downloads a")
    sync_api.expect(links).to_have_count(3)
    files = {}
    for k in range(3):
        with page.expect_download() as info:
            links.nth(k).click()
        target = tmp_path / info.value.suggested_filename
        info.value.save_as(target)
        files[target.suffix] = target
    rows = list(csv.DictReader(files[".csv"].open(encoding="utf-8")))
    data = json.loads(files[".json"].read_text(encoding="utf-8"))
    (ranking,) = data["rankings"]
    assert ranking["prompt"] == case["prompt"]
    assert [r["image"] for r in rows] == [r["image"] for r in ranking["ranked"]] == [c.split(" · ")[2] for c in shown]
    assert [int(r["rank"]) for r in rows] == [1, 2, 3] and all(r["prompt"] == case["prompt"] for r in rows)
    rewards = dict(zip(case["images"], case["rewards"]))
    assert all(abs(float(r["score"]) - rewards[r["image"]]) <= 1e-4 for r in rows)
    assert {r["precision"] for r in rows} == {"float32"} and data["model"] == {
        r["model"] for r in rows
    }.pop() == "parity"
    with zipfile.ZipFile(files[".zip"]) as archive:
        names = archive.namelist()
    assert names == [f"{int(r['rank']):02d}_{float(r['score']):+.2f}_{r['image']}" for r in rows]


def test_enter_scores_and_shift_enter_adds_a_line(page) -> None:
    case = EXPECTED["rank"][0]
    page.locator("#images input[type=file]").set_input_files([str(image_path(n)) for n in case["images"][:2]])
    sync_api.expect(page.locator("#images .gallery-item img")).to_have_count(2)
    box = page.locator("#prompt textarea")
    box.fill("a first line")
    box.press("Shift+Enter")
    assert "\n" in box.input_value()
    box.fill(case["prompt"])
    box.press("Enter")
    assert len(captions(page, 2)) == 2 and "\n" not in box.input_value()


def test_an_empty_prompt_leaves_no_error_badges(page) -> None:
    upload_and_score(page, "", [image_path(EXPECTED["images"][0])])
    assert "Type a prompt first" in toast_text(page)
    assert page.locator("#ranked .error, #table .error, #status .error").count() == 0
    assert page.get_by_text("Error", exact=True).count() == 0


def _with_prompt(tmp_path: Path, source: str, name: str, chunks: dict[str, str]) -> Path:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    target = tmp_path / name
    with Image.open(image_path(source)) as image:
        image.save(target, pnginfo=info)
    return target


def _a1111(prompt: str) -> dict[str, str]:
    return {"parameters": f"{prompt}\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7"}


def _comfyui(prompt: str) -> dict[str, str]:
    import json

    graph = {
        "3": {"class_type": "KSampler", "inputs": {"positive": ["6", 0], "negative": ["7", 0]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry"}},
    }
    return {"prompt": json.dumps(graph)}


@pytest.mark.parametrize("chunks", [_a1111, _comfyui], ids=["a1111", "comfyui"])
def test_an_embedded_prompt_fills_the_empty_prompt_box(page, tmp_path: Path, chunks) -> None:
    case = EXPECTED["rank"][0]
    path = _with_prompt(tmp_path, case["images"][0], "generated.png", chunks(case["prompt"]))
    page.locator("#images input[type=file]").set_input_files([str(path)])
    sync_api.expect(page.locator("#prompt textarea")).to_have_value(case["prompt"])


def test_images_with_different_prompts_are_each_ranked_against_their_own(page, tmp_path: Path) -> None:
    first, second = EXPECTED["rank"][0], EXPECTED["rank"][1]
    files = [
        _with_prompt(tmp_path, first["images"][0], "a.png", _a1111(first["prompt"])),
        _with_prompt(tmp_path, first["images"][3], "b.png", _a1111(first["prompt"])),
        _with_prompt(tmp_path, second["images"][0], "c.png", _comfyui(second["prompt"])),
    ]
    page.locator("#images input[type=file]").set_input_files([str(p) for p in files])
    sync_api.expect(page.locator("#images .gallery-item img")).to_have_count(3)
    sync_api.expect(page.locator("#prompt textarea")).to_have_value("")
    page.locator("#score-btn").click()
    grid = page.locator("#matrix")
    sync_api.expect(grid).to_be_visible()
    sync_api.expect(grid).to_contain_text("c.png")
    text = grid.inner_text()
    r = dict(zip(first["images"], first["rewards"]))
    assert f"{r[first['images'][0]]:.2f}" in text and f"{r[first['images'][3]]:.2f}" in text
    assert f"{second['rewards'][0]:.2f}" in text
    assert "different prompts" in toast_text(page)


def test_several_prompts_give_the_rank_matrix(page) -> None:
    first, second = EXPECTED["rank"][0], EXPECTED["rank"][1]
    shared = [n for n in first["images"] if n in second["images"]][:3]
    page.locator("#prompt textarea").fill(first["prompt"] + "\n" + second["prompt"])
    page.locator("#images input[type=file]").set_input_files([str(image_path(n)) for n in shared])
    sync_api.expect(page.locator("#images .gallery-item img")).to_have_count(len(shared))
    page.locator("#score-btn").click()
    grid = page.locator("#matrix")
    sync_api.expect(grid).to_be_visible()
    text = grid.inner_text()
    for case in (first, second):
        rewards = dict(zip(case["images"], case["rewards"]))
        ranks = sorted(shared, key=lambda n: -rewards[n])
        for rank, name in enumerate(ranks, 1):
            assert f"#{rank} · {rewards[name]:.2f}" in text
    sync_api.expect(page.locator("#status")).to_contain_text("against 2 prompts")
    # Any prompt's ranking can be shown: gallery, Best, the comparison and what the judges read follow it
    # (main: only the first prompt's, the others text in the matrix).
    rewards = dict(zip(second["images"], second["rewards"]))
    ranks = sorted(shared, key=lambda n: -rewards[n])
    page.locator("#prompt-pick input").click()
    page.get_by_role("option", name=second["prompt"]).click()
    want = [f"#{k} · {rewards[n]:.2f} · {n}" for k, n in enumerate(ranks, 1)]
    sync_api.expect(page.locator("#ranked .caption-label")).to_have_text(want)
    sync_api.expect(page.locator("#winner-text")).to_contain_text(f"#1 · {ranks[0]}")
    sync_api.expect(page.locator("#compare-text")).to_contain_text(ranks[0])
    sync_api.expect(page.locator("#reading .read").first).to_contain_text(second["prompt"][:40])


CONTRAST_JS = """
([selector, pseudo]) => {
  const element = document.querySelector(selector);
  const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const fg = parse(getComputedStyle(element, pseudo).color);
  let node = element, bg = [0, 0, 0, 0];
  while (node && (bg.length === 4 && bg[3] === 0)) {
    bg = parse(getComputedStyle(node).backgroundColor);
    if (bg.length === 3) break;
    node = node.parentElement;
  }
  const [a, b] = [lum(fg), lum(bg.slice(0, 3))].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}
"""


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_pages_own_parts_meet_aa_contrast_and_announce_the_status(browser, app_url, theme: str) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1800}, color_scheme=theme)
    page = context.new_page()
    page.goto(app_url + f"?__theme={theme}")
    page.locator("#score-btn").wait_for()
    wait_for_page_script(page)
    for selector, pseudo in [
        ("#score-btn", None),
        ("#prompt textarea", "::placeholder"),
        ("#images [data-testid=block-label]", None),
        ("#prompt [data-testid=block-info]", None),
    ]:
        ratio = page.evaluate(CONTRAST_JS, [selector, pseudo])
        assert ratio >= 4.5, f"{selector} {pseudo or ''} in the {theme} theme: {ratio:.2f}:1"
    case = EXPECTED["rank"][0]
    upload_and_score(page, case["prompt"], [image_path(n) for n in case["images"][:2]])
    labels = captions(page, 2)
    assert page.locator("#status").get_attribute("aria-live") == "polite"
    alts = [page.locator("#ranked .gallery-item img").nth(k).get_attribute("alt") for k in range(2)]
    assert alts == labels
    page.context.close()


def test_an_image_dropped_anywhere_on_the_page_is_added(page) -> None:
    import base64

    data = base64.b64encode(image_path(EXPECTED["images"][0]).read_bytes()).decode()
    page.evaluate(
        """([data, name]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "image/png" }));
            const target = document.querySelector("#about");
            target.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
            const drop = new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true });
            target.dispatchEvent(drop);
            window.__dropPrevented = drop.defaultPrevented;
        }""",
        [data, "dropped.png"],
    )
    assert page.evaluate("window.__dropPrevented")  # the browser does not navigate to the file
    sync_api.expect(page.locator("#images .gallery-item img")).to_have_count(1)


def test_two_judges_on_one_request_give_columns_an_ordered_gallery_and_agreement(page) -> None:
    """ImageReward and CLIP on the same images: the table has CLIP's score and rank columns with CLIP's own
    numbers, choosing CLIP orders the gallery by CLIP, and the agreement line counts the pairs."""
    from imagereward.judges import load_score
    from imagereward.ranking import pairs_agreeing

    case = EXPECTED["rank"][0]
    names = case["images"][:5]
    paths = [image_path(n) for n in names]
    page.locator("#judges label", has_text="CLIP").first.click()
    upload_and_score(page, case["prompt"], paths)
    captions(page, 5)
    headers = page.locator("#table thead th").all_inner_texts()
    assert [h.strip() for h in headers][:6] == [
        "ImageReward rank",
        "image",
        "ImageReward score",
        "precision",
        "CLIP score",
        "CLIP rank",
    ]
    clip = load_score("CLIP", device="cpu", download_root=BASELINES).rewards(case["prompt"], paths)
    reward = dict(zip(case["images"], case["rewards"]))
    same, pairs = pairs_agreeing([reward[n] for n in names], clip)
    sync_api.expect(page.locator("#agreement")).to_contain_text(f"CLIP {same} of {pairs} pairs")
    order_by_and_check(page, "CLIP", names, clip)


def order_by_and_check(page, judge: str, names: list[str], scores: list[float]) -> list[str]:
    """Chooses `judge` in "Order the gallery and table by"; checks that the gallery's captions name the judge and
    show its ranks and scores in its order, that "Best" shows its #1, and that the table follows the gallery
    (main: the captions did not say whose score, and "Best" stayed ImageReward's #1); returns the table's rows
    as shown."""
    from imagereward.judges.base import ranks_from_rewards

    ranks = ranks_from_rewards(scores)
    order = [names[i] for i in sorted(range(len(names)), key=lambda i: ranks[i])]
    page.locator("#order-by label", has_text=judge).click()
    want = [f"#{ranks[names.index(n)]} · {judge} {scores[names.index(n)]:.2f} · {n}" for n in order]
    sync_api.expect(page.locator("#ranked .caption-label")).to_have_text(want)
    best = scores[names.index(order[0])]
    sync_api.expect(page.locator("#winner-text")).to_contain_text(
        f"#1 by {judge} · {order[0]} — {judge} score {best:.2f}"
    )
    sync_api.expect(page.locator("#winner img")).to_have_attribute("src", re.compile(re.escape(order[0]) + "$"))
    rows_shown = page.locator("#table div[role=row][data-index]")
    sync_api.expect(rows_shown.first).to_contain_text(order[0])
    rows = rows_shown.all_inner_texts()
    assert [next(n for n in names if n in row) for row in rows] == order  # the table follows the gallery
    return rows


def test_imagereward_pickscore_and_hps_on_one_request(page) -> None:
    """The three judges on the same images: the table has each modern judge's columns with its own numbers
    (PickScore's choice is its softmax, in %), choosing HPSv2.1 orders the gallery and the table by it, and the
    agreement line names both."""
    from imagereward.judges import load_score
    from imagereward.judges.pickscore import softmax
    from imagereward.ranking import pairs_agreeing

    case = EXPECTED["rank"][1]
    names = case["images"][:5]
    paths = [image_path(n) for n in names]
    page.locator("#judges label", has_text="PickScore").first.click()
    page.locator("#judges label", has_text="HPSv2.1").first.click()
    upload_and_score(page, case["prompt"], paths)
    captions(page, 5)
    headers = [h.strip() for h in page.locator("#table thead th").all_inner_texts()]
    assert headers[4:] == [
        "PickScore score",
        "PickScore rank",
        "PickScore choice %",
        "HPSv2.1 score",
        "HPSv2.1 rank",
    ]
    pick = load_score("PickScore", device="cpu", download_root=JUDGES / "pickscore").rewards(case["prompt"], paths)
    hps = load_score("HPSv2.1", device="cpu", download_root=JUDGES / "hpsv2").rewards(case["prompt"], paths)
    reward = dict(zip(case["images"], case["rewards"]))
    for judge, scores in (("PickScore", pick), ("HPSv2.1", hps)):
        same, pairs = pairs_agreeing([reward[n] for n in names], scores)
        sync_api.expect(page.locator("#agreement")).to_contain_text(f"{judge} {same} of {pairs} pairs")
    rows = order_by_and_check(page, "HPSv2.1", names, hps)
    choice = dict(zip(names, softmax(pick)))
    by_hps = [next(n for n in names if n in row) for row in rows]
    for row, name in zip(rows, by_hps):
        cells = row.split()
        assert f"{round(100 * choice[name], 2):g}" in cells and f"{round(hps[names.index(name)], 4):g}" in cells


# ------------------------------------------------------------------------------ what it read, and why
LONG = EXPECTED["rank"][0]["prompt"] + (
    ", golden hour lighting, 85mm lens, bokeh, award winning, trending on artstation, sharp focus"
)


@pytest.mark.parametrize("width, height", [(390, 844), (1440, 900)], ids=["phone", "desktop"])
def test_the_page_shows_what_the_model_read_which_words_mattered_and_where_it_looked(
    browser, app_url, tiny_model, width: int, height: int
) -> None:
    page = open_page(browser, app_url, width, height)
    case = EXPECTED["rank"][0]
    paths = [image_path(n) for n in case["images"][:3]]
    upload_and_score(page, LONG, paths)
    order = [label.rsplit(" · ", 1)[-1] for label in captions(page, 3)]  # best first, for the long prompt

    # what it read: the read part plain, the rest greyed, the counts
    reading = tiny_model.reading(LONG)
    block = page.locator("#reading .reading")
    sync_api.expect(block).to_have_count(1)
    sync_api.expect(block.locator(".read-counts")).to_have_text(
        f"ImageReward read {reading.tokens_read} of {reading.tokens_total} tokens; the greyed part did not count"
    )
    assert block.locator(".read").inner_text() == reading.read
    assert block.locator(".unread").inner_text() == reading.unread and reading.unread
    grey = block.locator(".unread").evaluate("e => getComputedStyle(e).color")
    assert grey != block.locator(".read").evaluate("e => getComputedStyle(e).color")

    # why: the words as chips on A and B, their numbers the library's, and the map drawn over both and the winner
    plain = page.locator("#image-a img").get_attribute("src")
    page.locator("#why-toggle input").check()
    chips = page.locator("#why .chips")
    sync_api.expect(chips).to_have_count(2)  # A is the winner: two images explained
    for k, name in enumerate(order[:2]):
        expected = tiny_model.explain(LONG, str(image_path(name)))
        numbers = chips.nth(k).locator(".chip small").all_inner_texts()
        assert numbers == [f"{d:+.2f}" for _, d in expected.words]
        texts = chips.nth(k).locator(".chip").evaluate_all("cs => cs.map(c => c.textContent)")
        assert [t[: -len(n)] for t, n in zip(texts, numbers)] == [w for w, _ in expected.words]
    # The sentence says what its number is, and each image's own effect (main: "Words that favour 1.webp most:
    # lighting (+0.94)" beside lighting's red -0.15 chip on 1.webp, the difference unexplained).
    favour = page.locator("#why .favour").first
    sync_api.expect(favour).to_contain_text(
        f"Words that favour {order[0]} over {order[1]} most (the word's effect on {order[0]} less its effect on {order[1]})"
    )
    sync_api.expect(favour).to_contain_text(f" on {order[0]}, ")
    # A legend for the map's colours (main: none), and the map over A and B only, never over "Best" (main: also
    # over Best).
    sync_api.expect(page.locator("#why .why-legend .swatch")).to_have_count(2)
    for image in ("#image-a", "#image-b"):
        sync_api.expect(page.locator(f"{image} img")).to_have_attribute("src", re.compile(r"why-\d+\.jpg$"))
    assert not re.search(r"why-\d+\.jpg$", page.locator("#winner img").get_attribute("src") or "")
    # Downloading A gives the image as ranked, under its name, not the map (main: the map, as why-N.jpg).
    sync_api.expect(page.locator("#image-a a[download]")).to_have_attribute("download", order[0])
    with page.expect_download() as got:
        page.locator("#image-a a[download]").click()
    assert got.value.suggested_filename == order[0]
    assert Path(got.value.path()).read_bytes() == image_path(order[0]).read_bytes()
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # chips wrap, nothing sideways
    for chip in page.locator("#why .chip").all()[:40]:
        box = chip.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width
    page.locator("#why-toggle input").uncheck()
    sync_api.expect(page.locator("#image-a img")).to_have_attribute("src", plain)
    sync_api.expect(page.locator("#why .chips")).to_have_count(0)
    page.context.close()


def score_with_clip_unavailable(browser, url: str, order_shown: bool = False):
    """A page that ticked CLIP (whose weights are not there) and scored one image: CLIP marked unavailable.
    With `order_shown`, "Order by" is checked to be shown before."""
    page = open_page(browser, url)
    if order_shown:
        sync_api.expect(page.locator("#order-by")).to_be_visible()
    page.locator("#judges label").filter(has_text="CLIP").click()
    upload_and_score(page, EXPECTED["rank"][0]["prompt"], [image_path(EXPECTED["images"][0])])
    captions(page, 1)
    sync_api.expect(page.locator("#judges")).to_contain_text("Unavailable right now")
    return page


def test_a_judge_that_cannot_load_is_marked_unavailable_once(browser, tmp_path: Path) -> None:
    with running_app(
        tmp_path, IMAGEREWARD_MODEL=str(PARITY), IMAGEREWARD_JUDGES="CLIP,BLIP", IMAGEREWARD_DOWNLOAD_ROOT=str(tmp_path)
    ) as url:
        page = score_with_clip_unavailable(browser, url)
        assert " ".join(page.locator(".toast-body").all_inner_texts()).count("CLIP is unavailable") == 1
        sync_api.expect(page.locator("#judges label").filter(has_text="CLIP")).to_have_count(0)
        sync_api.expect(page.locator("#order-by label").filter(has_text="CLIP")).to_have_count(0)
        page.reload()  # a new visit knows it too
        page.locator("#score-btn").wait_for()
        sync_api.expect(page.locator("#judges")).to_contain_text(
            "Unavailable right now (their weights could not be loaded): CLIP"
        )
        sync_api.expect(page.locator("#judges label").filter(has_text="BLIP")).to_have_count(1)
        sync_api.expect(page.locator("#judges label").filter(has_text="CLIP")).to_have_count(0)
        page.context.close()


def test_with_every_other_judge_unavailable_there_is_no_order_to_choose(browser, tmp_path: Path) -> None:
    """main: "Order by" stayed, a radio with ImageReward as its one option."""
    with running_app(
        tmp_path, IMAGEREWARD_MODEL=str(PARITY), IMAGEREWARD_JUDGES="CLIP", IMAGEREWARD_DOWNLOAD_ROOT=str(tmp_path)
    ) as url:
        page = score_with_clip_unavailable(browser, url, order_shown=True)
        sync_api.expect(page.locator("#order-by")).to_be_hidden()
        page.reload()
        page.locator("#score-btn").wait_for()
        wait_for_page_script(page)
        sync_api.expect(page.locator("#judges")).to_contain_text("Unavailable right now")
        sync_api.expect(page.locator("#order-by")).to_be_hidden()
        page.context.close()


@pytest.mark.parametrize("width, height", [(390, 844), (1440, 900)], ids=["phone", "desktop"])
def test_picked_files_are_named_and_focus_moves_to_the_score_button(
    browser, app_url, tmp_path: Path, width: int, height: int
) -> None:
    """main: a file the browser cannot show was a blank, unnamed tile, and focus dropped to the page's body
    after picking files."""
    page = open_page(browser, app_url, width, height)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    page.locator("#images input[type=file]").set_input_files([str(image_path(EXPECTED["images"][0])), str(broken)])
    sync_api.expect(page.locator("#images .broken-label")).to_have_text(re.compile(r"^broken\.png \(cannot be shown"))
    sync_api.expect(
        page.locator("#images [aria-label^='Thumbnail 2 of 2: broken.png (cannot be shown']")
    ).to_have_count(1)
    page.wait_for_function("document.activeElement && document.activeElement.id === 'score-btn'")
    page.context.close()


def test_on_a_phone_the_first_screen_reaches_the_score_button_and_an_example(browser, app_url) -> None:
    """main: at 390 x 844 the score button and the examples were below the fold (an empty drop zone of 300 px, an
    empty reading block)."""
    page = open_page(browser, app_url, 390, 844)
    button = page.locator("#score-btn").bounding_box()
    first_example = page.locator("#examples tbody tr").first.bounding_box()
    assert button["y"] + button["height"] <= 844 and first_example["y"] < 844, (button, first_example)
    page.context.close()


# ---------------------------------------------------------------------------------------------- your call
@pytest.mark.parametrize("width, height", [(390, 844), (1440, 900)], ids=["phone", "desktop"])
def test_a_person_s_verdicts_move_on_count_agreement_survive_a_reload_and_come_away(
    browser, app_url, tmp_path: Path, width: int, height: int
) -> None:
    """Keys give verdicts (B, then T, then X); each is announced, the next pair comes by itself, the agreement
    table counts the decided ones and fits the screen, a reload keeps it, and the download holds the pairs."""
    import json
    import zipfile

    page = open_page(browser, app_url, width, height)
    case = EXPECTED["rank"][0]
    upload_and_score(page, case["prompt"], [image_path(n) for n in case["images"][:3]])
    captions(page, 3)
    sync_api.expect(page.locator("#compare-text")).not_to_be_empty()
    sync_api.expect(page.locator("#verdict-note")).to_contain_text("nothing of them is kept on this server")
    assert page.locator("#verdict-line").get_attribute("aria-live") == "polite"
    assert page.locator("#verdict-b").get_attribute("aria-keyshortcuts") == "B ArrowRight"
    pairs = []
    for key, said in (("b", "you preferred"), ("t", "a tie"), ("x", "both bad")):
        pair = (page.locator("#pick-a input").input_value(), page.locator("#pick-b input").input_value())
        page.locator("body").click(position={"x": 2, "y": 2})  # no text box focused: the keys are verdicts
        page.keyboard.press(key)
        sync_api.expect(page.locator("#verdict-line")).to_contain_text(f"Recorded: {said}")
        sync_api.expect(page.locator("#verdict-line")).to_contain_text(f"({pair[0]} vs {pair[1]})")
        pairs.append(pair)
    assert len({frozenset(p) for p in pairs}) == 3  # each verdict moved on to a pair not judged yet
    table = page.locator("#agreement-table table").first
    sync_api.expect(table).to_contain_text("ImageReward")
    sync_api.expect(page.locator("#agreement-table")).to_contain_text("(+1 tie, 1 both bad)")
    sync_api.expect(page.locator("#agreement-table")).to_contain_text("0 pairs of this ranking left to judge.")
    box = table.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    shown = page.locator("#agreement-table").inner_text()
    page.reload()
    page.locator("#score-btn").wait_for()
    sync_api.expect(page.locator("#agreement-table")).to_contain_text("(+1 tie, 1 both bad)")
    assert page.locator("#agreement-table").inner_text().split("pairs of this ranking")[0] in shown
    upload_and_score(page, case["prompt"], [image_path(n) for n in case["images"][:3]])
    captions(page, 3)
    page.get_by_role("button", name="Download my verdicts").click()
    links = page.locator("#verdict-files a")
    sync_api.expect(links).to_have_count(2)
    got = {}
    for k in range(2):
        with page.expect_download() as info:
            links.nth(k).click()
        target = tmp_path / info.value.suggested_filename
        info.value.save_as(target)
        got[target.suffix] = target
    lines = [json.loads(line) for line in got[".jsonl"].read_text(encoding="utf-8").splitlines()]
    assert [(p["a"], p["b"]) for p in lines] == pairs and [p["verdict"] for p in lines] == ["b", "tie", "both_bad"]
    assert all(set(p["scores"]) == {"ImageReward"} and p["prompt"] == case["prompt"] for p in lines)
    # The command line's report on the downloaded pairs says what the page showed.
    report = subprocess.run(
        [sys.executable, "-m", "imagereward", "verdicts", "report", str(got[".jsonl"]), "-f", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    for row in json.loads(report.stdout):
        assert f"<td>{row['judge']}</td>" in page.locator("#agreement-table").inner_html()
        assert f"{row['counts']} (+1 tie, 1 both bad)" in shown
    with zipfile.ZipFile(got[".zip"]) as archive:
        names = set(archive.namelist())
    assert "pairs.jsonl" in names and {f"images/{p['a_sha256']}" for p in lines} <= {n.rsplit(".", 1)[0] for n in names}
    page.context.close()


# ------------------------------------------------------------------------------------ comparing models
BENCH = Path(__file__).parent / "fixtures" / "benchmark-three"


def _images_drawn(page) -> list[int]:
    """Each picture's decoded width (0: not drawn)."""
    return page.evaluate("Array.from(document.querySelectorAll('.ir-report img')).map(i => i.naturalWidth)")


def _overflows(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth + 1")


def test_the_benchmark_report_opens_in_chromium_and_shows_its_plots(browser, tmp_path: Path, judges_root) -> None:
    """`imagereward benchmark`'s report.html, opened from disk with nothing else reachable: every plot and
    thumbnail drawn, each judge's section there, and nothing sideways on a phone."""
    from imagereward import cli

    out = tmp_path / "out"
    args = ["benchmark", "--images-dir", str(BENCH / "generations"), "--prompts", str(BENCH / "prompts.json")]
    args += ["--output-dir", str(out), "--model", str(PARITY), "--device", "cpu", "--download-root", str(judges_root)]
    assert cli.main([*args, "--judge", "BLIP", "-q"]) == 0
    for width in (1280, 390):
        context = browser.new_context(viewport={"width": width, "height": 900}, offline=True)
        page = context.new_page()
        page.goto((out / "report.html").as_uri())
        widths = _images_drawn(page)
        assert len(widths) == 6 + 3 * 4 * 2 * 2 and all(w > 0 for w in widths)  # 3 plots a judge; thumbnails
        assert page.locator("h2").all_inner_texts()[:3] == ["Rankings", "ImageReward-v1.0", "BLIP"]
        assert not _overflows(page), f"the report scrolls sideways at {width} px"
        context.close()


def test_compare_models_on_the_page_shows_the_report_and_its_files(page, tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "gens.zip"
    with zipfile.ZipFile(path, "w") as z:
        for file in sorted((BENCH / "generations").rglob("*.png")):
            z.write(file, f"{file.parent.name}/{file.name}")
        z.write(BENCH / "prompts.json", "prompts.json")
    page.locator("#compare-models button").first.click()
    page.locator("#models-zip input[type=file]").set_input_files(str(path))
    sync_api.expect(page.locator("#models-zip")).to_contain_text("gens.zip")
    page.locator("#models-btn").click()
    sync_api.expect(page.locator("#models-status")).to_contain_text("3 models, 4 prompts, 24 generations")
    sync_api.expect(page.locator("#models-report h2").first).to_have_text("Rankings")
    assert all(w > 0 for w in _images_drawn(page))
    sync_api.expect(page.locator("#models-files")).to_contain_text(re.compile(r"report\s*\.html"))
