"""The page's "Compare models" section: a visitor drops a zip of generations (one folder per model, the original
benchmark's layout), picks judges, and gets the benchmark's report (each model's score with its interval, the
win-rate matrix, the spread of prompts, the best and worst prompts with thumbnails) and its files. Every event
goes to the page's front door (`Page.compare_models`); `/compare_models` is the same for API clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from . import view
from .page import PRIMARY, Page


@dataclass(frozen=True)
class ModelsPanel:
    """The section's components, and what the queue's gate checks (the zip names a file; judges are choices)."""

    zip_file: gr.File
    judges: gr.CheckboxGroup
    button: gr.Button
    status: gr.Markdown
    report: gr.HTML
    files: gr.File

    @property
    def image_inputs(self) -> list[Any]:
        return [self.zip_file]

    @property
    def choice_inputs(self) -> list[Any]:
        return [self.judges]

    def wire(self, page: Page) -> Any:
        """The button's event (public as `/compare_models`); returns its function, for the heavy limit."""
        self.button.click(
            page.compare_models,
            [self.zip_file, self.judges],
            [self.status, self.report, self.files],
            api_name="compare_models",
        )
        return page.compare_models


def models_panel(page: Page) -> ModelsPanel:
    """Builds the section where it is called (collapsed until opened)."""
    with gr.Accordion("Compare models: a zip of their generations", open=False, elem_id="compare-models"):
        gr.Markdown(view.compare_models_help(page.settings.compare_images), elem_id="models-help")
        with gr.Row():
            # No file_types: a refused file would then fail Gradio's check before the page could say why.
            zip_file = gr.File(label="Generations (.zip)", type="filepath", elem_id="models-zip", height=120)
            judges = gr.CheckboxGroup(
                choices=list(page.settings.judges),
                value=[],
                label=f"Also judge with ({PRIMARY} always judges)",
                visible=bool(page.settings.judges),
                elem_id="models-judges",
            )
        button = gr.Button(
            "Compare models", variant="primary", elem_id="models-btn", interactive=page.loaded.model is not None
        )
        status = gr.Markdown(elem_id="models-status")
        report = gr.HTML(elem_id="models-report")
        files = gr.File(
            label="Take it away: the report (HTML), summary.json, summary.md, the original's result files",
            file_count="multiple",
            interactive=False,
            elem_id="models-files",
        )
    return ModelsPanel(zip_file, judges, button, status, report, files)
