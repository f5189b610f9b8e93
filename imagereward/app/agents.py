"""The page for agents and pipelines: the MCP tools (`score_images`, `compare_images`, `explain_image`) and the
`/score_pairs` endpoint, as functions Gradio serves; their docstrings are what an agent reads (Gradio makes
the MCP tool descriptions from them: the description, then one `name: description` line per argument).

Every one goes through the page (`Page.agent_scores`, `agent_compare`, `agent_explain`, `score_pairs`): the
same checks, limits and scoring as `/score`, with images sent as URLs or base64 data (`remote`). A tool's
answer is JSON text, with no server paths in it.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import gradio as gr

from ..errors import InputError
from ..images.reading import FORMATS_TEXT
from .page import Page

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


def agent_tools(page: Page) -> tuple[Callable[..., str], Callable[..., str], Callable[..., str]]:
    """The three MCP tools, bound to `page`."""
    limit = page.settings.max_images

    def score_images(prompt: str, images: list[str], judges: list[str] | None = None) -> str:
        """Rank text-to-image generations by predicted human preference with ImageReward (Xu et al. 2023, trained on 137k expert comparisons; 65% agreement with people on which of two images is better). Use it to pick the best of several images generated for one prompt. Scores are normalised: 0 is an average generation, higher is better, most lie between -2 and 2; compare scores only between images of the same prompt. The model reads only the first 35 tokens of the prompt (about 25 words; prompt_read says what it read) and sees each image as a 224 x 224 centre crop.

        Args:
            prompt: the text prompt the images were generated for (one prompt; English works best).
            images: the images to rank, at most 32 (more are cut, with a note): each an https URL or base64 data (data:image/png;base64,...); FORMATS, at most 20 MB each; base64 images together at most 48 MB a call (send more as URLs).
            judges: optional other judges to score with as well, any of CLIP, BLIP, Aesthetic, PickScore, HPSv2.1 (as offered); ImageReward always ranks.

        Returns:
            JSON text: {"ranked": [{"rank", "image", "score", "precision", "model", ...}] best first (each image named by its URL's file name, or "image N" for the N-th image sent as base64 data), "skipped": [{"name", "reason"}] for images that could not be fetched or read, "notes": [sentences], "prompt_read": {judge: {"read", "unread", ...}}, "model", "seconds"}.
        """
        return _answer(lambda: page.agent_scores(prompt, images, judges))

    def compare_images(prompt: str, image_a: str, image_b: str) -> str:
        """Compare two text-to-image generations for one prompt with ImageReward: both scores, and the probability that people prefer A to B, sigmoid(1.0333 x (score A - score B)) (the pairwise model ImageReward was trained with). Scores are normalised: 0 is an average generation, higher is better. The model reads only the first 35 tokens of the prompt and sees each image as a 224 x 224 centre crop.

        Args:
            prompt: the text prompt both images were generated for.
            image_a: image A: an https URL or base64 data (data:image/png;base64,...); FORMATS, at most 20 MB.
            image_b: image B, as image A.

        Returns:
            JSON text: {"a": {"image", "score", "precision"}, "b": {...}, "p_a_preferred": probability in [0, 1], "preferred": "a", "b", or "tie" (equal scores), "prompt", "model", "notes", "prompt_read"}.
        """
        return _answer(lambda: page.agent_compare(prompt, image_a, image_b))

    def explain_image(prompt: str, image: str) -> str:
        """Explain why ImageReward gives one image its score for a prompt (an estimate of what drove the score, not a proof): what the model read of the prompt (35 tokens at most; the rest never counted), each read word's effect (the score with the word minus the score without it), and a 14 x 14 map over the 224 x 224 centre crop the model sees (positive: those pixels raised the score). Slower than scoring (a few seconds): explain the images you need to.

        Args:
            prompt: the text prompt the image was generated for.
            image: the image: an https URL or base64 data (data:image/png;base64,...); FORMATS, at most 20 MB.

        Returns:
            JSON text: {"name", "score", "read", "unread", "tokens_read", "tokens_total", "words": [{"word", "start", "end", "delta", "partial"}], "heatmap": 14 rows of 14 numbers, top to bottom, "crop_box": [left, top, right, bottom] in the image's pixels, "image_size": [width, height], "model"}.
        """
        return _answer(lambda: page.agent_explain(prompt, image))

    for tool in (score_images, compare_images, explain_image):  # the limits and formats from their one place
        tool.__doc__ = (tool.__doc__ or "").replace("at most 32", f"at most {limit}").replace("FORMATS", FORMATS_TEXT)
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
