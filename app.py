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

import time
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from gradio.utils import get_upload_folder

from imagereward import formatting
from imagereward.errors import InputError
from imagereward.ranking import Ranking
from imagereward.serving import (
    PreparedRequest,
    Settings,
    api_response,
    finish_request,
    gpu_duration,
    load_for_serving,
    prepare_request,
    read_examples,
    score_prepared,
    skipped_note,
    warm_up,
)

SETTINGS = Settings.from_env()
LOADED = load_for_serving(SETTINGS)
if LOADED.model is not None and not SETTINGS.zero_gpu:
    warm_up(LOADED.model)

EXAMPLES_DIR = Path(__file__).parent / "examples"
# The only folders a request may name files in: Gradio's uploads (and cached examples), and the examples.
ALLOWED_ROOTS = [get_upload_folder(), str(EXAMPLES_DIR)]
MAX_UPLOAD = "20mb"

ABOUT = f"""
**What the score means.** ImageReward ([Xu et al., 2023](https://arxiv.org/abs/2304.05977)) predicts which
image people would prefer for a prompt, trained on 137k expert comparisons. Scores are normalised: **0 is an
average generation**, higher is better, and most scores fall between **-2 and 2**. Compare images *for the
same prompt*; a score on its own says little.

**Limits.** The model reads only the first 35 tokens of the prompt (about 25 words) and sees each image at
224x224 pixels, centre-cropped, so fine detail and the edges of wide images do not count. Up to
{SETTINGS.max_images} images per request, PNG, JPEG, WEBP, GIF, BMP or TIFF, each at most {MAX_UPLOAD.upper()}
and 89.5 million pixels.
"""


def model_banner() -> str:
    if LOADED.error:
        return f"⚠️ **No model loaded.** {LOADED.error}"
    return f"Model: **{LOADED.label}**"


def _on_device(request: PreparedRequest) -> list[Any]:
    return score_prepared(LOADED.model, request)


if SETTINGS.zero_gpu:
    _on_device = spaces.GPU(duration=gpu_duration)(_on_device)


def _rank(prompt: Any, images: Any) -> tuple[Ranking, list[str]]:
    """Checks and decodes on the CPU, scores on the device; problems become one sentence for the person."""
    try:
        if LOADED.model is None:
            raise InputError(LOADED.error or "No model is loaded.")
        request = prepare_request(
            LOADED.model, prompt, images, ALLOWED_ROOTS, SETTINGS.max_images, SETTINGS.pixel_budget
        )
        start = time.perf_counter()
        results = _on_device(request)
        return finish_request(request, results, time.perf_counter() - start)
    except InputError as e:
        raise gr.Error(str(e), print_exception=False) from None


def score_ui(prompt: str, images: list[Any] | None):
    ranking, notes = _rank(prompt, images)
    for note in skipped_note(ranking) + notes:
        gr.Warning(note)
    return (
        formatting.gallery_items(ranking),
        formatting.table_rows(ranking),
        pd.DataFrame(formatting.chart_rows(ranking)),
        formatting.status_line(ranking, LOADED.label),
    )


def score_api(prompt: str, images: list[Any] | None) -> dict[str, Any]:
    """Scores images for a prompt. Returns {"ranked": [{rank, name, score, precision}] best first,
    "skipped": [{name, reason}], "notes": [...], "model": str, "seconds": float}."""
    ranking, notes = _rank(prompt, images)
    return api_response(ranking, notes, LOADED.label)


with gr.Blocks(title="ImageReward: rank images by human preference", delete_cache=(1800, 3600)) as demo:
    gr.Markdown("# ImageReward\nRank text-to-image generations by how much people would prefer them.")
    gr.Markdown(model_banner(), elem_id="model-status")
    with gr.Row():
        with gr.Column(scale=1):
            prompt = gr.Textbox(
                label="Prompt", placeholder="the prompt the images were generated from", lines=2, elem_id="prompt"
            )
            images = gr.Gallery(
                label="Images (drop, pick or paste)",
                type="filepath",
                interactive=True,
                sources=["upload", "clipboard"],
                file_types=["image"],
                columns=4,
                height=320,
                elem_id="images",
            )
            score_btn = gr.Button("Score and rank", variant="primary", elem_id="score-btn")
        with gr.Column(scale=1):
            ranked = gr.Gallery(label="Ranked, best first", columns=4, height=320, interactive=False, elem_id="ranked")
            status = gr.Markdown(elem_id="status")
    with gr.Row():
        table = gr.Dataframe(
            headers=["rank", "image", "score", "precision"],
            datatype=["number", "str", "number", "str"],
            interactive=False,
            label="Scores",
            elem_id="table",
        )
        chart = gr.BarPlot(
            x="image",
            y="score",
            sort="-y",
            label="Scores",
            elem_id="chart",
            x_title="image",
            y_title="score",
            x_label_angle=-40,
        )
    outputs = [ranked, table, chart, status]
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

    score_btn.click(score_ui, [prompt, images], outputs, api_visibility="private")
    prompt.submit(score_ui, [prompt, images], outputs, api_visibility="private")
    api_json = gr.JSON(visible=False)
    api_trigger = gr.Button(visible=False)
    api_trigger.click(score_api, [prompt, images], api_json, api_name="score")

demo.queue(default_concurrency_limit=2, max_size=64)

if __name__ == "__main__":
    demo.launch(theme=gr.themes.Soft(), max_file_size=MAX_UPLOAD)
