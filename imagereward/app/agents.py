"""The page for agents and pipelines: the MCP tools (`score_images`, `compare_images`, `explain_image`) and the
`/score_pairs` endpoint, as functions Gradio serves; their docstrings are what an agent reads (Gradio makes
the MCP tool descriptions from them: the description, then one `name: description` line per argument).

Every one goes through the page's front door (`Page.api`, `Page.explain_api`, `Page.score_pairs`): the same
checks, limits and scoring as `/score`, with images sent as URLs or base64 data, received first (`remote`).
The tools' JSON is shaped here (`agent_scores`, `agent_compare`, `agent_explain`); it holds no server paths.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from ..errors import ImageLoadError, InputError
from ..images.reading import FORMATS_TEXT
from ..ranking import unique_names
from .page import Page
from .remote import NOT_SENT
from .scoring import too_many_images
from .view import preference_probability

IMAGES_HELP = (
    f"each image an https URL (fetched by the server, at most 20 MB, {FORMATS_TEXT}) or base64 "
    "data (data:image/png;base64,... or the bare base64 of the file)"
)


def json_list(description: str) -> gr.JSON:
    """A hidden input taking a JSON list of strings, with that schema (and `description`) for API and MCP
    clients (a plain `gr.JSON` says "any valid json"). The instance's `api_info` is replaced: a subclass of a
    Gradio component would make Gradio write a type stub beside this module."""
    box = gr.JSON(visible=False)
    box.api_info = lambda: {"type": "array", "items": {"type": "string"}, "description": description}  # type: ignore[method-assign]
    return box


def image_list() -> gr.JSON:
    return json_list(IMAGES_HELP)


def prompt_list() -> gr.JSON:
    return json_list("one prompt per image")


def _answer(work: Callable[[], dict[str, Any]]) -> str:
    try:
        return json.dumps(work(), ensure_ascii=False)
    except InputError as e:
        raise gr.Error(str(e), print_exception=False) from None


# ----------------------------------------------------------------------------- the tools' answers
def received(page: Page, images: Any) -> tuple[Any, list[tuple[str, Path]], list[ImageLoadError]]:
    """An agent's images (URLs or base64 data, see `remote`) on disk: (the receipt, to close when done;
    [(name, path)] of those received; the refused, named), in the order sent.

    Raises:
        InputError: `images` is not a list of at least one image.
    """
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list) or not images:
        raise InputError(f"Send `images` as a list of at least one image: {NOT_SENT.split('; ', 1)[1]}.")
    images = images[: page.settings.max_images]
    receipt = page.receiver.receive(images)
    got, refused = [], []
    for k, item in enumerate(images):
        if k in receipt.files:
            got.append((receipt.files[k].name, Path(receipt.files[k].path)))
        else:  # refused, or not a URL or data at all (a server path)
            refused.append(receipt.refused.get(k) or ImageLoadError(f"image {k + 1}", NOT_SENT))
    return receipt, got, refused


def agent_scores(page: Page, prompt: Any, images: Any, judges: Any = None) -> dict[str, Any]:
    """The MCP tool `score_images`: `/score`'s answer for images sent as URLs or data; the images that
    could not be received are in `skipped` (first), with the reason.

    Raises:
        InputError: as `api`, or `images` is not a list.
    """
    return _agent_scores(page, prompt, images, judges)[0]


def _agent_scores(page: Page, prompt: Any, images: Any, judges: Any) -> tuple[dict[str, Any], list[str]]:
    """`agent_scores`, and the names the received images go by, in the order sent."""
    receipt, got, refused = received(page, images)
    with receipt:
        skipped = [{"name": e.name, "reason": e.reason} for e in refused]
        if not got:
            raise InputError(
                "None of the images could be received: " + "; ".join(f"{s['name']}: {s['reason']}" for s in skipped)
            )
        response = page.api(prompt, [str(path) for _, path in got], judges or [])
    response["skipped"] = skipped + response["skipped"]
    if isinstance(images, list) and len(images) > page.settings.max_images:  # cut before the request saw them
        response["notes"] = [too_many_images(len(images), page.settings.max_images), *response["notes"]]
    return response, unique_names([path.name for _, path in got])


def agent_compare(page: Page, prompt: Any, image_a: Any, image_b: Any) -> dict[str, Any]:
    """The MCP tool `compare_images`: both scores and P(people prefer A to B) (`preference_probability`).

    Raises:
        InputError: no prompt, or A or B could not be received or scored (named, with the reason).
    """
    response, names = _agent_scores(page, prompt, [image_a, image_b], None)
    rows = {row["image"]: row for row in response["ranked"]}
    if len(names) != 2 or any(n not in rows for n in names):
        why = "; ".join(f"{s['name']}: {s['reason']}" for s in response["skipped"])
        raise InputError(f"Both images are needed to compare them: {why}.")
    a, b = rows[names[0]], rows[names[1]]
    p = preference_probability(a["score"], b["score"])
    return {
        "prompt": a["prompt"],
        "a": {"image": a["image"], "score": a["score"], "precision": a["precision"]},
        "b": {"image": b["image"], "score": b["score"], "precision": b["precision"]},
        "p_a_preferred": p,
        "preferred": "tie" if a["score"] == b["score"] else "a" if p > 0.5 else "b",
        "model": response["model"],
        "notes": response["notes"],
        "prompt_read": response.get("prompt_read", {}),
    }


def agent_explain(page: Page, prompt: Any, image: Any) -> dict[str, Any]:
    """The MCP tool `explain_image`: `/explain`'s answer for an image sent as a URL or data.

    Raises:
        InputError: as `explain_api`, or the image could not be received.
    """
    receipt, got, refused = received(page, [image])
    with receipt:
        if refused:
            raise InputError(f"{refused[0].name} could not be explained: {refused[0].reason}.")
        answer = page.explain_api(prompt, str(got[0][1]))
    answer["name"] = got[0][0]
    return answer


# ---------------------------------------------------------------------------- as Gradio serves them
def agent_tools(page: Page) -> tuple[Callable[..., str], Callable[..., str], Callable[..., str]]:
    """The three MCP tools, bound to `page`."""
    limit = page.settings.max_images

    def score_images(prompt: str, images: list[str], judges: list[str] | None = None) -> str:
        """Rank text-to-image generations by predicted human preference with ImageReward (Xu et al. 2023, trained on 137k expert comparisons; 65% agreement with people on which of two images is better). Use it to pick the best of several images generated for one prompt. Scores are normalised: 0 is an average generation, higher is better, most lie between -2 and 2; compare scores only between images of the same prompt. The model reads only the first 35 tokens of the prompt (about 25 words; prompt_read says what it read) and sees each image as a 224 x 224 centre crop.

        Args:
            prompt: the text prompt the images were generated for (one prompt; English works best).
            images: the images to rank, at most 32 (more are cut, with a note): each an https URL or base64 data (data:image/png;base64,...); FORMATS, at most 20 MB each; base64 images together at most 48 MB a call (send more as URLs).
            judges: optional other judges to score with as well, any of JUDGES; ImageReward always ranks.

        Returns:
            JSON text: {"ranked": [{"rank", "image", "score", "precision", "model", ...}] best first (each image named by its URL's file name, or "image N" for the N-th image sent as base64 data), "skipped": [{"name", "reason"}] for images that could not be fetched or read, "notes": [sentences], "prompt_read": {judge: {"read", "unread", ...}}, "model", "seconds"}.
        """
        return _answer(lambda: agent_scores(page, prompt, images, judges))

    def compare_images(prompt: str, image_a: str, image_b: str) -> str:
        """Compare two text-to-image generations for one prompt with ImageReward: both scores, and the probability that people prefer A to B, sigmoid(1.0333 x (score A - score B)) (the pairwise model ImageReward was trained with). Scores are normalised: 0 is an average generation, higher is better. The model reads only the first 35 tokens of the prompt and sees each image as a 224 x 224 centre crop.

        Args:
            prompt: the text prompt both images were generated for.
            image_a: image A: an https URL or base64 data (data:image/png;base64,...); FORMATS, at most 20 MB.
            image_b: image B, as image A.

        Returns:
            JSON text: {"a": {"image", "score", "precision"}, "b": {...}, "p_a_preferred": probability in [0, 1], "preferred": "a", "b", or "tie" (equal scores), "prompt", "model", "notes", "prompt_read"}.
        """
        return _answer(lambda: agent_compare(page, prompt, image_a, image_b))

    def explain_image(prompt: str, image: str) -> str:
        """Explain why ImageReward gives one image its score for a prompt (an estimate of what drove the score, not a proof): what the model read of the prompt (35 tokens at most; the rest never counted), each read word's effect (the score with the word minus the score without it), and a 14 x 14 map over the 224 x 224 centre crop the model sees (positive: those pixels raised the score). Slower than scoring (a few seconds): explain the images you need to.

        Args:
            prompt: the text prompt the image was generated for.
            image: the image: an https URL or base64 data (data:image/png;base64,...); FORMATS, at most 20 MB.

        Returns:
            JSON text: {"name", "score", "read", "unread", "tokens_read", "tokens_total", "words": [{"word", "start", "end", "delta", "partial"}], "heatmap": 14 rows of 14 numbers, top to bottom, "crop_box": [left, top, right, bottom] in the image's pixels, "image_size": [width, height], "model"}.
        """
        return _answer(lambda: agent_explain(page, prompt, image))

    judges = ", ".join(page.settings.judges) or "none (none is offered here)"
    for tool in (score_images, compare_images, explain_image):  # the limits, formats and judges from their one place
        text = (tool.__doc__ or "").replace("at most 32", f"at most {limit}").replace("FORMATS", FORMATS_TEXT)
        tool.__doc__ = text.replace("JUDGES", judges)
    return score_images, compare_images, explain_image


def pairs_endpoint(page: Page) -> Callable[..., list[list[dict[str, Any]]]]:
    """`/score_pairs`, bound to `page`, for Gradio's batching (`batch=True`): lists of calls' inputs in, a list
    of their answers out."""

    def score_pairs(
        prompts: list[list[str]], images: list[list[Any]], judges: list[list[str] | None]
    ) -> list[list[dict[str, Any]]]:
        """Scores (prompt, image) pairs, each image with its own prompt, as a fine-tuning pipeline sends them. Returns {"rows": one per pair in input order (prompt, image, score, precision, model, score_<judge>, error: why that pair could not be scored, else null), "model", "seconds"}; a call refused whole answers {"error", "rows": []}."""
        return [page.score_pairs(prompts, images, judges)]

    return score_pairs


# What an agent reads when it connects (the MCP `instructions`): when to use which tool.
INSTRUCTIONS = (
    "ImageReward scores how much people would prefer a text-to-image generation for its prompt (0 is an average "
    "generation, higher is better; compare scores only within one prompt). Use score_images to rank several "
    "generations of one prompt, compare_images for two (with the probability that people prefer A), and "
    "explain_image to see what drove one score (slower). Send images as https URLs or base64 data; results name "
    "each image by its URL's file name, or 'image N' for the N-th image sent as data."
)
# What an agent is told of a refusal: an excerpt at most this long.
MCP_ERROR_CHARS = 300


def guard_mcp(server: Any, tools: set[str], max_body: int) -> None:
    """Gradio's MCP server (`demo.mcp_server_obj`, at start-up) as a public page needs it: only `tools` listed
    or callable (Gradio would make every API endpoint a tool); requests up to `max_body` bytes (the MCP
    package's own cap, 4 MiB, is below what the tools promise); a refusal of the app's (429, 422, 413) told as
    the app's sentence, not as the loopback call's HTTP error with an internal URL; every error cut to
    `MCP_ERROR_CHARS` characters (a validation error would echo a 100 kB argument whole)."""
    from mcp import types

    server.mcp_server.instructions = INSTRUCTIONS
    server.tool_to_endpoint = {
        name: endpoint for name, endpoint in server.tool_to_endpoint.items() if endpoint.lstrip("/") in tools
    }
    server.manager.max_request_body_size = max_body
    server.manager.asgi_app.max_body_size = max_body
    for name in ("_execute_tool_without_progress", "_execute_tool_with_progress"):
        setattr(server, name, _told_plainly(getattr(server, name)))
    handlers = server.mcp_server.request_handlers
    handlers[types.CallToolRequest] = _cut_errors(handlers[types.CallToolRequest])


def app_sentence(error: BaseException) -> str:
    """What the app said when the MCP server's loopback call was refused: the answer's `detail` (a sentence,
    or Gradio's validation list), else the error's own text."""
    import httpx

    if isinstance(error, httpx.HTTPStatusError):
        try:
            detail = error.response.json().get("detail")
        except (ValueError, AttributeError):
            detail = None
        if isinstance(detail, list):
            detail = "; ".join(str(d.get("message", d)) if isinstance(d, dict) else str(d) for d in detail)
        if detail:
            return str(detail)
        return f"the call was refused (HTTP {error.response.status_code})"
    return str(error)


def excerpt(text: str, most: int = MCP_ERROR_CHARS) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _told_plainly(execute: Callable) -> Callable:
    async def told(*args: Any, **kwargs: Any) -> Any:
        try:
            return await execute(*args, **kwargs)
        except Exception as e:  # the MCP server makes any exception the tool's error text
            raise RuntimeError(excerpt(app_sentence(e))) from None

    return told


def _cut_errors(handler: Callable) -> Callable:
    async def cut(request: Any) -> Any:
        result = await handler(request)
        inner = getattr(result, "root", None)
        if getattr(inner, "isError", False):
            for block in inner.content:
                if getattr(block, "type", None) == "text":
                    block.text = excerpt(block.text)
        return result

    return cut


@dataclass(frozen=True)
class Endpoints:
    """The agents' and pipelines' endpoints as wired into a page: the MCP tools, the functions by the limit they
    fall under, and their inputs that take choices or images (for the queue's gate)."""

    tools: list[Callable[..., str]]
    scoring: list[Callable]
    explaining: list[Callable]
    pairing: list[Callable]
    choice_inputs: list[Any]
    image_inputs: list[Any]


def wire_endpoints(page: Page) -> Endpoints:
    """Inside the page's `gr.Blocks`: the MCP tools (`score_images`, `compare_images`, `explain_image`, also API
    endpoints) and `/score_pairs` (batched), on hidden inputs taking text (URLs, base64) and lists, JSON out."""
    score_images, compare_images, explain_image = agent_tools(page)
    score_pairs = pairs_endpoint(page)
    judges = list(page.settings.judges)
    with gr.Column(visible=False):
        prompt, images = gr.Textbox(), image_list()
        image_a, image_b, image = gr.Textbox(), gr.Textbox(), gr.Textbox()
        tool_judges = gr.CheckboxGroup(choices=judges, value=[])
        out, trigger = gr.Textbox(), gr.Button()
        pair_prompts, pair_images = prompt_list(), image_list()
        pair_judges = gr.CheckboxGroup(choices=judges, value=[])
        pairs_out = gr.JSON()
    trigger.click(score_images, [prompt, images, tool_judges], out, api_name="score_images")
    trigger.click(compare_images, [prompt, image_a, image_b], out, api_name="compare_images")
    trigger.click(explain_image, [prompt, image], out, api_name="explain_image")
    trigger.click(
        score_pairs,
        [pair_prompts, pair_images, pair_judges],
        pairs_out,
        api_name="score_pairs",
        batch=True,
        max_batch_size=page.settings.pairs_batch,
    )
    return Endpoints(
        tools=[score_images, compare_images, explain_image],
        scoring=[score_images, compare_images, score_pairs],
        explaining=[explain_image],
        pairing=[score_pairs],
        choice_inputs=[tool_judges, pair_judges],
        image_inputs=[images, image_a, image_b, image, pair_images],
    )
