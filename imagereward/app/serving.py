"""The page served in public: its queue guarded (`guard`) and the server launched with the HTTP guard in front
and the MCP server kept to the agents' tools (`launch`). `app.py` calls both once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any, Callable, Sequence

import gradio as gr
from gradio.utils import get_upload_folder
from starlette.middleware import Middleware

from .admission import (
    FunctionLimit,
    QueueGate,
    available_memory,
    heavy_calls,
    log_heavy_calls,
    queue_everything,
    record_sent_files,
    share_limit,
)
from .agents import Endpoints, guard_mcp
from .files import DiskMeter, Janitor, Ledger
from .host import HostGuard, Visitors, distrust_forwarded_headers
from .page import Page
from .settings import HEAVY_CALL_BYTES, MAX_UPLOAD_MB, Settings, mcp_available


def guard(
    demo: gr.Blocks,
    settings: Settings,
    visitors: Visitors,
    ledger: Ledger,
    endpoints: Endpoints,
    heavy: Sequence[Callable],
    explaining: Sequence[Callable],
    choice_inputs: Sequence[Any],
    image_inputs: Sequence[Any],
) -> int:
    """Puts every event of `demo` through the queue and its gate (`admission.QueueGate`): no direct routes, one
    limit on the heavy work of all visitors together (the page's `heavy` and `explaining` handlers and the
    agents' `endpoints`: as many calls at once as the memory left after loading holds, or
    `IMAGEREWARD_HEAVY_CALLS`), explanations one at a time per visitor, a pipeline's parallel `/score_pairs`
    calls a share of their own; each visitor's files recorded (`choice_inputs` and `image_inputs`: the page's
    inputs the gate checks, besides the endpoints'). Returns the heavy limit."""
    heavy = [*heavy, *endpoints.scoring]
    explaining = [*explaining, *endpoints.explaining]
    demo.queue(default_concurrency_limit=2, max_size=64, api_open=False)
    queue_everything(demo)
    most = settings.heavy_calls or heavy_calls(available_memory(), HEAVY_CALL_BYTES, max(2, os.cpu_count() or 2))
    share_limit(demo, [*heavy, *explaining], most)
    QueueGate(
        demo,
        settings.max_pending,
        visitors,
        choice_inputs=[*choice_inputs, *endpoints.choice_inputs],
        limits=[
            FunctionLimit("explanation", 1, tuple(explaining)),
            FunctionLimit("pair call", settings.pair_calls, tuple(endpoints.pairing), own_share=True),
        ],
        ledger=ledger,
        upload_folder=get_upload_folder(),
        image_inputs=[*image_inputs, *endpoints.image_inputs],
        max_queued_bytes=4 * settings.max_body,
    ).install()
    record_sent_files(demo, ledger, visitors)
    log_heavy_calls(demo, most)
    return most


def public_names(demo: gr.Blocks) -> tuple[list[str], list[str]]:
    """Every event's API name, and the public ones (what `/call/<name>` may name)."""
    named = [f for f in demo.fns.values() if f.api_name]
    return [f.api_name for f in named], [f.api_name for f in named if f.api_visibility == "public"]


def launch(
    demo: gr.Blocks,
    page: Page,
    settings: Settings,
    visitors: Visitors,
    ledger: Ledger,
    assets: Path,
    tools: Sequence[Callable],
) -> None:
    """Serves `demo` until stopped (Ctrl+C or SIGTERM, after which the app's files are removed): the package's
    log lines in the server's output, the janitor sweeping old files, `HostGuard` in front of Gradio, the MCP
    server (when offered) with only `tools`, the app's body limit and its sentences."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    logging.getLogger("imagereward").addHandler(handler)
    logging.getLogger("imagereward").setLevel(logging.INFO)
    # A Space stops the app with SIGTERM: exit as on Ctrl+C, so that the app's files are removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    distrust_forwarded_headers()
    Janitor(page.downloads, demo, ledger).start()
    host_guard = Middleware(
        HostGuard,
        visitors=visitors,
        ledger=ledger,
        max_body=settings.max_body,
        upload_limit=settings.max_images * MAX_UPLOAD_MB * 2**20 + 2**20,
        upload_quota=settings.upload_quota,
        disk_budget=settings.disk_budget,
        window=settings.file_lifetime,
        meter=DiskMeter(get_upload_folder()),
        names=lambda: public_names(demo),
    )

    @contextlib.asynccontextmanager
    async def mcp_as_the_page(_: Any):
        """At start-up, leaves the MCP server only the agents' tools, its body limit the app's, and its errors
        the app's sentences (`agents.guard_mcp`)."""
        if demo.mcp_server_obj is not None:
            guard_mcp(demo.mcp_server_obj, {tool.__name__ for tool in tools}, settings.max_body)
        yield

    demo.launch(
        theme=gr.themes.Soft(),
        # No `max_file_size`: Gradio drops a whole pick for one file over it; the request skips that file by name
        # (`intake.PixelBudget`), and HostGuard bounds what an upload request may send.
        css_paths=[assets / "app.css"],
        js=(assets / "app.js").read_text(encoding="utf-8"),
        app_kwargs={"middleware": [host_guard], "lifespan": mcp_as_the_page},
        mcp_server=settings.mcp and mcp_available(),
    )
