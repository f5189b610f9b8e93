"""The judges, by name, from their records: ImageReward, the paper's Table 2 baselines (CLIP, BLIP, Aesthetic,
`load_score` a drop-in for the original's `ImageReward.load_score`) and the modern judges PickScore and HPSv2.1.

Each judge's module says everything about it in one `JudgeSpec` (`SPEC`); this registry only reads them, in
`JUDGE_MODULES` order, then the judges other packages register (`ENTRY_POINTS`). Adding a judge is adding its
module (and its name to that tuple), or publishing a package with the entry point; nothing else changes. `load_judge` is the
one loader every front end uses (the command line, bulk scoring, the evaluation, the page).

Each judge is a `base.Judge`: the same `score` / `inference_rank` as its original, plus batched `rewards` /
`try_rewards` / `results`, decoding ahead of the model and a cache of image features.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import import_module
from pathlib import Path
from typing import Any

import torch

from .base import Judge, JudgeSpec

# The judges' modules, in the order they are listed and offered. Imported on first use (each brings its
# libraries: timm, transformers, open_clip).
JUDGE_MODULES = (
    "imagereward.judges.imagereward",
    "imagereward.judges.clip",
    "imagereward.judges.blip",
    "imagereward.judges.aesthetic",
    "imagereward.judges.pickscore",
    "imagereward.judges.hps",
)
# Where a judge in a package of one's own registers: an entry point in this group naming its module (which
# defines `SPEC`), e.g. in its pyproject.toml `[project.entry-points."imagereward.judges"] mine = "my_judge"`.
ENTRY_POINTS = "imagereward.judges"


def judge_modules() -> list[str]:
    """The judges' modules: the package's own (`JUDGE_MODULES`), then those of installed packages
    (`ENTRY_POINTS`, by entry point name)."""
    from importlib.metadata import entry_points

    plugins = sorted(entry_points(group=ENTRY_POINTS), key=lambda e: e.name)
    return [*JUDGE_MODULES, *dict.fromkeys(e.value for e in plugins if e.value not in JUDGE_MODULES)]


@lru_cache(maxsize=1)
def specs() -> tuple[JudgeSpec, ...]:
    """Every judge's record, in `judge_modules()` order.

    Raises:
        ValueError: two judges share a name or a label (the message names the modules).
    """
    found: dict[str, str] = {}
    out = []
    for module in judge_modules():
        record = import_module(module).SPEC
        for key in dict.fromkeys((record.name, record.label)):
            if key in found:
                raise ValueError(f"the judges of {found[key]} and {module} are both called {key!r}; rename one")
            found[key] = module
        out.append(record)
    return tuple(out)


def primary() -> JudgeSpec:
    """The package's own judge, ImageReward: the one that ranks on the page."""
    return next(s for s in specs() if s.primary)


def spec(name: str) -> JudgeSpec:
    """A judge's record by its name or its label.

    Raises:
        ValueError: an unknown name (the message lists the judges).
    """
    for s in specs():
        if name in (s.name, s.label):
            return s
    raise ValueError(f"unknown judge {name!r}; available judges: {available_judges()}")


def available_judges() -> list[str]:
    """Every judge `load_judge` knows, by name: ImageReward's published weights, the baselines, PickScore and
    HPSv2.1."""
    return [s.name for s in specs()]


def available_scores() -> list[str]:
    """The judges `load_score` knows: the original's `ImageReward.available_scores()` (the Table 2 baselines),
    then PickScore and HPSv2.1."""
    return [s.name for s in specs() if not s.primary]


def load_judge(name: str, download_root: str | Path | None = None, **kwargs: Any) -> Judge:
    """Any judge by name (or label); a name that is no judge's is taken as ImageReward weights (a registry name
    or a checkpoint path, as `imagereward.load` takes them).

    Args:
        name: one of `available_judges()`, a label (`ImageReward`), or ImageReward weights.
        download_root: the folder holding (or receiving) the judge's files (see `load_score`).
        kwargs: `device`, `dtype`; `weights` for ImageReward (a registry name or a path).

    Raises:
        ValueError: an unknown name that is no path either (the message lists the judges).
    """
    try:
        found = spec(name)
    except ValueError:
        from ..model.pretrained import available_models

        if name not in available_models() and not Path(name).expanduser().exists():
            raise
        found, kwargs = primary(), {**kwargs, "weights": name}
    if "weights" in kwargs and not found.primary:
        raise ValueError(f"{found.name} takes no weights= (only {primary().name} does)")
    return found.load(download_root=download_root, **kwargs)


def load_score(
    name: str | None = None,
    device: str | torch.device | None = None,
    download_root: str | Path | None = None,
    dtype: str | torch.dtype | None = None,
) -> Judge:
    """Loads a Table 2 baseline (a drop-in for the original's `ImageReward.load_score`), PickScore or HPSv2.1.

    Args:
        name: one of `available_scores()`; default the first, CLIP (the original's default).
        device: default CUDA when available, else the CPU.
        download_root: the folder that holds (or receives) the original's files under their original names:
            `ViT-L-14.pt` (CLIP, Aesthetic), `sac%2Blogos%2Bava1-l14-linearMSE.pth` (Aesthetic),
            `model_large.pth` and `med_config.json` (BLIP; an optional `vision_config.json` gives BLIP's ViT
            dims); default `~/.cache/ImageReward`, as the original. A file found there is used as it is.
            PickScore: `<root>/yuvalkirstain-PickScore_v1/` (`config.json`, `model.safetensors`) and
            `<root>/laion-CLIP-ViT-H-14-laion2B-s32B-b79K/` (`tokenizer.json`, `preprocessor_config.json`);
            HPSv2.1: `<root>/HPS_v2.1_compressed.pt` and optionally `<root>/open_clip_config.json` (the
            architecture, when not ViT-H-14). For these two the default is the Hugging Face cache, as their
            originals use.
        dtype: default float32 on the CPU (the original's numbers) and float16 on CUDA (CLIP's own
            precision there; BLIP and the aesthetic MLP read float32 features either way).

    Raises:
        ValueError: unknown name, device or dtype.
        imagereward.WeightsUnavailableError: a file is missing and could not be downloaded.
        imagereward.CheckpointError: a file that is corrupt or whose keys or shapes do not fit, named.
    """
    name = available_scores()[0] if name is None else name
    if name not in available_scores():
        raise ValueError(f"unknown score {name!r}; available scores: {available_scores()}")
    return spec(name).load(device=device, dtype=dtype, download_root=download_root)


def no_gradient_path(name: str) -> str:
    """The sentence refusing a judge with no gradient path as a training reward, naming those that have one."""
    able = ", ".join(s.name for s in specs() if s.differentiable)
    return (
        f"{name} has no differentiable path: its score is not computed from the image's pixels with gradients "
        f"here; the judges that have one: {able}"
    )


__all__ = [
    "Judge",
    "JudgeSpec",
    "available_judges",
    "available_scores",
    "load_judge",
    "load_score",
    "no_gradient_path",
    "primary",
    "spec",
    "specs",
]
