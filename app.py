"""ImageReward in the browser: type a prompt, drop generations, see them ranked by predicted human preference.

Only wiring lives here; the work is done by plain functions in `imagereward.serving`,
`imagereward.ranking` and `imagereward.formatting`. Runs locally (`python app.py`) and as a Hugging Face
Space, ZeroGPU included. Settings: IMAGEREWARD_MODEL, IMAGEREWARD_DEVICE, IMAGEREWARD_DTYPE,
IMAGEREWARD_MAX_IMAGES (see README.md).
"""

from __future__ import annotations

try:  # ZeroGPU on Hugging Face Spaces (imported before torch, as it asks); a no-op decorator anywhere else
    import spaces

    gpu = spaces.GPU
except ImportError:
    spaces = None

    def gpu(fn):  # type: ignore[no-redef]
        return fn


import dataclasses  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from imagereward import formatting  # noqa: E402
from imagereward.ranking import InputError, Ranking  # noqa: E402
from imagereward.serving import Settings, load_for_serving, rank_request, read_examples, warm_up  # noqa: E402

SETTINGS = Settings.from_env()
if spaces is not None and SETTINGS.device is None:  # ZeroGPU: the model goes to the GPU at start-up
    SETTINGS = dataclasses.replace(SETTINGS, device="cuda")
LOADED = load_for_serving(SETTINGS)
if LOADED.model is not None and spaces is None:
    warm_up(LOADED.model)

EXAMPLES_DIR = Path(__file__).parent / "examples"

ABOUT = f"""
**What the score means.** ImageReward ([Xu et al., 2023](https://arxiv.org/abs/2304.05977)) predicts which
image people would prefer for a prompt, trained on 137k expert comparisons. Scores are normalised: **0 is an
average generation**, higher is better, and most scores fall between **-2 and 2**. Compare images *for the
same prompt*; a score on its own says little.

**Limits.** The model reads only the first 35 tokens of the prompt (about 25 words) and sees each image at
224x224 pixels, centre-cropped, so fine detail and the edges of wide images do not count. Up to
{SETTINGS.max_images} images per request.
"""


def model_banner() -> str:
    if LOADED.error:
        return f"⚠️ **No model loaded.** {LOADED.error}"
    return f"Model: **{LOADED.label}**"


@gpu
def _rank(prompt: str, images: list[Any] | None) -> tuple[Ranking, list[str]]:
    if LOADED.model is None:
        raise InputError(LOADED.error or "No model is loaded.")
    return rank_request(LOADED.model, prompt, images, SETTINGS.max_images)


def _rank_or_raise(prompt: str, images: list[Any] | None) -> Ranking:
    try:
        ranking, notes = _rank(prompt, images)
    except InputError as e:
        raise gr.Error(str(e), print_exception=False) from None
    for note in notes:
        gr.Warning(note)
    return ranking


def score_ui(prompt: str, images: list[Any] | None):
    ranking = _rank_or_raise(prompt, images)
    return (
        formatting.gallery_items(ranking),
        formatting.table_rows(ranking),
        pd.DataFrame(formatting.chart_rows(ranking)),
        formatting.status_line(ranking, LOADED.label),
    )


def score_api(prompt: str, images: list[Any] | None) -> list[dict[str, Any]]:
    """Scores images for a prompt; returns rows {rank, name, score}, best first."""
    return formatting.api_rows(_rank_or_raise(prompt, images))


with gr.Blocks(title="ImageReward: rank images by human preference") as demo:
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
            headers=["rank", "image", "score"],
            datatype=["number", "str", "number"],
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
        cache_examples=False,
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
    demo.launch(theme=gr.themes.Soft(), max_file_size="50mb")
