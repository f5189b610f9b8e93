"""ImageReward in the browser: type a prompt, drop generations, see them ranked by predicted human preference.

Only wiring lives here; the work is done by plain functions in `imagereward.serving` (checking, decoding,
scoring and ranking a request) and `imagereward.formatting` (what the page shows). Runs locally
(`python app.py`) and as a Hugging Face Space on any hardware: CPU, GPU, or ZeroGPU, where only the model's
work runs inside `@spaces.GPU`. Settings: IMAGEREWARD_MODEL, IMAGEREWARD_DEVICE, IMAGEREWARD_DTYPE,
IMAGEREWARD_MAX_IMAGES (see README.md).
"""

from __future__ import annotations

import os

if os.environ.get("SPACES_ZERO_GPU"):  # ZeroGPU asks for `spaces` to be imported before torch
    import spaces

from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder
from starlette.middleware import Middleware

from imagereward import formatting
from imagereward.app.admission import QueueGate, UploadGuard
from imagereward.app.files import DiskMeter, Downloads, Janitor, sweep_every
from imagereward.errors import InputError
from imagereward.judge_pool import JudgePool
from imagereward.judges import MEANINGS as JUDGE_MEANINGS
from imagereward.multiprompt import plan_prompts, rank_prompts
from imagereward.ranking import Ranking
from imagereward.serving import (
    PRIMARY,
    PreparedRequest,
    Settings,
    api_response,
    chosen_judges,
    gpu_duration,
    load_for_serving,
    read_examples,
    reordered,
    score_prepared,
    shown_rows,
    warm_up,
)

SETTINGS = Settings.from_env()
LOADED = load_for_serving(SETTINGS)
if LOADED.model is not None and not SETTINGS.zero_gpu:
    warm_up(LOADED.model)
# The judges a visitor may add (IMAGEREWARD_JUDGES), loaded on first use; on ZeroGPU all at start.
JUDGES = JudgePool(SETTINGS.judges, SETTINGS.device, SETTINGS.dtype, SETTINGS.download_root)
if SETTINGS.zero_gpu and LOADED.model is not None:
    JUDGES.preload()

EXAMPLES_DIR = Path(__file__).parent / "examples"
ASSETS = Path(__file__).parent / "assets"
# The only folders a request may name files in: Gradio's uploads (and cached examples), and the examples.
ALLOWED_ROOTS = [get_upload_folder(), str(EXAMPLES_DIR)]
MAX_UPLOAD = "20mb"
# A request's CSV, JSON and zip, written into Gradio's upload folder (served from there, not copied) and
# removed with the uploads once `file_lifetime` old.
DOWNLOADS = Downloads(get_upload_folder(), SETTINGS.file_lifetime)

ABOUT = f"""
**What the score means.** ImageReward ([Xu et al., 2023](https://arxiv.org/abs/2304.05977)) predicts which
image people would prefer for a prompt, trained on 137k expert comparisons. Scores are normalised: **0 is an
average generation**, higher is better, and most scores fall between **-2 and 2**. Compare images *for the
same prompt*; a score on its own says little.

**Limits.** The model reads only the first 35 tokens of the prompt (about 25 words) and sees each image at
224x224 pixels, centre-cropped, so fine detail and the edges of wide images do not count. Up to
{SETTINGS.max_images} images per request, PNG, JPEG, WEBP, GIF, BMP or TIFF, each at most {MAX_UPLOAD.upper()},
89.5 million pixels and 64 times as long as it is wide (or the other way round); uploads are kept
{SETTINGS.file_lifetime // 60} minutes.

**Other judges.** Tick them to see their scores and ranks beside ImageReward's, and order the gallery by any of
them; the agreement line counts the pairs of images each orders as ImageReward does. {" ".join(f"{JUDGE_MEANINGS[j]}." for j in SETTINGS.judges)}
"""


def model_banner() -> str:
    if LOADED.error:
        return "⚠️ **Scoring is unavailable right now:** the model could not be loaded. This is for the page's operator to fix."
    return f"Model: **{LOADED.label}**"


