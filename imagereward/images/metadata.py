"""The prompt a generation carries in its own file, as the popular generators write it.

- AUTOMATIC1111 / Forge (and Fooocus in its A1111 mode): a `parameters` text chunk in PNG, or the EXIF
  UserComment in JPEG and WebP: the prompt, then `Negative prompt: ...` and a `Steps: ...` line.
- ComfyUI: a `prompt` text chunk holding the API graph (node id -> {"class_type", "inputs"}); the prompt is the
  text that reaches a sampler's `positive` input (through `CLIPTextEncode` and text-primitive nodes).
- InvokeAI: `invokeai_metadata` JSON (`positive_prompt`), or the older `sd-metadata` JSON and `Dream` line.
- Fooocus: `parameters` (or `fooocus_scheme`-tagged) JSON with a `prompt` key.
- NovelAI: `Description` (the prompt) and a `Comment` JSON with a `prompt` key.

Only the file's header and text chunks are read (nothing is decoded), through the same format allow-list and
pixel limit as scoring; anything malformed is treated as no prompt.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Mapping

from PIL import Image

from ..errors import ImageLoadError
from .reading import open_header

# ExifIFD pointer and UserComment tag.
_EXIF_IFD = 0x8769
_USER_COMMENT = 0x9286
# ComfyUI graphs are small; a bigger one is not followed (bounds the work a hostile file can cause).
_MAX_GRAPH_NODES = 10_000


@dataclass(frozen=True)
class EmbeddedPrompt:
    """A prompt found in an image file, and which generator's convention it came from."""

    prompt: str
    source: str  # "AUTOMATIC1111", "ComfyUI", "InvokeAI", "Fooocus" or "NovelAI"


def embedded_prompt(image: str | os.PathLike | Image.Image) -> EmbeddedPrompt | None:
    """The prompt an image file carries in its metadata, or None.

    Args:
        image: a path, or a PIL image opened from a file (its `info` and EXIF are read).
    """
    try:
        if isinstance(image, Image.Image):
            return _from_image(image)
        with open_header(image, os.fspath(image)) as opened:
            return _from_image(opened)
    except (ImageLoadError, OSError, ValueError, SyntaxError):
        return None


def _from_image(image: Image.Image) -> EmbeddedPrompt | None:
    info = {k: v for k, v in image.info.items() if isinstance(k, str)}
    for read in (_novelai, _invokeai, _comfyui, _parameters):
        found = read(info)
        if found is not None and found.prompt.strip():
            return EmbeddedPrompt(found.prompt.strip(), found.source)
    comment = _user_comment(image)
    if comment:
        found = _parameters({"parameters": comment})
        if found is not None and found.prompt.strip():
            return EmbeddedPrompt(found.prompt.strip(), found.source)
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _json(value: Any) -> Any:
    text = _text(value)
    if not text or text.lstrip()[:1] not in ("{", "["):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def a1111_prompt(parameters: str) -> str:
    """The prompt of an A1111 `parameters` text: everything before the `Negative prompt:` line, or before the
    last line when that line holds the settings (`Steps: ...`)."""
    lines = parameters.strip().split("\n")
    for k, line in enumerate(lines):
        if line.startswith("Negative prompt:"):
            return "\n".join(lines[:k])
    if len(lines) > 1 and lines[-1].startswith("Steps:"):
        return "\n".join(lines[:-1])
    return parameters.strip()


def _parameters(info: Mapping[str, Any]) -> EmbeddedPrompt | None:
    text = _text(info.get("parameters"))
    if not text:
        return None
    data = _json(text)
    if isinstance(data, dict):  # Fooocus writes its log entry as JSON
        prompt = _text(data.get("prompt")) or _text(data.get("Prompt"))
        return EmbeddedPrompt(prompt, "Fooocus") if prompt else None
    return EmbeddedPrompt(a1111_prompt(text), "AUTOMATIC1111")


