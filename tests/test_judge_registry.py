"""A judge is one file: a judge module from outside the package, registered through the `imagereward.judges` entry
point as a judge in a package of one's own would be (`tests/fixtures/throwaway/throwaway_judge.py`, a mean
brightness), is offered by the library, the page, the `/score` API, the MCP tool's description, the command line
and bulk scoring, with no other change to the project's files."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file

from appserver import running_app
from originals import EXPECTED, PARITY, image_path

PLUGIN = Path(__file__).parent / "fixtures" / "throwaway"
PROMPT = EXPECTED["rank"][0]["prompt"]
IMAGES = [image_path(name) for name in EXPECTED["rank"][0]["images"][:3]]


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the throwaway judge as an installed distribution: its module, and a dist-info naming it
    under the `imagereward.judges` entry point."""
    folder = tmp_path_factory.mktemp("plugin")
    shutil.copy(PLUGIN / "throwaway_judge.py", folder)
    info = folder / "throwaway_judge-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: throwaway-judge\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[imagereward.judges]\nbrightness = throwaway_judge\n")
    return folder


@pytest.fixture
def registered(plugin: Path, monkeypatch: pytest.MonkeyPatch):
    """The plugin's folder on this process's path, the registry read again; read again without it after."""
    from imagereward import judges

    monkeypatch.syspath_prepend(str(plugin))
    judges.specs.cache_clear()
    yield judges
    monkeypatch.undo()
    judges.specs.cache_clear()


def brightness(path: Path) -> float:
    """The throwaway judge's score computed here: the mean of ImageReward's 224 x 224 crop, over 255."""
    from imagereward.images import reading

    return reading.to_pixels(reading.open_image(path)).float().mean().item() / 255


def with_plugin(plugin: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")])}


def tools_text(schema: list[dict], name: str) -> str:
    """A tool's description and its arguments' descriptions, as an agent reads them."""
    tool = next(t for t in schema if t["name"] == name)
    arguments = tool.get("inputSchema", {}).get("properties", {})
    return "\n".join([tool["description"], *(f"{k}: {v.get('description', '')}" for k, v in arguments.items())])


def test_the_library_offers_it(registered) -> None:
    from imagereward.app import view
    from imagereward.app.settings import Settings

    assert registered.available_judges()[-1] == "Brightness" and "Brightness" in registered.available_scores()
    judge = registered.load_judge("Brightness")
    assert judge.rewards(PROMPT, IMAGES) == pytest.approx([brightness(p) for p in IMAGES], abs=1e-6)
    offered = Settings().judges
    assert offered[-1] == "Brightness"
    assert "newer judges (PickScore, HPSv2.1, Brightness)" in view.judges_info(offered)


def test_the_page_the_api_and_the_mcp_tool_offer_it(plugin: Path, tmp_path: Path) -> None:
    env = {"IMAGEREWARD_MODEL": str(PARITY), "IMAGEREWARD_MCP": "1", "PYTHONPATH": with_plugin(plugin)["PYTHONPATH"]}
    with running_app(tmp_path, **env) as url:
        config = httpx.get(f"{url}config", timeout=30).json()
        box = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == "judges")
        assert [c[0] for c in box["props"]["choices"]][-1] == "Brightness"
        gallery = [{"image": handle_file(str(p)), "caption": None} for p in IMAGES]
        response = Client(url, verbose=False).predict(PROMPT, gallery, ["Brightness"], api_name="/score")
        schema = httpx.get(f"{url}gradio_api/mcp/schema", timeout=30).json()
    assert response["judges"] == ["ImageReward", "Brightness"]
    got = {row["image"]: row["score_Brightness"] for row in response["ranked"]}
    assert got == pytest.approx({p.name: brightness(p) for p in IMAGES}, abs=1e-6)
    (judges,) = [line for line in tools_text(schema, "score_images").splitlines() if "judges:" in line]
    assert judges.split("any of ")[1].startswith("CLIP, BLIP, Aesthetic, PickScore, HPSv2.1, Brightness;")


def test_the_command_line_and_bulk_offer_it(plugin: Path, tmp_path: Path) -> None:
    env = with_plugin(plugin)
    model = ["--model", str(PARITY), "--device", "cpu", "-q"]
    judges = ["--judge", "ImageReward-v1.0", "--judge", "Brightness"]
    run = [sys.executable, "-m", "imagereward"]
    helped = subprocess.run([*run, "score", "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert "Brightness" in helped.stdout
    scored = subprocess.run(
        [*run, "score", "-p", PROMPT, *map(str, IMAGES), *model, *judges, "-f", "csv"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert scored.returncode == 0, scored.stderr
    rows = list(csv.DictReader(io.StringIO(scored.stdout)))
    assert {r["image"]: float(r["score_Brightness"]) for r in rows} == pytest.approx(
        {str(p): brightness(p) for p in IMAGES}, abs=1e-6
    )
    folder = tmp_path / "images"
    folder.mkdir()
    for p in IMAGES:
        shutil.copy(p, folder)
    out = tmp_path / "out.parquet"
    bulk = subprocess.run(
        [*run, "bulk", str(folder), "--prompt", PROMPT, "--output", str(out), *model, *judges],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bulk.returncode == 0, bulk.stderr
    from imagereward.bulk import read_output

    got = {Path(r["image"]).name: r["score_Brightness"] for r in read_output(out)}
    assert got == pytest.approx({p.name: brightness(p) for p in IMAGES}, abs=1e-6)


def test_the_docs_name_the_registered_judges() -> None:
    """README's and docs/app.md's lists of the other judges are the registry's (`available_scores`)."""
    from imagereward.judges import available_scores

    root = Path(__file__).parents[1]
    readme = root.joinpath("README.md").read_text(encoding="utf-8")
    listed = readme.split("more judges (", 1)[1].split(")", 1)[0].split(", ")
    assert listed == available_scores()
    app = root.joinpath("docs", "app.md").read_text(encoding="utf-8")
    ticked = app.split("**Judges side by side.** Tick ", 1)[1].split(' under "Also judge with"', 1)[0]
    assert ticked.replace(" or ", ", ").split(", ") == available_scores()