def _on_device(request: PreparedRequest) -> dict[str, Any]:
    return score_prepared(LOADED.model, request, JUDGES)


if SETTINGS.zero_gpu:
    _on_device = spaces.GPU(duration=gpu_duration)(_on_device)


def score_ui(prompt: str, images: list[Any] | None, judges: list[str] | None = None, order_by: str | None = None):
    """The page's scoring (also the examples'): problems are one sentence in a notice, and the outputs keep
    what they showed."""
    return _score_page(prompt, images, judges, order_by)[: len(outputs)]


def score_and_compare(prompt: str, images: list[Any] | None, judges: list[str] | None, order_by: str | None):
    """The button's scoring: `score_ui`, and the comparison set to #1 against #2."""
    return _score_page(prompt, images, judges, order_by)


def _rank_all(prompt_text: Any, images: Any, judges: Any) -> tuple[list[tuple[str, Ranking]], list[str]]:
    if LOADED.model is None:
        raise InputError("Scoring is unavailable: the model could not be loaded.")
    extra = chosen_judges(judges, SETTINGS.judges)
    return rank_prompts(LOADED.model, prompt_text, images, ALLOWED_ROOTS, SETTINGS, _on_device, extra, JUDGES)


def _score_page(prompt: str, images: list[Any] | None, judges: Any, order_by: Any) -> tuple:
    try:
        rankings, notes = _rank_all(prompt, images, judges)
    except InputError as e:
        gr.Warning(str(e))
        return (gr.skip(),) * (len(outputs) + 1 + len(compare_outputs))
    for note in notes:
        gr.Warning(note)
    first_prompt, ranking = rankings[0]
    judge = order_by if order_by in ranking.judges else PRIMARY
    downloads = formatting.write_downloads(rankings, LOADED.label, DOWNLOADS.new_folder())
    rows = [{"name": r.name, "score": r.score, "path": r.source} for r in ranking.ordered_by(judge)]
    if len(rankings) > 1:
        headers, cells = formatting.matrix(rankings)
        grid = gr.update(value=cells, headers=headers, visible=True)
        winner_note = f" (for the first prompt, “{first_prompt[:60]}”)"
    else:
        grid, winner_note = gr.update(visible=False), ""
    return (
        formatting.status_line_many(rankings, LOADED.label),
        ranking.ranked[0].source,
        formatting.winner_text(ranking) + winner_note,
        formatting.gallery_items(ranking, judge),
        formatting.table_value(ranking, judge),
        [str(p) for p in downloads],
        formatting.agreement_text(ranking),
        grid,
        *_first_comparison(rows),
    )


def start_compare(ranked: Any, table: Any):
    """The comparison of the ranking the page shows, at #1 against #2 (after a cached example)."""
    return _first_comparison(shown_rows(ranked, table, ALLOWED_ROOTS))


def _first_comparison(rows: list[dict[str, Any]]) -> tuple:
    names = [r["name"] for r in rows]
    if not names:
        return gr.update(choices=[], value=None), gr.update(choices=[], value=None), None, None, ""
    second = names[1] if len(names) > 1 else names[0]
    return (
        gr.update(choices=names, value=names[0]),
        gr.update(choices=names, value=second),
        *_compared(rows, names[0], second),
    )


def reorder(ranked: Any, table: Any, order_by: str | None):
    """The gallery and the table of the ranking shown, in the chosen judge's order (nothing is scored again)."""
    return reordered(ranked, table, order_by or PRIMARY, ALLOWED_ROOTS)


def compare(ranked: Any, table: Any, name_a: str | None, name_b: str | None):
    """The two chosen images side by side, and the model's preference probability between them."""
    return _compared(shown_rows(ranked, table, ALLOWED_ROOTS), name_a, name_b)


