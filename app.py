"""ImageReward in the browser: type a prompt, drop generations, see them ranked by predicted human preference.

Only wiring lives here; the work is done by one `imagereward.app.Page` (checking, decoding, scoring and ranking
a request; what the page shows). Runs locally (`python app.py`) and as a Hugging Face Space on any hardware:
CPU, GPU, or ZeroGPU, where only the model's work runs inside `@spaces.GPU`. Settings: the `IMAGEREWARD_*`
variables (docs/app.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal

if os.environ.get("SPACES_ZERO_GPU"):  # ZeroGPU asks for `spaces` to be imported before torch
    import spaces

from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder
from starlette.middleware import Middleware

from imagereward.app import view
from imagereward.app.admission import (
    FunctionLimit,
    QueueGate,
    available_memory,
    heavy_calls,
    log_heavy_calls,
    queue_everything,
    record_sent_files,
    share_limit,
)
from imagereward.app.agents import agent_tools, guard_mcp, image_list, pairs_endpoint, prompt_list
from imagereward.app.explanations import ExplainRequest, explain_duration
from imagereward.app.files import DiskMeter, Janitor, Ledger, kept_files
from imagereward.app.host import HostGuard, Visitors, distrust_forwarded_headers
from imagereward.app.page import Page
from imagereward.app.pairs import PairCall, PairScores, pairs_duration
from imagereward.app.requests import Request, Scores, gpu_duration
from imagereward.app.settings import HEAVY_CALL_BYTES, MAX_UPLOAD_MB, Settings, mcp_available
from imagereward.errors import InputError
from imagereward.judges import primary

EXAMPLES_DIR = Path(__file__).parent / "examples"
ASSETS = Path(__file__).parent / "assets"
MAX_UPLOAD = f"{MAX_UPLOAD_MB}mb"
PRIMARY = primary().label

SETTINGS = Settings.from_env()
# The only folders a request may name files in: Gradio's uploads (and cached examples), and the examples.
PAGE = Page(SETTINGS, roots=[get_upload_folder(), str(EXAMPLES_DIR)], upload_folder=get_upload_folder())
# Who a visitor is (the socket's peer, or what the trusted proxies say), and the files each may name.
VISITORS = Visitors(SETTINGS.proxy_hops)
LEDGER = Ledger(get_upload_folder(), SETTINGS.file_lifetime, kept=lambda: kept_files(demo))


def _on_device(request: Request) -> Scores:
    return PAGE.score(request)


def _explain_on_device(request: ExplainRequest) -> list:
    return PAGE.explain_device(request)


def _pairs_on_device(calls: list[PairCall]) -> list[PairScores]:
    return PAGE.score_pairs_device(calls)


if SETTINGS.zero_gpu:
    PAGE.on_device = spaces.GPU(duration=gpu_duration)(_on_device)
    PAGE.on_explain = spaces.GPU(duration=explain_duration)(_explain_on_device)
    PAGE.on_pairs = spaces.GPU(duration=pairs_duration)(_pairs_on_device)

# For agents (MCP tools, also API endpoints) and pipelines (`/score_pairs`, batched): imagereward/app/agents.py.
score_images, compare_images, explain_image = agent_tools(PAGE)
score_pairs = pairs_endpoint(PAGE)
MCP = SETTINGS.mcp and mcp_available()


def model_banner() -> str:
    if PAGE.loaded.error:
        return "⚠️ **Scoring is unavailable right now:** the model could not be loaded. This is for the page's operator to fix."
    return f"Model: **{PAGE.loaded.label}**"


def score_ui(prompt: str, images: list[Any] | None, judges: list[str] | None = None, order_by: str | None = None):
    """The page's scoring (also the examples'): problems are one sentence in a notice, and the outputs keep
    what they showed."""
    return _score_page(prompt, images, judges, order_by)[: len(outputs)]


def score_and_compare(prompt: str, images: list[Any] | None, judges: list[str] | None, order_by: str | None):
    """The button's scoring: `score_ui`, and the comparison set to #1 against #2."""
    return _score_page(prompt, images, judges, order_by)


