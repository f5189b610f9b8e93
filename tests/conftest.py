"""The fixtures tests share: the tiny ImageReward model, one download root holding every judge's tiny files, a
Hugging Face cache laid out as the hub lays it out, and the full-size checkpoint layouts of all six judges as
meta tensors. The data they are made from is in `originals.py`."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch

from originals import BASELINES, EXPECTED, JUDGES, PARITY


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


@pytest.fixture(scope="session")
def judges_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One download root holding every judge's tiny files, laid out as each judge reads its root: the
    baselines' files, PickScore's two repo folders, HPSv2.1's checkpoint and architecture (links)."""
    folder = tmp_path_factory.mktemp("judges-root")
    sources = [*BASELINES.iterdir(), *(JUDGES / "pickscore").glob("*-*"), *(JUDGES / "hpsv2").glob("*")]
    for source in sources:
        if source.name in ("README.md", "expected.json", "images") or source.suffix == ".npz":
            continue
        (folder / source.name).symlink_to(source.resolve())
    return folder


class HubCache:
    """A Hugging Face cache (`HF_HOME`) laid out as the hub lays it out, filled one repo at a time."""

    COMMIT = "89abcdef0123456789abcdef0123456789abcdef"

    def __init__(self, home: Path) -> None:
        self.home = home

    def add(self, repo_id: str, files: dict[str, Path], repo_type: str = "model") -> Path:
        """Puts `files` (name in the repo -> file to copy) into a snapshot of `repo_id` (a model or dataset repo)
        that `main` points at."""
        folder = self.home / "hub" / (f"{repo_type}s--" + repo_id.replace("/", "--"))
        snapshot = folder / "snapshots" / self.COMMIT
        snapshot.mkdir(parents=True, exist_ok=True)
        (folder / "refs").mkdir(exist_ok=True)
        (folder / "refs" / "main").write_text(self.COMMIT)
        for name, source in files.items():
            (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, snapshot / name)
        return snapshot


@pytest.fixture
def zero_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """ZeroGPU's `spaces` as the app meets it (`tests/stubs/spaces`: what crosses pickles, each call logged);
    returns a function giving the calls so far, `[{"function", "duration"}]`."""
    import json
    import sys

    log = tmp_path / "spaces.log"
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "stubs"))
    monkeypatch.setenv("SPACES_STUB_LOG", str(log))
    monkeypatch.delitem(sys.modules, "spaces", raising=False)

    def calls() -> list[dict]:
        lines = log.read_text().splitlines() if log.exists() else []
        return [entry for entry in map(json.loads, lines) if "function" in entry]

    return calls


@pytest.fixture
def hub_cache(tmp_path: Path) -> HubCache:
    return HubCache(tmp_path / "hf-home")


# ------------------------------------------------------------------------------------ full-size layouts
_LAYOUT_FILES = {
    "ImageReward-v1.0": (PARITY, None),
    "CLIP": (BASELINES, "ViT-L-14.pt"),
    "BLIP": (BASELINES, "model_large.pth['model']"),
    "Aesthetic": (BASELINES, "sac%2Blogos%2Bava1-l14-linearMSE.pth"),
    "PickScore": (JUDGES, "pickscore"),
    "HPSv2.1": (JUDGES, "hpsv2"),
}


@dataclass(frozen=True)
class FullLayout:
    """The exact keys, shapes and dtypes of a judge's published file, and the judge's network built from them
    on the meta device (no memory): `state(judge)`, `build(judge, state)`. The fixture sets record the layouts
    in three formats; this reads all three."""

    tmp: Path

    def entries(self, judge: str) -> dict[str, tuple[list[int], str]]:
        folder, part = _LAYOUT_FILES[judge]
        raw = json.loads((folder / "full_state_dict_keys.json").read_text(encoding="utf-8"))
        if part is None:  # ImageReward: a list of {key, shape, dtype}
            return {e["key"]: (e["shape"], e["dtype"]) for e in raw}
        if "files" in raw:  # the baselines: {files: {file: [{key, shape, dtype}]}}
            return {e["key"]: (e["shape"], e["dtype"]) for e in raw["files"][part]}
        return {k: (shape, dtype) for k, (shape, dtype) in raw[part]["keys"].items()}  # {judge: {keys: {k: [..]}}}

    def state(self, judge: str) -> dict[str, torch.Tensor]:
        return {
            k: torch.empty(shape, dtype=getattr(torch, dtype), device="meta")
            for k, (shape, dtype) in self.entries(judge).items()
        }

    def build(self, judge: str, state: dict[str, torch.Tensor]) -> torch.nn.Module:
        """The judge's network from `state`, loaded strictly as the judge loads its file."""
        return _BUILDERS[judge](state, self.tmp)


def _imagereward(state: dict, tmp: Path) -> torch.nn.Module:
    from imagereward.model.checkpoint import convert_state_dict, load_converted, original_key
    from imagereward.model.config import ModelConfig, text_config_from_med
    from imagereward.model.network import ImageRewardModel

    med = json.loads((PARITY / "med_config.full.json").read_text())
    with torch.device("meta"):
        model = ImageRewardModel(ModelConfig(text=text_config_from_med(med)))
    load_converted(model, convert_state_dict(state), file_key=original_key)
    return model


def _clip(state: dict, tmp: Path) -> torch.nn.Module:
    from imagereward.judges.clip import clip_from_state

    return clip_from_state(state, "ViT-L-14.pt")


def _blip(state: dict, tmp: Path) -> torch.nn.Module:
    from imagereward.judges.blip import blip_config, blip_from_state

    return blip_from_state(state, blip_config(BASELINES / "med_config.full.json"), "model_large.pth")


def _aesthetic(state: dict, tmp: Path) -> torch.nn.Module:
    from imagereward.judges.aesthetic import aesthetic_from_state

    return aesthetic_from_state(state, "sac%2Blogos%2Bava1-l14-linearMSE.pth")


def _pickscore(state: dict, tmp: Path) -> torch.nn.Module:
    """PickScore's config at LAION ViT-H-14's dims (the real config.json holds these)."""
    from imagereward.judges.pickscore import pickscore_from_state

    config = json.loads((JUDGES / "pickscore" / "yuvalkirstain-PickScore_v1" / "config.json").read_text())
    config["projection_dim"] = 1024
    config["text_config"].update(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
    config["vision_config"].update(
        hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, intermediate_size=5120
    )
    path = tmp / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return pickscore_from_state(state, path, "model.safetensors")


def _hps(state: dict, tmp: Path) -> torch.nn.Module:
    from imagereward.judges.hps import architecture, hps_from_state

    return hps_from_state(state, architecture(None), "HPS_v2.1_compressed.pt")


_BUILDERS: dict[str, Callable[[dict, Path], torch.nn.Module]] = {
    "ImageReward-v1.0": _imagereward,
    "CLIP": _clip,
    "BLIP": _blip,
    "Aesthetic": _aesthetic,
    "PickScore": _pickscore,
    "HPSv2.1": _hps,
}


@pytest.fixture
def full_layout(tmp_path: Path) -> FullLayout:
    return FullLayout(tmp_path)