def _compared(rows: list[dict[str, Any]], name_a: str | None, name_b: str | None) -> tuple:
    by_name = {r["name"]: r for r in rows}
    if name_a not in by_name or name_b not in by_name:
        return None, None, ""
    a, b = by_name[name_a], by_name[name_b]
    return a["path"], b["path"], formatting.compare_text(name_a, a["score"], name_b, b["score"])


def score_api(prompt: str, images: list[Any] | None, judges: list[str] | None = None) -> dict[str, Any]:
    """Scores images for a prompt. Returns {"ranked": [{rank, name, score, precision}] best first,
    "skipped": [{name, reason}], "notes": [...], "model": str, "seconds": float}; with other judges (`judges`:
    any of the offered ones) each row also has "scores" and "ranks" by judge (and "choices": {"PickScore": p}
    with PickScore), and the response "judges" and "agreement" ({judge: {"same", "pairs"}}); with several prompts (one per line, or each image's own when
    the prompt is empty) that of the first, and "by_prompt": [{"prompt", ...the same keys}] for all of them."""
    try:
        rankings, notes = _rank_all(prompt, images, judges)
    except InputError as e:
        raise gr.Error(str(e), print_exception=False) from None
    response = api_response(rankings[0][1], notes, LOADED.label)
    if len(rankings) > 1:
        response["by_prompt"] = [{"prompt": p, **api_response(r, [], LOADED.label)} for p, r in rankings]
    return response


def fill_prompt(prompt: str, images: list[Any] | None):
    """Fills an empty prompt box from the prompt the dropped images carry (A1111, ComfyUI, InvokeAI, Fooocus,
    NovelAI metadata); with several different prompts, leaves it empty and says that each image will be
    ranked against its own."""
    if isinstance(prompt, str) and prompt.strip():
        return gr.skip()
    try:
        groups, _, _ = plan_prompts("", images, ALLOWED_ROOTS)
    except InputError:
        return gr.skip()
    if len(groups) == 1:
        return groups[0].prompt
    gr.Info(f"These images carry {len(groups)} different prompts: leave the prompt empty to rank each against its own.")
    return gr.skip()