def _score_page(prompt: str, images: list[Any] | None, judges: Any, order_by: Any) -> tuple:
    try:
        rankings, notes = PAGE.rank(prompt, images, judges)
    except InputError as e:
        gr.Warning(str(e))
        skipped = (gr.skip(),) * (len(outputs) + 1 + len(compare_outputs))
        return skipped + judge_choices(judges, order_by) + (gr.skip(), gr.skip())  # the prompt picker, its views
    for note in notes:
        gr.Warning(note)
    page = view.shown(rankings, PAGE.loaded.label, order_by)
    # Each prompt's own view, for switching to it (the first is the one shown).
    views = {p: view.shown([(p, r)], PAGE.loaded.label, order_by) for p, r in rankings}
    pick = gr.update(choices=list(views), value=rankings[0][0], visible=len(views) > 1)
    downloads = PAGE.write_downloads(rankings, notes)
    if page.matrix is not None:
        grid = gr.update(value=page.matrix[1], headers=page.matrix[0], visible=True)
    else:
        grid = gr.update(visible=False)
    return (
        page.status,
        page.winner,
        page.winner_text,
        page.gallery,
        page.table,
        [str(p) for p in downloads],
        page.agreement,
        page.reading,
        page.prompt,
        grid,
        *_first_comparison(page.compared),
        *judge_choices(judges, order_by),
        pick,
        views,
    )


def switch_prompt(views: Any, chosen: str | None, order_by: str | None):
    """Best, the gallery, the table, what the judges read and the comparison, for one prompt of the request
    shown (nothing is scored again)."""
    if not isinstance(views, dict) or chosen not in views:
        return (gr.skip(),) * (6 + len(compare_outputs))
    shown = views[chosen]
    gallery, table_value = shown.gallery, shown.table
    if order_by and order_by != PRIMARY:
        gallery, table_value, _, _ = view.reordered(shown.gallery, _frame(shown.table), order_by, PAGE.roots)
    return (
        shown.winner,
        shown.winner_text,
        gallery,
        table_value,
        shown.reading,
        shown.prompt,
        *_first_comparison(shown.compared),
    )


def _frame(table: dict[str, Any]) -> Any:
    import pandas as pd

    return pd.DataFrame(table["data"], columns=table["headers"])


def judge_choices(judges: Any = None, order_by: Any = None) -> tuple:
    """ "Also judge with" and the order, offering only the judges not known to be unavailable (those are
    named in the box's line instead), keeping what the visitor chose among the others."""
    offered, unavailable = PAGE.judge_choices()
    chosen = [j for j in judges if j in offered] if isinstance(judges, list) else []
    return (
        gr.update(choices=offered, value=chosen, info=PAGE.judges_info(unavailable)),
        # With no other judge left, ordering has one choice: not shown.
        gr.update(
            choices=[PRIMARY, *offered], value=order_by if order_by in offered else PRIMARY, visible=bool(offered)
        ),
    )


def start_compare(ranked: Any, table: Any):
    """The comparison of the ranking the page shows, at #1 against #2 (after a cached example)."""
    return _first_comparison(view.shown_rows(ranked, table, PAGE.roots))


def _first_comparison(rows: list[dict[str, Any]]) -> tuple:
    names = [r["name"] for r in rows]
    if not names:
        return gr.update(choices=[], value=None), gr.update(choices=[], value=None), None, None, "", False, ""
    second = names[1] if len(names) > 1 else names[0]
    return (
        gr.update(choices=names, value=names[0]),
        gr.update(choices=names, value=second),
        *_compared(rows, names[0], second),
        False,  # "why" off: a new comparison shows the images as they are
        "",
    )


