"""Generations laid out as the original's benchmark lays them out (`test-benchmark.py`): one folder per
generative model, `IMAGES_DIR/<model>/<id>_<k>.png`, k = 0 .. n - 1 for each prompt id of the prompt list.

The original takes n = (the number of files in the model's folder) // (the number of prompts), reads
`<id>_<k>.png` for k < n, and stops at the first missing file. Here n is found the same way (counting the
folder's generation files), any accepted image extension is read (`.png` first), and a missing generation is
reported with its prompt id and file instead of stopping the run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Sequence

from ..images.formats import IMAGE_EXTENSIONS

# The original's 100 prompts (THUDM/ImageReward, benchmark/benchmark-prompts.json, Apache-2.0), shipped.
DEFAULT_PROMPTS = "benchmark-prompts.json"


@dataclass(frozen=True)
class Prompt:
    id: str
    prompt: str


def load_prompts(path: str | Path | None = None) -> list[Prompt]:
    """The prompt list (`[{"id", "prompt"}]`, the original's format); default the original's 100 prompts.

    Raises:
        ValueError: not such a list (the message says what is wrong).
    """
    if path is None:
        text = resources.files("imagereward.benchmark").joinpath(DEFAULT_PROMPTS).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    items = json.loads(text)
    if not isinstance(items, list) or not all(isinstance(i, dict) and "id" in i and "prompt" in i for i in items):
        raise ValueError(f'{path or DEFAULT_PROMPTS}: a prompt list is a JSON list of {{"id", "prompt"}}')
    return [Prompt(str(i["id"]), str(i["prompt"])) for i in items]


@dataclass
class Generations:
    """One model's generations: for each prompt (in the list's order), its files; and what is missing."""

    model: str
    per_prompt: int
    files: dict[str, list[Path]] = field(default_factory=dict)  # prompt id -> its generations, k = 0 .. n - 1
    missing: dict[str, list[str]] = field(default_factory=dict)  # prompt id -> the files not found


def find_generations(images_dir: str | Path, model: str, prompts: Sequence[Prompt]) -> Generations:
    """A model's generations for `prompts` (see the module doc).

    Raises:
        FileNotFoundError: the model's folder is not there (the message names it and the folders that are).
    """
    folder = Path(images_dir) / model
    if not folder.is_dir():
        found = ", ".join(models_in(images_dir)) or "none"
        raise FileNotFoundError(f"no folder {folder} for the model {model!r}; the models in {images_dir}: {found}")
    names = set(os.listdir(folder))
    n = len(names) // max(1, len(prompts))
    out = Generations(model, n)
    stems: dict[str, str] = {}
    for name in sorted(names, key=_png_first):  # `<id>_<k>.png` first, as the original reads it
        if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
            stems.setdefault(Path(name).stem, name)
    for prompt in prompts:
        files, missing = [], []
        for k in range(n):
            name = stems.get(f"{prompt.id}_{k}")
            if name is None:
                missing.append(f"{prompt.id}_{k}.png")
            else:
                files.append(folder / name)
        out.files[prompt.id] = files
        if missing:
            out.missing[prompt.id] = missing
    return out


def _png_first(name: str) -> tuple[bool, str]:
    return (not name.lower().endswith(".png"), name)


def models_in(images_dir: str | Path) -> list[str]:
    """Every model folder of a generations folder, sorted (the original's `--model all` lists them unsorted)."""
    return sorted(p.name for p in Path(images_dir).iterdir() if p.is_dir())
