"""What the originals computed, as the tests parametrise over it: the fixture folders (the tiny models in the
originals' file layouts, and the images) and the outputs `image-reward` 1.5 gave for them. Data only; the
objects tests share (the tiny model, a download root of every judge, a hub cache, full-size layouts) are the
fixtures of `conftest.py`."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
PARITY = FIXTURES / "parity"
BASELINES = FIXTURES / "parity-baselines"
JUDGES = FIXTURES / "parity-judges"

EXPECTED = json.loads((PARITY / "expected.json").read_text(encoding="utf-8"))
IMAGE_NAMES: list[str] = EXPECTED["images"]
PROMPTS: list[str] = EXPECTED["prompts"]


def image_path(name: str) -> Path:
    """A parity fixture image by name."""
    return PARITY / "images" / name