def reorder(ranked: Any, table: Any, order_by: str | None):
    """The gallery, the table and "Best" of the ranking shown, in the chosen judge's order (nothing is scored
    again)."""
    gallery, table_value, best, line = view.reordered(ranked, table, order_by or PRIMARY, PAGE.roots)
    return gallery, table_value, best if best is not None else gr.skip(), line or gr.skip()


def compare(ranked: Any, table: Any, name_a: str | None, name_b: str | None):
    """The two chosen images side by side, and the model's preference probability between them."""
    return _compared(view.shown_rows(ranked, table, PAGE.roots), name_a, name_b)


def _compared(rows: list[dict[str, Any]], name_a: str | None, name_b: str | None) -> tuple:
    by_name = {r["name"]: r for r in rows}
    if name_a not in by_name or name_b not in by_name:
        return None, None, ""
    a, b = by_name[name_a], by_name[name_b]
    return a["path"], b["path"], view.compare_text(name_a, a["score"], name_b, b["score"])


def why(ranked: Any, table: Any, prompt_shown: str, name_a: str | None, name_b: str | None, on: bool):
    """With the toggle on: the compared images with what drove their scores drawn over them, and the words that
    mattered (the winner's too when it is neither); off: the images as they are."""
    rows = view.shown_rows(ranked, table, PAGE.roots)
    by_name = {r["name"]: r for r in rows}
    if not rows or name_a not in by_name or name_b not in by_name:
        return (gr.skip(),) * 4
    best = max(rows, key=lambda r: r["score"])
    plain = (best["path"], by_name[name_a]["path"], by_name[name_b]["path"], "")
    if not on:
        return plain
    chosen = list({r["name"]: r for r in (by_name[name_a], by_name[name_b], best)}.values())
    try:
        explained, refused = PAGE.explain(prompt_shown, [r["path"] for r in chosen], [r["name"] for r in chosen])
    except InputError as e:
        gr.Warning(str(e))
        return plain
    for e in refused:
        gr.Warning(f"{e.name} could not be explained: {e.reason}.")
    pictures = PAGE.write_overlays(explained)
    return (
        best["path"],  # "Best" stays the picture itself; the map is drawn over A and B
        pictures.get(by_name[name_a]["path"], by_name[name_a]["path"]),
        pictures.get(by_name[name_b]["path"], by_name[name_b]["path"]),
        view.why_html([(name, explanation) for name, _, explanation in explained]),
    )


def why_after_pick(ranked: Any, table: Any, prompt_shown: str, name_a: str | None, name_b: str | None, on: bool):
    """After a new pick: the explanation of the new pair if the toggle is on (else nothing changes)."""
    if not on:
        return (gr.skip(),) * 4
    return why(ranked, table, prompt_shown, name_a, name_b, on)


def explain_api(prompt: str, image: Any) -> dict[str, Any]:
    """Why ImageReward gives one image its score for a prompt (an estimate of what drove it). Returns {"name",
    "model", "prompt", "score", "read", "unread", "tokens_read", "tokens_total", "words": [{"word", "start",
    "end", "delta"}] (each read word's effect: the score with it less the score without it), "heatmap": 14 x 14
    (per patch of the 224 crop, what raised (positive) or lowered the score), "crop_box": [left, top, right,
    bottom] of the crop in the image's pixels, "image_size": [width, height]}."""
    try:
        return PAGE.explain_api(prompt, image)
    except InputError as e:
        raise gr.Error(str(e), print_exception=False) from None


def score_api(prompt: str, images: list[Any] | None, judges: list[str] | None = None) -> dict[str, Any]:
    """Scores images for a prompt. Returns {"ranked": [rows] best first (rank, image, name, score, precision,
    model; with other judges score_<judge>, rank_<judge>, choice_PickScore, and "scores", "ranks", "choices" by
    judge), "skipped": [{name, reason}], "notes": [...], "model": str, "seconds": float}; with other judges
    (`judges`: any of the offered ones) also "judges" and "agreement" ({judge: {"same", "pairs"}}); with several
    prompts (one per line, or each image's own when the prompt is empty) that of the first, and "by_prompt":
    [{"prompt", ...the same keys}] for all of them."""
    try:
        return PAGE.api(prompt, images, judges)
    except InputError as e:
        raise gr.Error(str(e), print_exception=False) from None