def _novelai(info: Mapping[str, Any]) -> EmbeddedPrompt | None:
    comment = _json(info.get("Comment"))
    if _text(info.get("Software")) != "NovelAI" and not (isinstance(comment, dict) and "uc" in comment):
        return None
    if isinstance(comment, dict) and _text(comment.get("prompt")):
        return EmbeddedPrompt(comment["prompt"], "NovelAI")
    description = _text(info.get("Description"))
    return EmbeddedPrompt(description, "NovelAI") if description else None


def _invokeai(info: Mapping[str, Any]) -> EmbeddedPrompt | None:
    data = _json(info.get("invokeai_metadata"))
    if isinstance(data, dict):
        prompt = data.get("positive_prompt")
        if isinstance(prompt, str):
            return EmbeddedPrompt(prompt, "InvokeAI")
    legacy = _json(info.get("sd-metadata"))
    if isinstance(legacy, dict):
        prompt = (legacy.get("image") or {}).get("prompt")
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], dict):
            prompt = prompt[0].get("prompt")
        if isinstance(prompt, str):
            return EmbeddedPrompt(prompt, "InvokeAI")
    dream = _text(info.get("Dream"))
    if dream and dream.startswith('"'):
        end = dream.find('"', 1)
        return EmbeddedPrompt(dream[1:end] if end > 0 else dream[1:], "InvokeAI")
    return None


def _comfyui(info: Mapping[str, Any]) -> EmbeddedPrompt | None:
    graph = _json(info.get("prompt"))
    if not isinstance(graph, dict) or not graph or len(graph) > _MAX_GRAPH_NODES:
        return None
    nodes = {str(k): v for k, v in graph.items() if isinstance(v, dict)}
    samplers = [n for n in nodes.values() if "sampler" in str(n.get("class_type", "")).lower()]
    for sampler in samplers:
        text = _text_reaching(nodes, (sampler.get("inputs") or {}).get("positive"), depth=0)
        if text:
            return EmbeddedPrompt(text, "ComfyUI")
    negatives = {
        str(link[0]) for s in samplers if isinstance(link := (s.get("inputs") or {}).get("negative"), list) and link
    }
    for node_id, node in nodes.items():  # no sampler found: the first text encoder that is not a negative
        if node.get("class_type") == "CLIPTextEncode" and node_id not in negatives:
            text = _text_reaching(nodes, (node.get("inputs") or {}).get("text"), depth=0)
            if text:
                return EmbeddedPrompt(text, "ComfyUI")
    return None


def _text_reaching(nodes: Mapping[str, Any], value: Any, depth: int) -> str | None:
    """The string that `value` (a literal, or a [node id, output] link) resolves to, following conditioning
    and text nodes back to the text, at most 32 links deep."""
    if isinstance(value, str):
        return value
    if depth > 32 or not (isinstance(value, list) and value):
        return None
    node = nodes.get(str(value[0]))
    if not isinstance(node, dict):
        return None
    inputs = node.get("inputs") or {}
    for key in ("text", "text_g", "prompt", "string", "value", "conditioning", "conditioning_1", "positive"):
        if key in inputs:
            text = _text_reaching(nodes, inputs[key], depth + 1)
            if text:
                return text
    return None


def _user_comment(image: Image.Image) -> str | None:
    """The EXIF UserComment as text (its 8-byte character-code prefix decoded), where there is one."""
    try:
        raw = image.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT)
    except (AttributeError, KeyError, ValueError, SyntaxError, OSError):
        return None
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, bytes) or len(raw) < 8:
        return None
    code, body = raw[:8], raw[8:]
    if code.startswith(b"UNICODE"):
        # piexif (which A1111 uses) writes UTF-16 big-endian; some tools write little-endian
        big = body[:1] == b"\x00" or (len(body) > 1 and body[0] == 0)
        return body.decode("utf-16-be" if big else "utf-16-le", "replace").rstrip("\x00")
    return body.decode("utf-8", "replace").rstrip("\x00")