with gr.Blocks(
    title="ImageReward: rank images by human preference",
    delete_cache=(sweep_every(SETTINGS.file_lifetime), SETTINGS.file_lifetime),
) as demo:
    gr.Markdown("# ImageReward\nRank text-to-image generations by how much people would prefer them.")
    gr.Markdown(model_banner(), elem_id="model-status")
    if LOADED.error:
        with gr.Accordion("Details for the operator", open=False, elem_id="operator-details"):
            gr.Markdown(LOADED.error)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            prompt = gr.Textbox(
                label="Prompt",
                placeholder="the prompt the images were generated from; one per line to compare prompts; empty: each image's own (Enter scores, Shift+Enter adds a line)",
                lines=2,
                elem_id="prompt",
            )
            images = gr.Gallery(
                label="Images (drop, pick or paste)",
                type="filepath",
                interactive=True,
                sources=["upload", "clipboard"],
                file_types=["image"],
                columns=3,
                height=300,
                object_fit="contain",
                elem_id="images",
            )
            judges_box = gr.CheckboxGroup(
                choices=list(SETTINGS.judges),
                value=[],
                label="Also judge with (ImageReward always scores)",
                info="the paper's baselines, side by side: CLIP score, BLIP score, LAION Aesthetic",
                visible=bool(SETTINGS.judges),
                elem_id="judges",
            )
            score_btn = gr.Button(
                "Score and rank", variant="primary", elem_id="score-btn", interactive=LOADED.model is not None
            )
            examples_slot = gr.Column(elem_id="examples-slot")
        with gr.Column(scale=1, min_width=300, elem_id="results"):
            status = gr.Markdown(elem_id="status")
            winner = gr.Image(label="Best", height=300, interactive=False, elem_id="winner", show_label=True)
            winner_text = gr.Markdown(elem_id="winner-text")
            order_by = gr.Radio(
                choices=[PRIMARY, *SETTINGS.judges],
                value=PRIMARY,
                label="Order the gallery and table by",
                visible=bool(SETTINGS.judges),
                elem_id="order-by",
            )
            agreement = gr.Markdown(elem_id="agreement")
            ranked = gr.Gallery(
                label="Ranked, best first",
                columns=3,
                height="auto",
                object_fit="contain",
                interactive=False,
                elem_id="ranked",
            )
    grid = gr.Dataframe(
        label="Ranks for each prompt (#rank · score)", interactive=False, visible=False, elem_id="matrix", wrap=True
    )
    table = gr.Dataframe(
        headers=["rank", "image", "score", "precision"],
        datatype=["number", "str", "number", "str"],
        interactive=False,
        label="Scores",
        elem_id="table",
    )
    downloads = gr.File(
        label="Take the results away: CSV, JSON, and the images renamed by rank",
        file_count="multiple",
        interactive=False,
        elem_id="downloads",
    )
    with gr.Group(elem_id="compare"):
        gr.Markdown("### Compare two images at full size")
        with gr.Row():
            pick_a = gr.Dropdown(label="Image A", choices=[], elem_id="pick-a")
            pick_b = gr.Dropdown(label="Image B", choices=[], elem_id="pick-b")
        with gr.Row():
            image_a = gr.Image(label="A", interactive=False, elem_id="image-a")
            image_b = gr.Image(label="B", interactive=False, elem_id="image-b")
        compare_text = gr.Markdown(elem_id="compare-text")
    # What examples may set (their cache cannot hold component updates such as the matrix's visibility).
    outputs = [status, winner, winner_text, ranked, table, downloads, agreement]
    with examples_slot:
        gr.Examples(
            read_examples(EXAMPLES_DIR),
            inputs=[prompt, images],
            outputs=outputs,
            fn=score_ui,
            run_on_click=True,
            cache_examples=True,
            cache_mode="lazy",
            elem_id="examples",
            api_visibility="private",
        )
    gr.Markdown(ABOUT, elem_id="about")

    compare_outputs = [pick_a, pick_b, image_a, image_b, compare_text]
    images.upload(fill_prompt, [prompt, images], prompt, api_visibility="private")
    score_btn.click(
        score_and_compare,
        [prompt, images, judges_box, order_by],
        [*outputs, grid, *compare_outputs],
        api_visibility="private",
    )
    order_by.input(reorder, [ranked, table, order_by], [ranked, table], api_visibility="private")
    # After a cached example (which fires no change events and cannot carry the pickers' new choices), the
    # page's script presses this hidden button to start the comparison from the ranking shown.
    compare_refresh = gr.Button("refresh comparison", elem_id="compare-refresh", elem_classes=["page-trigger"])
    compare_refresh.click(start_compare, [ranked, table], compare_outputs, api_visibility="private")
    for pick in (pick_a, pick_b):
        pick.input(compare, [ranked, table, pick_a, pick_b], [image_a, image_b, compare_text], api_visibility="private")
    api_json = gr.JSON(visible=False)
    api_trigger = gr.Button(visible=False)
    api_trigger.click(score_api, [prompt, images, judges_box], api_json, api_name="score")

demo.queue(default_concurrency_limit=2, max_size=64)
QueueGate(demo, SETTINGS.max_pending, SETTINGS.proxy_hops, choice_inputs=[judges_box, order_by]).install()

if __name__ == "__main__":
    Janitor(DOWNLOADS).start()
    upload_guard = Middleware(
        UploadGuard,
        upload_quota=SETTINGS.upload_quota,
        disk_budget=SETTINGS.disk_budget,
        window=SETTINGS.file_lifetime,
        meter=DiskMeter(get_upload_folder()),
        proxy_hops=SETTINGS.proxy_hops,
    )
    demo.launch(
        theme=gr.themes.Soft(),
        max_file_size=MAX_UPLOAD,
        css_paths=[ASSETS / "app.css"],
        js=(ASSETS / "app.js").read_text(encoding="utf-8"),
        app_kwargs={"middleware": [upload_guard]},
    )