def fill_prompt(prompt: str, images: list[Any] | None):
    """Fills an empty prompt box from the prompt the dropped images carry (A1111, ComfyUI, InvokeAI, Fooocus,
    NovelAI metadata); with several different prompts, leaves it empty and says that each image will be
    ranked against its own."""
    if isinstance(prompt, str) and prompt.strip():
        return gr.skip()
    prompts = PAGE.embedded_prompts(images)
    if len(prompts) == 1:
        return prompts[0]
    if prompts:
        gr.Info(
            f"These images carry {len(prompts)} different prompts: leave the prompt empty to rank each against its own."
        )
    return gr.skip()


# No `delete_cache`: `Janitor` removes the page's files once they are `file_lifetime` old (app/files.py says why).
with gr.Blocks(title="ImageReward: rank images by human preference") as demo:
    gr.Markdown("# ImageReward\nRank text-to-image generations by how much people would prefer them.")
    gr.Markdown(model_banner(), elem_id="model-status")
    if PAGE.loaded.error:
        with gr.Accordion("Details for the operator", open=False, elem_id="operator-details"):
            gr.Markdown(PAGE.loaded.error)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            prompt = gr.Textbox(
                label="Prompt",
                placeholder="the prompt the images were generated from; one per line to compare prompts; empty: each image's own (Enter scores, Shift+Enter adds a line)",
                lines=2,
                elem_id="prompt",
            )
            reading = gr.HTML(elem_id="reading")
            shown_prompt = gr.Textbox(visible=False, elem_id="shown-prompt")
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
                label=f"Also judge with ({PRIMARY} always scores)",
                info=PAGE.judges_info(),
                visible=bool(SETTINGS.judges),
                elem_id="judges",
            )
            score_btn = gr.Button(
                "Score and rank", variant="primary", elem_id="score-btn", interactive=PAGE.loaded.model is not None
            )
            examples_slot = gr.Column(elem_id="examples-slot")
        with gr.Column(scale=1, min_width=300, elem_id="results"):
            status = gr.Markdown(elem_id="status")
            prompt_pick = gr.Dropdown(
                label="Show the ranking for", choices=[], visible=False, elem_id="prompt-pick", interactive=True
            )
            views = gr.State({})  # each prompt's view of the request shown (view.Shown)
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
        headers=view.TABLE_COLUMNS,
        datatype=["number", "str", "number", "str"],
        interactive=False,
        label="Scores",
        wrap=True,  # a phone's narrow columns wrap their text instead of cutting it off
        elem_id="table",
    )
    downloads = gr.File(
        label="Take the results away: CSV, JSON, and the images renamed by rank",
        file_count="multiple",
        interactive=False,
        elem_id="downloads",
    )
    # The id on a Column: Gradio writes a Group's elem_id on two nested elements.
    with gr.Column(elem_id="compare"), gr.Group():
        gr.Markdown("### Compare two images at full size")
        with gr.Row():
            pick_a = gr.Dropdown(label="Image A", choices=[], elem_id="pick-a")
            pick_b = gr.Dropdown(label="Image B", choices=[], elem_id="pick-b")
        with gr.Row():
            image_a = gr.Image(label="A", interactive=False, elem_id="image-a", min_width=300)
            image_b = gr.Image(label="B", interactive=False, elem_id="image-b", min_width=300)
        compare_text = gr.Markdown(elem_id="compare-text")
        why_toggle = gr.Checkbox(
            label="Why these scores: what the model read, which words mattered, where it looked (an estimate)",
            value=False,
            elem_id="why-toggle",
        )
        why_box = gr.HTML(elem_id="why")
    # What examples may set (their cache cannot hold component updates such as the matrix's visibility).
    outputs = [status, winner, winner_text, ranked, table, downloads, agreement, reading, shown_prompt]
    # Examples only when there is a model to score them (without one, caching an example's refusal broke the page).
    if PAGE.loaded.model is not None:
        with examples_slot:
            gr.Examples(
                view.read_examples(EXAMPLES_DIR),
                inputs=[prompt, images],
                outputs=outputs,
                fn=score_ui,
                run_on_click=True,
                cache_examples=True,
                cache_mode="lazy",
                elem_id="examples",
                api_visibility="private",
            )
    gr.Markdown(PAGE.about(MAX_UPLOAD), elem_id="about")

    compare_outputs = [pick_a, pick_b, image_a, image_b, compare_text, why_toggle, why_box]
    images.upload(fill_prompt, [prompt, images], prompt, api_visibility="private")
    score_btn.click(
        score_and_compare,
        [prompt, images, judges_box, order_by],
        [*outputs, grid, *compare_outputs, judges_box, order_by, prompt_pick, views],
        api_visibility="private",
    )
    prompt_pick.input(
        switch_prompt,
        [views, prompt_pick, order_by],
        [winner, winner_text, ranked, table, reading, shown_prompt, *compare_outputs],
        api_visibility="private",
    )
    demo.load(judge_choices, None, [judges_box, order_by], api_visibility="private")
    order_by.input(reorder, [ranked, table, order_by], [ranked, table, winner, winner_text], api_visibility="private")
    # After a cached example (which fires no change events and cannot carry the pickers' new choices), the
    # page's script presses this hidden button to start the comparison from the ranking shown.
    compare_refresh = gr.Button("refresh comparison", elem_id="compare-refresh", elem_classes=["page-trigger"])
    compare_refresh.click(start_compare, [ranked, table], compare_outputs, api_visibility="private")
    why_inputs = [ranked, table, shown_prompt, pick_a, pick_b, why_toggle]
    why_outputs = [winner, image_a, image_b, why_box]
    for pick in (pick_a, pick_b):
        pick.input(
            compare, [ranked, table, pick_a, pick_b], [image_a, image_b, compare_text], api_visibility="private"
        ).then(why_after_pick, why_inputs, why_outputs, api_visibility="private")
    why_toggle.input(why, why_inputs, why_outputs, api_visibility="private")
    api_json = gr.JSON(visible=False)
    api_trigger = gr.Button(visible=False)
    api_trigger.click(score_api, [prompt, images, judges_box], api_json, api_name="score")
    explain_file = gr.File(label="image", visible=False, type="filepath", file_types=["image"])
    explain_json = gr.JSON(visible=False)
    explain_trigger = gr.Button(visible=False)
    explain_trigger.click(explain_api, [prompt, explain_file], explain_json, api_name="explain")
    # The agents' and pipelines' endpoints: hidden inputs taking text (URLs, base64) and lists, JSON text out.
    with gr.Column(visible=False):
        tool_prompt, tool_images = gr.Textbox(), image_list()
        tool_a, tool_b, tool_image = gr.Textbox(), gr.Textbox(), gr.Textbox()
        tool_judges = gr.CheckboxGroup(choices=list(SETTINGS.judges), value=[])
        tool_out = gr.Textbox()
        pair_prompts, pair_images = prompt_list(), image_list()
        pair_judges = gr.CheckboxGroup(choices=list(SETTINGS.judges), value=[])
        pair_out = gr.JSON()
        tool_trigger = gr.Button()
    tool_trigger.click(score_images, [tool_prompt, tool_images, tool_judges], tool_out, api_name="score_images")
    tool_trigger.click(compare_images, [tool_prompt, tool_a, tool_b], tool_out, api_name="compare_images")
    tool_trigger.click(explain_image, [tool_prompt, tool_image], tool_out, api_name="explain_image")
    tool_trigger.click(
        score_pairs,
        [pair_prompts, pair_images, pair_judges],
        pair_out,
        api_name="score_pairs",
        batch=True,
        max_batch_size=SETTINGS.pairs_batch,
    )

