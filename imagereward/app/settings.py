"""The page's settings, from the environment, and loading its model without ever crashing the page."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from PIL import Image

from ..errors import ImageRewardError
from ..images.reading import MAX_IMAGE_PIXELS
from ..judges import available_scores, primary
from ..judges.base import DEFAULT_BATCH_SIZE
from ..judges.imagereward import ImageReward, available_models, load

log = logging.getLogger(__name__)

DEFAULT_MAX_IMAGES = DEFAULT_BATCH_SIZE
# Pixels one request may ask to decode, all images together: three images at the per-image limit, or
# about 64 generations of 2048x2048.
DEFAULT_PIXEL_BUDGET = 3 * MAX_IMAGE_PIXELS
# The most one image may take: an upload (Gradio's `max_file_size`), or a URL's answer.
MAX_UPLOAD_MB = 20
# The most one API call (the queue, `/call/`, MCP) may send: base64 images of about 48 MB together.
DEFAULT_MAX_BODY_MB = 64
# The memory one heavy call adds over the loaded full-size model (float32, CPU), measured by
# `python benchmarks/memory_per_call.py` (benchmarks/runs/memory_per_call.json, Intel Xeon with AMX): a 32-image
# ranking that uses the whole pixel budget +547 MB, one explanation +939 MB. The larger, rounded up.
HEAVY_CALL_BYTES = 2**30


def on_zero_gpu(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs on a ZeroGPU Space: the `SPACES_ZERO_GPU` variable the platform sets
    (read as the `spaces` package reads it), not merely whether `spaces` can be imported."""
    value = (os.environ if env is None else env).get("SPACES_ZERO_GPU")
    return value is not None and value.lower() in ("1", "t", "true")


