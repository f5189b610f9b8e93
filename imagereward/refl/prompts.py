"""The prompts ReFL trains on: the original's format (`[{"text", "image"}]`, only `text` is read, as its dataset
transform reads it), a JSON list of strings, or a text file with one prompt a line; by default the original's
10,000 training prompts, shipped (`refl_data.json`, `SOURCE.md` beside it)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ..errors import InputError

DEFAULT_PROMPTS = "refl_data.json"


def load_prompts(path: str | Path | None = None) -> list[str]:
    """The prompt list (see the module doc).

    Raises:
        InputError: a file that is not such a list (the message says what is wrong and what is expected).
    """
    if path is None:
        text = resources.files("imagereward.refl").joinpath(DEFAULT_PROMPTS).read_text(encoding="utf-8")
        source = DEFAULT_PROMPTS
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read the prompts file {path}: {e}") from None
        source = str(path)
        if Path(path).suffix.lower() == ".txt":
            prompts = [line.strip() for line in text.splitlines() if line.strip()]
            if not prompts:
                raise InputError(f"{source} holds no prompts: one prompt a line")
            return prompts
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f'{source} is not JSON ({e}): give [{{"text": ...}}], a list of strings, or a .txt file'
        ) from None
    if isinstance(items, list) and items and all(isinstance(i, str) for i in items):
        return list(items)
    if isinstance(items, list) and items and all(isinstance(i, dict) and isinstance(i.get("text"), str) for i in items):
        return [i["text"] for i in items]
    raise InputError(
        f'{source} is not a prompt list: give the original\'s [{{"text": "...", "image": ...}}], a JSON list of '
        "strings, or a .txt file with one prompt a line"
    )