# No direct routes (`/run/`, `/api/`): every call goes through the queue, and so through the gate.
demo.queue(default_concurrency_limit=2, max_size=64, api_open=False)
queue_everything(demo)
# The heavy work of all visitors together: as many calls at once as the memory left after loading holds.
HEAVY = (score_ui, score_and_compare, score_api, score_images, compare_images, score_pairs)
HEAVY += (why, why_after_pick, explain_api, explain_image)  # the explanations
HEAVY_CALLS = SETTINGS.heavy_calls or heavy_calls(available_memory(), HEAVY_CALL_BYTES, max(2, os.cpu_count() or 2))
share_limit(demo, HEAVY, HEAVY_CALLS)
# Explanations (a backward pass each) one at a time per visitor, whichever way they are asked for; a
# pipeline's parallel `/score_pairs` calls get a share of their own (they are batched together).
explaining = FunctionLimit("explanation", 1, (why, why_after_pick, explain_api, explain_image))
pairing = FunctionLimit("pair call", SETTINGS.pair_calls, (score_pairs,), own_share=True)
QueueGate(
    demo,
    SETTINGS.max_pending,
    VISITORS,
    choice_inputs=[judges_box, order_by, tool_judges, pair_judges],
    limits=[explaining, pairing],
    ledger=LEDGER,
    upload_folder=get_upload_folder(),
    image_inputs=[images, explain_file, tool_images, tool_a, tool_b, tool_image, pair_images],
    max_queued_bytes=4 * SETTINGS.max_body,
).install()
record_sent_files(demo, LEDGER, VISITORS)
log_heavy_calls(demo, HEAVY_CALLS)


