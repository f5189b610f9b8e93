"""Shared fixtures: the parity folder (the tiny model, images and the original's outputs) and the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PARITY = Path(__file__).parent / "fixtures" / "parity"
EXPECTED = json.loads((PARITY / "expected.json").read_text(encoding="utf-8"))
IMAGE_NAMES: list[str] = EXPECTED["images"]
PROMPTS: list[str] = EXPECTED["prompts"]


def image_path(name: str) -> Path:
    return PARITY / "images" / name


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    return PARITY


@pytest.fixture(scope="session")
def expected() -> dict:
    return EXPECTED


@pytest.fixture(scope="session")
def tiny_model():
    """The tiny parity model, fp32 on the CPU (the original's exact mode)."""
    import imagereward

    return imagereward.load(str(PARITY), device="cpu")


BASELINES = Path(__file__).parent / "fixtures" / "parity-baselines"
JUDGES = Path(__file__).parent / "fixtures" / "parity-judges"


def judges_root(folder: Path) -> Path:
    """One download root holding every judge's tiny files, laid out as each judge reads its root: the
    baselines' files, PickScore's two repo folders, HPSv2.1's checkpoint and architecture (links)."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = [*BASELINES.iterdir(), *(JUDGES / "pickscore").glob("*-*"), *(JUDGES / "hpsv2").glob("*")]
    for source in sources:
        if source.name in ("README.md", "expected.json", "images") or source.suffix == ".npz":
            continue
        (folder / source.name).symlink_to(source.resolve())
    return folder
