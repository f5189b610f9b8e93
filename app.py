"""ImageReward in the browser: type a prompt, drop generations, see them ranked by predicted human preference.

Only wiring lives here: one `imagereward.app.Page` does the work of every event (its method returns what the event
shows); `imagereward.app.serving` guards the queue and launches. Runs locally (`python app.py`) and as a Space on
CPU, GPU or ZeroGPU (the page's device functions run in `spaces.GPU`). Settings: `IMAGEREWARD_*` (docs/app.md).
"""

from __future__ import annotations

import os

if os.environ.get("SPACES_ZERO_GPU"):  # ZeroGPU asks for `spaces` to be imported before torch
    import spaces  # noqa: F401

from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from imagereward.app import serving, view
from imagereward.app.agents import wire_endpoints
from imagereward.app.files import Ledger, kept_files
from imagereward.app.host import Visitors
from imagereward.app.models_panel import models_panel
from imagereward.app.page import PRIMARY, Page
from imagereward.app.settings import Settings
from imagereward.app.verdict_panel import verdict_panel, wire_verdict_api

EXAMPLES_DIR = Path(__file__).parent / "examples"
ASSETS = Path(__file__).parent / "assets"

SETTINGS = Settings.from_env()
# Who a visitor is (the socket's peer, or what the trusted proxies say), and the files each may name.
VISITORS = Visitors(SETTINGS.proxy_hops)
# The only folders a request may name files in: Gradio's uploads (and cached examples), and the examples.
PAGE = Page(SETTINGS, [get_upload_folder(), str(EXAMPLES_DIR)], get_upload_folder(), visitors=VISITORS)
LEDGER = Ledger(get_upload_folder(), SETTINGS.file_lifetime, kept=lambda: kept_files(demo))
private = {"api_visibility": "private"}

# No `delete_cache`: `Janitor` removes the page's files once they are `file_lifetime` old (app/files.py says why).
with gr.Blocks(title="ImageReward: rank images by human preference") as demo:
    gr.Markdown("# ImageReward\nRank text-to-image generations by how much people would prefer them.")
    gr.Markdown(PAGE.banner(), elem_id="model-status")
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
                info=view.judges_info(SETTINGS.judges),
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
    # A phone's narrow columns wrap their text instead of cutting it off.
    table = gr.Dataframe(
        headers=view.TABLE_COLUMNS,
        datatype=["number", "str", "number", "str"],
        interactive=False,
        label="Scores",
        wrap=True,
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
        why_toggle = gr.Checkbox(label=view.WHY_LABEL, value=False, elem_id="why-toggle")
        why_box = gr.HTML(elem_id="why")
        panel = verdict_panel(PAGE)  # a person's verdict beside the model's, and how often each judge agrees
    # What examples may set (their cache cannot hold component updates such as the matrix's visibility).
    outputs = [status, winner, winner_text, ranked, table, downloads, agreement, reading, shown_prompt]
    # Examples only when there is a model to score them (without one, caching an example's refusal broke the page).
    if PAGE.loaded.model is not None:
        with examples_slot:
            gr.Examples(
                view.read_examples(EXAMPLES_DIR),
                inputs=[prompt, images],
                outputs=outputs,
                fn=PAGE.score_example,
                run_on_click=True,
                cache_examples=True,
                cache_mode="lazy",
                elem_id="examples",
                api_visibility="private",
            )
    models = models_panel(PAGE)  # "Compare models": a zip of generations, the benchmark's report
    gr.Markdown(PAGE.about(), elem_id="about")

    compare_outputs = [pick_a, pick_b, image_a, image_b, compare_text, why_toggle, why_box]
    images.upload(PAGE.fill_prompt, [prompt, images], prompt, api_name="fill_prompt", **private)
    score_btn.click(
        PAGE.score,
        [prompt, images, judges_box, order_by],
        [*outputs, grid, *compare_outputs, judges_box, order_by, prompt_pick, views],
        api_name="score_and_compare",
        **private,
    )
    switched = [winner, winner_text, ranked, table, reading, shown_prompt, *compare_outputs]
    prompt_pick.input(PAGE.switch_prompt, [views, prompt_pick, order_by], switched, api_name="switch_prompt", **private)
    demo.load(PAGE.judge_choices, None, [judges_box, order_by], api_name="judge_choices", **private)
    reordered = [ranked, table, winner, winner_text]
    order_by.input(PAGE.reorder, [ranked, table, order_by], reordered, api_name="reorder", **private)
    # After a cached example (which fires no change events and cannot carry the pickers' new choices), the
    # page's script presses this hidden button to start the comparison from the ranking shown.
    compare_refresh = gr.Button("refresh comparison", elem_id="compare-refresh", elem_classes=["page-trigger"])
    compare_refresh.click(PAGE.start_compare, [ranked, table], compare_outputs, api_name="start_compare", **private)
    why_inputs = [ranked, table, shown_prompt, pick_a, pick_b, why_toggle]
    why_outputs = [winner, image_a, image_b, why_box]
    picked, compared = [ranked, table, pick_a, pick_b], [image_a, image_b, compare_text]
    for pick in (pick_a, pick_b):
        pick.input(PAGE.compare, picked, compared, api_name="compare", **private).then(
            PAGE.why_after_pick, why_inputs, why_outputs, api_name="why_after_pick", **private
        )
    why_toggle.input(PAGE.why, why_inputs, why_outputs, api_name="why", **private)
    panel.wire(demo, PAGE, [ranked, table, shown_prompt, pick_a, pick_b], compare_outputs, views)
    api_trigger, explain_trigger = gr.Button(visible=False), gr.Button(visible=False)
    api_trigger.click(PAGE.score_api, [prompt, images, judges_box], gr.JSON(visible=False), api_name="score")
    explain_file = gr.File(label="image", visible=False, type="filepath", file_types=["image"])
    explain_trigger.click(PAGE.explain_endpoint, [prompt, explain_file], gr.JSON(visible=False), api_name="explain")
    # The agents' and pipelines' endpoints: hidden inputs taking text (URLs, base64) and lists, JSON text out.
    endpoints, verdicts, comparing = wire_endpoints(PAGE), wire_verdict_api(PAGE), models.wire(PAGE)

serving.guard(
    demo,
    SETTINGS,
    VISITORS,
    LEDGER,
    endpoints,
    heavy=[PAGE.score_example, PAGE.score, PAGE.score_api, verdicts.function, comparing],
    explaining=[PAGE.why, PAGE.why_after_pick, PAGE.explain_endpoint],
    choice_inputs=[judges_box, order_by, *verdicts.choice_inputs, *models.choice_inputs],
    image_inputs=[images, explain_file, *verdicts.image_inputs, *models.image_inputs],
)

if __name__ == "__main__":
    serving.launch(demo, PAGE, SETTINGS, VISITORS, LEDGER, ASSETS, endpoints.tools)