@contextlib.asynccontextmanager
async def mcp_as_the_page(_: Any):
    """At start-up, leaves the MCP server only the agents' tools, its body limit the app's, and its errors the
    app's sentences (`agents.guard_mcp`)."""
    server = demo.mcp_server_obj
    if server is not None:
        tools = {score_images.__name__, compare_images.__name__, explain_image.__name__}
        guard_mcp(server, tools, SETTINGS.max_body)
    yield


def public_names() -> tuple[list[str], list[str]]:
    """Every event's API name, and the public ones (what `/call/<name>` may name)."""
    named = [f for f in demo.fns.values() if f.api_name]
    return [f.api_name for f in named], [f.api_name for f in named if f.api_visibility == "public"]


if __name__ == "__main__":
    # The package's own log lines (the model's loading, the heavy calls, the sweeper) in the server's output.
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    logging.getLogger("imagereward").addHandler(_handler)
    logging.getLogger("imagereward").setLevel(logging.INFO)
    # A Space stops the app with SIGTERM: exit as on Ctrl+C, so that the app's files are removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    distrust_forwarded_headers()
    Janitor(PAGE.downloads, demo, LEDGER).start()
    host_guard = Middleware(
        HostGuard,
        visitors=VISITORS,
        ledger=LEDGER,
        max_body=SETTINGS.max_body,
        upload_limit=SETTINGS.max_images * MAX_UPLOAD_MB * 2**20 + 2**20,
        upload_quota=SETTINGS.upload_quota,
        disk_budget=SETTINGS.disk_budget,
        window=SETTINGS.file_lifetime,
        meter=DiskMeter(get_upload_folder()),
        names=public_names,
    )
    demo.launch(
        theme=gr.themes.Soft(),
        # No `max_file_size`: Gradio drops a whole pick for one file over it; the request skips that file by name
        # (`requests.PixelBudget`), and HostGuard bounds what an upload request may send.
        css_paths=[ASSETS / "app.css"],
        js=(ASSETS / "app.js").read_text(encoding="utf-8"),
        app_kwargs={"middleware": [host_guard], "lifespan": mcp_as_the_page},
        mcp_server=MCP,
    )