def parse_judges(raw: str | None) -> tuple[str, ...]:
    """`IMAGEREWARD_JUDGES`: the judges a visitor may add, comma-separated; unset: all; `none`: none.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    offered = available_scores()
    if raw is None:
        return tuple(offered)
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if names in ([], ["none"]):
        return ()
    unknown = [n for n in names if n not in offered]
    if unknown:
        raise ValueError(f"IMAGEREWARD_JUDGES names unknown judges {unknown}; use any of {offered}, or none")
    return tuple(n for n in offered if n in names)


def _whole_number(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    """An environment setting that is a whole number >= `minimum`.

    Raises:
        ValueError: anything else (the message names the setting and what it must be).
    """
    raw = env.get(name, str(default)).strip()
    if not raw.isdigit() or int(raw) < minimum:
        what = "a positive whole number" if minimum == 1 else f"a whole number >= {minimum}"
        raise ValueError(f"{name} must be {what}, got {raw!r}")
    return int(raw)


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    """An on/off setting: `1`, `true`, `on` or `0`, `false`, `off`; unset: `default`.

    Raises:
        ValueError: anything else (the message names the setting and the valid values).
    """
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "on", "yes"):
        return True
    if raw in ("0", "false", "off", "no"):
        return False
    raise ValueError(f"{name} must be 1 or 0 (true/false, on/off), got {raw[:20]!r}")


@dataclass(frozen=True)
class Settings:
    """The page's settings, from the environment (docs/app.md):

    `IMAGEREWARD_MODEL` (registry name or local path), `IMAGEREWARD_DEVICE`, `IMAGEREWARD_DTYPE`,
    `IMAGEREWARD_MAX_IMAGES`, `IMAGEREWARD_JUDGES` (the judges visitors may add; see `parse_judges`),
    `IMAGEREWARD_DOWNLOAD_ROOT` (the other judges' files); on ZeroGPU the device defaults to CUDA. The limits
    of a public page: `IMAGEREWARD_PIXEL_BUDGET` (decoded pixels per request), `IMAGEREWARD_MAX_PENDING` (calls
    one visitor may have queued or running), `IMAGEREWARD_PROXY_HOPS` (trusted proxies in front of the app,
    whose `X-Forwarded-For` names the visitor: 1 on a Space, else 0), `IMAGEREWARD_FILE_LIFETIME` (seconds
    uploads and downloads are kept), `IMAGEREWARD_UPLOAD_QUOTA_MB` (one visitor's uploads within that time) and
    `IMAGEREWARD_DISK_BUDGET_MB` (all uploads together). For agents and pipelines: `IMAGEREWARD_MCP` (the MCP
    server: `1` or `0`; on by default on a Space), `IMAGEREWARD_URL_TIMEOUT` (seconds to fetch one image URL),
    `IMAGEREWARD_TRUSTED_URL_HOSTS` (`host:port`, comma-separated, whose addresses need not be public; empty by
    default), `IMAGEREWARD_PAIR_CALLS` (`/score_pairs` calls one visitor may have queued or running, as a
    pipeline sends them in parallel) and `IMAGEREWARD_PAIRS_BATCH` (calls merged into one device call). The host: `IMAGEREWARD_MAX_BODY_MB` (the most
    one API call may send) and `IMAGEREWARD_HEAVY_CALLS` (scoring, pair and explanation calls running at once,
    all visitors together; 0, the default: as many as the memory left after loading holds, see
    `admission.heavy_calls`). Verdicts: `IMAGEREWARD_VERDICTS_DB` (a SQLite file that keeps every verdict and the
    images it names; unset, the default: nothing is kept on the server), `IMAGEREWARD_VERDICTS_PER_HOUR` (one
    visitor's verdicts kept per hour) and `IMAGEREWARD_VERDICTS_MAX_MB` (the store's largest size). Comparing
    models: `IMAGEREWARD_COMPARE_IMAGES` (the most generations one zip may hold)."""

    model: str = ""  # default: the primary judge's published weights
    device: str | None = None
    dtype: str | None = None
    max_images: int = DEFAULT_MAX_IMAGES
    pixel_budget: int = DEFAULT_PIXEL_BUDGET
    zero_gpu: bool = False
    judges: tuple[str, ...] | None = None  # default: every judge besides ImageReward
    download_root: str | None = None
    max_pending: int = 4
    proxy_hops: int = 0
    file_lifetime: int = 900
    upload_quota: int = 1024 * 2**20
    disk_budget: int = 8192 * 2**20
    mcp: bool = False
    url_timeout: int = 10
    trusted_url_hosts: tuple[str, ...] = ()
    pair_calls: int = 16
    pairs_batch: int = 16
    max_body: int = DEFAULT_MAX_BODY_MB * 2**20
    heavy_calls: int = 0  # 0: sized from the memory at start
    verdicts_db: str | None = None  # None: verdicts live in the visitor's browser only
    verdicts_per_hour: int = 600
    verdicts_max_bytes: int = 1024 * 2**20
    compare_images: int = 240  # generations in one "Compare models" zip (e.g. 4 models x 12 prompts x 5)

    def __post_init__(self) -> None:
        if not self.model:
            object.__setattr__(self, "model", primary().name)
        if self.judges is None:
            object.__setattr__(self, "judges", tuple(available_scores()))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment gives.

        Raises:
            ValueError: a setting that is not what it must be (the message names it).
        """
        env = dict(os.environ if env is None else env)
        zero_gpu = on_zero_gpu(env)
        on_space = bool(env.get("SPACE_ID"))
        return cls(
            model=env.get("IMAGEREWARD_MODEL") or "",
            device=env.get("IMAGEREWARD_DEVICE") or ("cuda" if zero_gpu else None),
            dtype=env.get("IMAGEREWARD_DTYPE") or None,
            max_images=_whole_number(env, "IMAGEREWARD_MAX_IMAGES", DEFAULT_MAX_IMAGES),
            pixel_budget=_whole_number(env, "IMAGEREWARD_PIXEL_BUDGET", DEFAULT_PIXEL_BUDGET),
            zero_gpu=zero_gpu,
            judges=parse_judges(env.get("IMAGEREWARD_JUDGES")),
            download_root=env.get("IMAGEREWARD_DOWNLOAD_ROOT") or None,
            max_pending=_whole_number(env, "IMAGEREWARD_MAX_PENDING", cls.max_pending),
            proxy_hops=_whole_number(env, "IMAGEREWARD_PROXY_HOPS", 1 if on_space else 0, minimum=0),
            file_lifetime=_whole_number(env, "IMAGEREWARD_FILE_LIFETIME", cls.file_lifetime),
            upload_quota=_whole_number(env, "IMAGEREWARD_UPLOAD_QUOTA_MB", cls.upload_quota // 2**20) * 2**20,
            disk_budget=_whole_number(env, "IMAGEREWARD_DISK_BUDGET_MB", cls.disk_budget // 2**20) * 2**20,
            mcp=_switch(env, "IMAGEREWARD_MCP", on_space),
            url_timeout=_whole_number(env, "IMAGEREWARD_URL_TIMEOUT", cls.url_timeout),
            trusted_url_hosts=tuple(
                h.strip().lower() for h in env.get("IMAGEREWARD_TRUSTED_URL_HOSTS", "").split(",") if h.strip()
            ),
            pair_calls=_whole_number(env, "IMAGEREWARD_PAIR_CALLS", cls.pair_calls),
            pairs_batch=_whole_number(env, "IMAGEREWARD_PAIRS_BATCH", cls.pairs_batch),
            max_body=_whole_number(env, "IMAGEREWARD_MAX_BODY_MB", DEFAULT_MAX_BODY_MB) * 2**20,
            heavy_calls=_whole_number(env, "IMAGEREWARD_HEAVY_CALLS", 0, minimum=0),
            compare_images=_whole_number(env, "IMAGEREWARD_COMPARE_IMAGES", cls.compare_images),
            verdicts_db=env.get("IMAGEREWARD_VERDICTS_DB") or None,
            verdicts_per_hour=_whole_number(env, "IMAGEREWARD_VERDICTS_PER_HOUR", cls.verdicts_per_hour),
            verdicts_max_bytes=_whole_number(env, "IMAGEREWARD_VERDICTS_MAX_MB", cls.verdicts_max_bytes // 2**20)
            * 2**20,
        )


def mcp_available() -> bool:
    """Whether the MCP server can run (the `mcp` package, Gradio's `mcp` extra); says so in the log if not."""
    try:
        import mcp  # noqa: F401
    except ImportError:
        log.warning("MCP is off: the mcp package is not installed (pip install 'gradio[mcp]'); the page works as usual")
        return False
    return True


@dataclass(frozen=True)
class LoadedModel:
    """The model, or why there is none; `label` is what the page shows either way."""

    model: ImageReward | None
    label: str
    error: str | None = None


def weights_name(model: str) -> str:
    """What the page and the API call the configured weights: a registry name as it is, a local path by its
    file or folder name only (a public page never shows the server's paths)."""
    if model in available_models():
        return model
    return Path(model.rstrip("/\\")).name or model


_PATH = re.compile(r"(?<![\w:/.~])(?:~|/)[^\s'\"(),;]*")


def without_paths(text: str) -> str:
    """`text` with every file-system path in it (absolute, or from `~`) cut to its last part: what a public page
    may show of an error message (URLs and hub repo ids are kept)."""

    def last_part(match: re.Match) -> str:
        path = match.group(0).rstrip(".:/")
        return (Path(path).name or "…") + match.group(0)[len(path) :]

    return _PATH.sub(last_part, text)


def model_label(model: ImageReward) -> str:
    """E.g. `ImageReward-v1.0 on cuda (float16)`; a model loaded from a path is named by its folder or file."""
    dtype = str(model.dtype).replace("torch.", "")
    return f"{weights_name(model.name)} on {model.device.type} ({dtype})"


def load_for_serving(settings: Settings) -> LoadedModel:
    """Loads the configured weights, or returns the reason they could not be loaded and what to do.
    Never substitutes other weights."""
    try:
        model = load(settings.model, device=settings.device, dtype=settings.dtype)
    except (ImageRewardError, OSError, ValueError, RuntimeError) as e:  # RuntimeError: e.g. no CUDA driver
        # The reason names files on the server: it goes to the log whole, to the page without the paths.
        log.error("the model %s could not be loaded: %s", settings.model, e)
        files = " and ".join(primary().files)
        advice = (
            f"Set IMAGEREWARD_MODEL to a local folder holding {files}, "
            "or to a registry name whose files are in the Hugging Face cache "
            f"(available: {', '.join(available_models())}), then restart the app."
        )
        name = weights_name(settings.model)
        return LoadedModel(
            None, f"{name} (not loaded)", f"The model could not be loaded: {without_paths(str(e))} {advice}"
        )
    if settings.zero_gpu:
        model.cuda_graphs = False  # each ZeroGPU call runs in a fresh worker: a capture would never be reused
    model.requires_grad_(False)  # served, never trained: an explanation's gradient goes to the pixels alone
    return LoadedModel(model, model_label(model))


def warm_up(model: ImageReward) -> None:
    """Scores blank images once per CUDA-graph bucket, so that the first visitors do not pay for lazy
    initialisation (graph capture, kernel selection, the decoding threads)."""
    from ..model.graphs import BUCKETS

    sizes = BUCKETS if model.device.type == "cuda" and model.cuda_graphs is not False else (2,)
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            paths = []
            for k in range(n):  # distinct pictures: the same picture twice would be encoded once
                paths.append(os.path.join(tmp, f"{n}-{k}.png"))
                Image.new("RGB", (224 + k, 224), (k, 255 - k, 128)).save(paths[-1])
            model.rewards("warm-up", paths)
    model.embedding_cache.clear()
