"""The comparison's verdict panel: a person's verdict beside the model's ("I prefer A", "I prefer B", "Tie", "Both
bad"; keys A / B / T / X or the arrows, `assets/app.js`), how often each judge agrees with them, and their
verdicts to take away. The verdicts live in the visitor's browser (`gr.BrowserState`), and in the server's store
only when its operator keeps one; every event goes to the page's front door (`Page.verdict`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import gradio as gr

from . import view
from .page import Page

PRIVATE = {"api_visibility": "private"}


@dataclass
class VerdictPanel:
    """The panel's components (built inside the comparison by `verdict_panel`)."""

    buttons: dict[str, gr.Button]
    line: gr.Markdown
    table: gr.HTML
    download: gr.Button
    clear: gr.Button
    files: gr.File
    given: gr.BrowserState

    def wire(
        self, demo: gr.Blocks, page: Page, shown: Sequence[Any], compare_outputs: Sequence[Any], views: Any
    ) -> None:
        """The panel's events: `shown` the ranking shown (gallery, table, the prompt shown, A's and B's names),
        `compare_outputs` the comparison a verdict moves on (`Page.verdict`'s order), `views` the request shown
        (its downloads say which images have verdicts); a returning visitor's agreement shown when the page
        loads."""
        outputs = [self.given, self.table, self.line, *compare_outputs]
        for choice, button in self.buttons.items():
            chosen = gr.Textbox(choice, visible=False)
            # light work (no model): more at once than the page's default of two, each visitor still at most four
            button.click(
                page.verdict,
                [chosen, self.given, *shown, views],
                outputs,
                api_name="verdict_on_page",
                concurrency_limit=8,
                concurrency_id="verdicts",
                **PRIVATE,
            )
        ranking = list(shown[:2])
        self.download.click(page.verdict_downloads, [self.given, *ranking], self.files, **PRIVATE)
        self.clear.click(page.forget_verdicts, None, [self.given, self.table, self.line], **PRIVATE)
        demo.load(page.verdicts_shown, self.given, self.table, **PRIVATE)


def verdict_panel(page: Page) -> VerdictPanel:
    """Builds the panel where it is called (inside the comparison), and shows a returning visitor's agreement."""
    gr.Markdown(view.collection_note(page.settings.verdicts_db), elem_id="verdict-note")
    with gr.Row(elem_id="verdict-buttons"):
        buttons = {v: gr.Button(label, elem_id=f"verdict-{v}", size="sm") for v, label in view.VERDICT_BUTTONS}
    line, table = gr.Markdown(elem_id="verdict-line"), gr.HTML(elem_id="agreement-table")
    with gr.Row():
        download, clear = gr.Button("Download my verdicts", size="sm"), gr.Button("Clear my verdicts", size="sm")
    files = gr.File(
        label="Your verdicts: preference pairs (JSONL), and a zip with the images",
        file_count="multiple",
        interactive=False,
        height=120,
        elem_id="verdict-files",
    )
    given = gr.BrowserState([], storage_key="imagereward-verdicts")  # the visitor's verdicts, in their browser
    return VerdictPanel(buttons, line, table, download, clear, files, given)


@dataclass(frozen=True)
class VerdictAPI:
    """`/verdict` as wired: its function, and its inputs that take images and choices (for the queue's gate)."""

    function: Any
    image_inputs: list[Any]
    choice_inputs: list[Any]


def wire_verdict_api(page: Page) -> VerdictAPI:
    """`/verdict` (`Page.verdict_api`), on hidden inputs: the prompt, A and B as files (as `/explain` takes its
    image), the verdict, the judges, the caller's earlier pairs; JSON out."""
    with gr.Column(visible=False):
        prompt, verdict = gr.Textbox(), gr.Textbox()
        image_a, image_b = (gr.File(label=f"image {x}", type="filepath", file_types=["image"]) for x in "ab")
        judges = gr.CheckboxGroup(choices=list(page.settings.judges), value=[])
        earlier, out, trigger = gr.JSON(), gr.JSON(), gr.Button()
    trigger.click(page.verdict_api, [prompt, image_a, image_b, verdict, judges, earlier], out, api_name="verdict")
    return VerdictAPI(page.verdict_api, [image_a, image_b], [judges])
