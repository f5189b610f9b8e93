"""What the app needs besides widgets: settings from the environment, loading the model without ever
crashing the page, and one request turned into a `Ranking` safely.

A request is handled in three steps so that only the model's work runs on a (ZeroGPU) GPU worker:
`prepare_request` (CPU: check the prompt, refuse files the visitor did not upload, bound the work, decode),
`score_prepared` (the device), `finish_request` (CPU: rank, name what was skipped, collect notes).
Everything that crosses between them pickles.

Every request may be hostile. A gallery item is opened only if its path lies inside one of the allowed roots
(Gradio's upload folder, the app's examples); any other path is refused by a lexical check, before any
file-system call, with the same sentence whether it exists or not. The work is bounded: at most
`max_images` images, each at most `images.MAX_IMAGE_PIXELS` pixels by its header and resized to at most
`images.MAX_RESIZE_FACTOR` times the square the model sees (an aspect ratio of at most 64:1), all of a request
together (every prompt of it) at most `pixel_budget` decoded pixels (`PixelBudget`: each file counted once
per preprocessing however often it is referenced, and refused every time if refused once), each file decoded
once per preprocessing, and at most `tokenizer.MAX_PROMPT_CHARS` characters of the prompt tokenized.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from PIL import Image

from .errors import ImageError, ImageLoadError, ImageRewardError, InputError
from .factory import load
from .images import MAX_IMAGE_PIXELS, header_size
from .judge_pool import JudgePool
from .judges import SCORES
from .preprocessing import Preprocessing
from .pretrained import available_models
from .ranking import Ranking, add_judges, check_prompt, rank_results, unique_names
from .reward import ImageReward
from .scorer import DEFAULT_BATCH_SIZE, BatchedScorer, Decoded, Result
from .tokenizer import PromptTokens, encode_prompt

log = logging.getLogger(__name__)

DEFAULT_MODEL = "ImageReward-v1.0"
# The page's and the API's name for the loaded ImageReward weights among the judges.
PRIMARY = "ImageReward"
DEFAULT_MAX_IMAGES = DEFAULT_BATCH_SIZE
# Pixels one request may ask to decode, all images together: three images at the per-image limit, or
# about 64 generations of 2048x2048.
DEFAULT_PIXEL_BUDGET = 3 * MAX_IMAGE_PIXELS

NOT_UPLOADED = "not a file uploaded to this page; only images you upload (or the page's examples) can be scored"
EXPIRED = "this upload is no longer on the server (uploads are kept for a while only); upload the image again"


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
    if raw is None:
        return SCORES
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if names in ([], ["none"]):
        return ()
    unknown = [n for n in names if n not in SCORES]
    if unknown:
        raise ValueError(f"IMAGEREWARD_JUDGES names unknown judges {unknown}; use any of {list(SCORES)}, or none")
    return tuple(n for n in SCORES if n in names)


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


@dataclass(frozen=True)
class Settings:
    """The app's settings, from the environment (README, "Settings"):

    `IMAGEREWARD_MODEL` (registry name or local path), `IMAGEREWARD_DEVICE`, `IMAGEREWARD_DTYPE`,
    `IMAGEREWARD_MAX_IMAGES`, `IMAGEREWARD_JUDGES` (the judges visitors may add; see `parse_judges`),
    `IMAGEREWARD_DOWNLOAD_ROOT` (the other judges' files); on ZeroGPU the device defaults to CUDA. The limits
    of a public page: `IMAGEREWARD_PIXEL_BUDGET` (decoded pixels per request), `IMAGEREWARD_MAX_PENDING` (calls one visitor may have queued or running),
    `IMAGEREWARD_PROXY_HOPS` (trusted proxies in front of the app, whose `X-Forwarded-For` names the visitor:
    1 on a Space, else 0), `IMAGEREWARD_FILE_LIFETIME` (seconds uploads and downloads are kept),
    `IMAGEREWARD_UPLOAD_QUOTA_MB` (one visitor's uploads within that time) and `IMAGEREWARD_DISK_BUDGET_MB`
    (all uploads together)."""

    model: str = DEFAULT_MODEL
    device: str | None = None
    dtype: str | None = None
    max_images: int = DEFAULT_MAX_IMAGES
    pixel_budget: int = DEFAULT_PIXEL_BUDGET
    zero_gpu: bool = False
    judges: tuple[str, ...] = SCORES
    download_root: str | None = None
    max_pending: int = 4
    proxy_hops: int = 0
    file_lifetime: int = 900
    upload_quota: int = 1024 * 2**20
    disk_budget: int = 8192 * 2**20

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        zero_gpu = on_zero_gpu(env)
        on_space = bool(env.get("SPACE_ID"))
        return cls(
            model=env.get("IMAGEREWARD_MODEL") or cls.model,
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
        )


@dataclass(frozen=True)
class LoadedModel:
    """The model, or why there is none; `label` is what the page shows either way."""

    model: ImageReward | None
    label: str
    error: str | None = None


def display_name(model: str) -> str:
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
    return f"{display_name(model.name)} on {model.device.type} ({dtype})"


def load_for_serving(settings: Settings) -> LoadedModel:
    """Loads the configured weights, or returns the reason they could not be loaded and what to do.
    Never substitutes other weights."""
    try:
        model = load(settings.model, device=settings.device, dtype=settings.dtype)
    except (ImageRewardError, OSError, ValueError, RuntimeError) as e:  # RuntimeError: e.g. no CUDA driver
        # The reason names files on the server: it goes to the log only; the page says where to look.
        log.error("the model %s could not be loaded: %s", settings.model, e)
        advice = (
            "Set IMAGEREWARD_MODEL to a local folder holding ImageReward.pt and med_config.json, "
            "or to a registry name whose files are in the Hugging Face cache "
            f"(available: {', '.join(available_models())}), then restart the app."
        )
        name = display_name(settings.model)
        return LoadedModel(
            None, f"{name} (not loaded)", f"The model could not be loaded: {without_paths(str(e))} {advice}"
        )
    if settings.zero_gpu:
        model.cuda_graphs = False  # each ZeroGPU call runs in a fresh worker: a capture would never be reused
    # A request decodes in threads: warm worker processes were no faster for 8 images (BENCHMARKS.md), and
    # forking a web server's process is best avoided.
    model.decode_processes = 0
    return LoadedModel(model, model_label(model))


def warm_up(model: ImageReward) -> None:
    """Scores blank images once per CUDA-graph bucket, so that the first visitors do not pay for lazy
    initialisation (graph capture, kernel selection, the decoding threads)."""
    from .graphs import BUCKETS

    sizes = BUCKETS if model.device.type == "cuda" and model.cuda_graphs is not False else (2,)
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            paths = []
            for k in range(n):  # distinct pictures: the same picture twice would be encoded once
                paths.append(os.path.join(tmp, f"{n}-{k}.png"))
                Image.new("RGB", (224 + k, 224), (k, 255 - k, 128)).save(paths[-1])
            model.rewards("warm-up", paths)
    model.embedding_cache.clear()


# ------------------------------------------------------------------------------------------- requests
def gallery_paths(value: Sequence[Any] | None) -> list[Any]:
    """The path of each item of a `gr.Gallery(type="filepath")` value (`[(path, caption), ...]`, plain
    paths, or the API's file dicts), as sent: nothing is opened or checked here."""
    paths = []
    for item in value or []:
        path = item[0] if isinstance(item, (list, tuple)) and item else item
        if isinstance(path, dict):
            path = path.get("path") or (path.get("image") or {}).get("path")
        paths.append(path)
    return paths


def item_name(raw: Any, index: int) -> str:
    """The name an item of a request goes by: the file name of its path as sent (nothing is opened)."""
    text = raw if isinstance(raw, str) else ""
    return text.replace("\\", "/").rsplit("/", 1)[-1] or f"image {index + 1}"


def allowed_file(raw: Any, roots: Sequence[str], name: str) -> str:
    """The path of a gallery item if it lies inside one of `roots` (real paths of folders), else refused.

    The first check is lexical, so a path outside the roots is refused before any file-system call can tell
    whether it exists; then links are resolved and the check repeated.

    Raises:
        ImageLoadError: the path is not a string, not absolute, or not inside a root.
    """
    if not isinstance(raw, str) or not raw or "\x00" in raw or not os.path.isabs(raw):
        raise ImageLoadError(name, NOT_UPLOADED)
    path = os.path.normpath(raw)
    if not _inside(path, roots) or not _inside(os.path.realpath(path), roots):
        raise ImageLoadError(name, NOT_UPLOADED)
    return path


def _inside(path: str, roots: Sequence[str]) -> bool:
    return any(path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


class PixelBudget:
    """The pixels one request may decode, all its files and prompts together.

    A file costs its width x height (from its header) once per preprocessing the request decodes it with
    (ImageReward's, and PickScore's or HPSv2.1's own when they are asked for), and only the first time it
    appears: a file referenced again is neither counted nor checked again, and a file refused once is refused
    every time it appears, with the same reason. Every file is also checked against each preprocessing's
    resize bound (`Preprocessing.check_size`) before anything is decoded.

    Args:
        pixels: the budget.
        preprocessings: how the request's judges read pixels.
    """

    def __init__(self, pixels: int, preprocessings: Sequence[Preprocessing]) -> None:
        self.pixels = pixels
        self.left = pixels
        self.preprocessings = list(dict.fromkeys(preprocessings))
        self._seen: dict[str, ImageLoadError | None] = {}

    def admit(self, path: str, name: str) -> None:
        """Counts an allowed file against the budget (see the class doc).

        Raises:
            ImageLoadError: unreadable, expired, too large, its resize too large, or over what is left.
        """
        if path in self._seen:
            refused = self._seen[path]
            if refused is not None:
                raise refused.renamed(name)
            return
        try:
            if not os.path.lexists(path):
                raise ImageLoadError(name, EXPIRED)
            width, height = header_size(path, name)
            for preprocessing in self.preprocessings:
                preprocessing.check_size(width, height, name)
            cost = width * height * len(self.preprocessings)
            if cost > self.left:
                raise ImageLoadError(
                    name,
                    f"the request's budget of {self.pixels:,} decoded pixels was used up by the images before it "
                    "(each image counts once for ImageReward and once more for each other judge that reads "
                    "pixels its own way); score it in another request",
                )
        except ImageLoadError as e:
            self._seen[path] = e
            raise
        self._seen[path] = None
        self.left -= cost


@dataclass
class PreparedRequest:
    """A request checked and decoded on the CPU, ready for the device: what crosses to a ZeroGPU worker."""

    tokens: PromptTokens
    names: list[str]
    sources: list[str]
    decoded: list[Decoded | ImageLoadError]
    refused: list[ImageError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    prompt: str = ""
    judges: tuple[str, ...] = ()  # the other judges asked for, besides ImageReward
    # The same images as other judges' preprocessing makes them (PickScore, HPSv2.1), decoded here too.
    pixels: dict[Preprocessing, list[Decoded | ImageLoadError]] = field(default_factory=dict)


def request_budget(
    model: ImageReward, pixel_budget: int, judges: Sequence[str] = (), pool: JudgePool | None = None
) -> PixelBudget:
    """The `PixelBudget` of one request for ImageReward and the `judges` asked for (from `pool`, which loads
    them on first use): the preprocessings of the judges that could be loaded."""
    loaded = [pool.get(name) for name in judges] if pool is not None else []
    return PixelBudget(
        pixel_budget, [model.preprocessing, *(j.preprocessing for j in loaded if not isinstance(j, str))]
    )


def prepare_request(
    model: ImageReward,
    prompt: Any,
    images: Sequence[Any] | None,
    roots: Sequence[str | Path],
    max_images: int = DEFAULT_MAX_IMAGES,
    pixel_budget: int = DEFAULT_PIXEL_BUDGET,
    judges: Sequence[str] = (),
    pool: JudgePool | None = None,
    budget: PixelBudget | None = None,
) -> PreparedRequest:
    """Checks a request and decodes what may be decoded (see the module doc for the rules), once per
    preprocessing among ImageReward and the `judges` asked for (from `pool`, which loads them on first use).

    Args:
        budget: the request's `PixelBudget`, shared by all its prompts; default a new one of `pixel_budget`.

    Raises:
        InputError: no prompt or no images.
    """
    start = time.perf_counter()
    tokens = encode_prompt(check_prompt(prompt))
    raw = gallery_paths(images)
    if not raw:
        raise InputError("Add at least one image to score.")
    notes = []
    if len(raw) > max_images:
        notes.append(
            f"Only the first {max_images} of {len(raw)} images were scored: the limit is {max_images} per "
            "request. Score the rest in another run."
        )
        raw = raw[:max_images]
    if budget is None:
        budget = request_budget(model, pixel_budget, judges, pool)
    names = unique_names([item_name(r, i) for i, r in enumerate(raw)])
    real_roots = [os.path.realpath(r) for r in roots]
    refused: list[ImageError] = []
    admitted: list[tuple[str, str]] = []
    for item, name in zip(raw, names):
        try:
            path = allowed_file(item, real_roots, name)
            budget.admit(path, name)
        except ImageLoadError as e:
            refused.append(e)
            continue
        admitted.append((path, name))
    sources = [p for p, _ in admitted]
    admitted_names = [n for _, n in admitted]
    decoded = model.decode(sources, admitted_names)
    pixels: dict[Preprocessing, list[Decoded | ImageLoadError]] = {}
    for name in judges if pool is not None else ():
        judge = pool.get(name)  # type: ignore[union-attr]
        if not isinstance(judge, str) and judge.preprocessing not in (model.preprocessing, *pixels):
            pixels[judge.preprocessing] = judge.decode(sources, admitted_names)
    return PreparedRequest(
        tokens,
        admitted_names,
        sources,
        decoded,
        refused,
        notes,
        seconds=time.perf_counter() - start,
        prompt=prompt,
        judges=tuple(judges),
        pixels=pixels,
    )


def chosen_judges(requested: Any, offered: Sequence[str]) -> tuple[str, ...]:
    """The judges a request asks for besides ImageReward, in the offered order.

    Raises:
        InputError: not a list of names, or a name that is not offered (the message lists the offered ones).
    """
    if requested in (None, "", []):
        return ()
    if isinstance(requested, str):
        requested = [requested]
    if not isinstance(requested, (list, tuple)) or not all(isinstance(n, str) for n in requested):
        raise InputError(f"Judges must be a list of names; offered here: {', '.join(offered) or 'none'}.")
    unknown = [n for n in requested if n not in offered and n != PRIMARY]
    if unknown:
        raise InputError(
            f"Unknown judge{'s' if len(unknown) > 1 else ''} {', '.join(map(str, unknown))[:200]}; "
            f"offered here: {', '.join(offered) or 'none besides ImageReward'}."
        )
    return tuple(n for n in offered if n in requested)


def gpu_duration(request: PreparedRequest) -> int:
    """Seconds to ask ZeroGPU for (`@spaces.GPU(duration=...)`): the weights' move to the GPU and a margin,
    plus the images (a few ms each on the GPU; generous for a cold one), per judge."""
    return (1 + len(request.judges)) * (10 + (len(request.decoded) + 3) // 4)


# What a request's judges computed: ImageReward's results under PRIMARY, then each other judge's results, or
# one sentence saying why that judge is unavailable.
JudgeResults = dict[str, "list[Result] | str"]


def score_prepared(model: ImageReward, request: PreparedRequest, pool: JudgePool | None = None) -> JudgeResults:
    """The device half: each judge's scores (or errors) of a prepared request's decoded images, ImageReward's
    first. The other judges come from `pool` and score the same decoded pixels (nothing is decoded again)."""
    out: JudgeResults = {PRIMARY: []}
    if not request.decoded:
        return out
    out[PRIMARY] = model.score_decoded(request.tokens, request.decoded, request.names)
    for name in request.judges:
        judge = pool.get(name) if pool is not None else f"{name} is not offered here"
        out[name] = (
            judge
            if isinstance(judge, str)
            else judge.score_decoded(request.prompt, _pixels_for(judge, model, request), request.names)
        )
    return out


def _pixels_for(judge: BatchedScorer, model: ImageReward, request: PreparedRequest) -> list[Decoded | ImageLoadError]:
    """The request's images as `judge` reads them: decoded by `prepare_request`, or here if it could not know
    the judge (its files were admitted there)."""
    if judge.preprocessing == model.preprocessing:
        return request.decoded
    if judge.preprocessing not in request.pixels:
        request.pixels[judge.preprocessing] = judge.decode(request.sources, request.names)
    return request.pixels[judge.preprocessing]


def finish_request(request: PreparedRequest, results: JudgeResults, seconds: float) -> tuple[Ranking, list[str]]:
    """Ranks ImageReward's results, adds every other judge's scores and ranks, and collects the notes to show
    (besides the skipped images, in `failures`).

    Raises:
        InputError: none of the images could be read or scored.
    """
    ranking = rank_results(
        results[PRIMARY], request.names, request.sources, request.tokens, request.seconds + seconds, request.refused
    )
    others = {name: r for name, r in results.items() if name != PRIMARY and not isinstance(r, str)}
    unavailable = [f"{r}." for name, r in results.items() if isinstance(r, str)]
    if others:
        ranking = add_judges(ranking, PRIMARY, others, request.names)
    judge_notes = [f"{judge} could not score {e.name}: {e.reason}." for judge, e in ranking.judge_failures]
    return ranking, request.notes + prompt_notes(ranking) + precision_notes(ranking) + unavailable + judge_notes


def rank_request(
    model: ImageReward,
    prompt: Any,
    images: Sequence[Any] | None,
    roots: Sequence[str | Path],
    max_images: int = DEFAULT_MAX_IMAGES,
    pixel_budget: int = DEFAULT_PIXEL_BUDGET,
    on_device: Callable[[PreparedRequest], JudgeResults] | None = None,
    judges: Sequence[str] = (),
    pool: JudgePool | None = None,
) -> tuple[Ranking, list[str]]:
    """`prepare_request`, then `score_and_finish` (`on_device`: the app passes its ZeroGPU function)."""
    request = prepare_request(model, prompt, images, roots, max_images, pixel_budget, judges, pool)
    return score_and_finish(model, request, on_device)


def score_and_finish(
    model: ImageReward, request: PreparedRequest, on_device: Callable[[PreparedRequest], JudgeResults] | None = None
) -> tuple[Ranking, list[str]]:
    """`on_device` (default `score_prepared` in this process), then `finish_request`."""
    start = time.perf_counter()
    results = on_device(request) if on_device is not None else score_prepared(model, request)
    return finish_request(request, results, time.perf_counter() - start)


def with_prompt(request: PreparedRequest, prompt: str) -> PreparedRequest:
    """The same checked and decoded images against another prompt: nothing is opened or decoded again (the
    decoding time stays with the request that did it)."""
    return replace(request, tokens=encode_prompt(check_prompt(prompt)), seconds=0.0, prompt=prompt)


def prompt_notes(ranking: Ranking) -> list[str]:
    """A note when the model reads only part of the prompt."""
    if not ranking.prompt_truncated:
        return []
    if ranking.prompt_complete:
        return [
            f"The prompt is {ranking.prompt_tokens} tokens long; the model reads only the first 35, "
            "so the rest did not count."
        ]
    return [
        "The prompt is longer than the model reads; the model reads only the first 35 tokens, so the rest did not count."
    ]


def precision_notes(ranking: Ranking) -> list[str]:
    """A note naming the images whose score was computed in another precision than the rest."""
    precisions = {item.precision for item in ranking.ranked}
    if len(precisions) < 2:
        return []
    usual = max(precisions, key=lambda p: sum(item.precision == p for item in ranking.ranked))
    other = [item for item in ranking.ranked if item.precision != usual]
    names = ", ".join(item.name for item in other)
    return [
        f"{names}: {usual} overflowed, so {'this was' if len(other) == 1 else 'these were'} scored in {other[0].precision}."
    ]


def skipped_note(ranking: Ranking) -> list[str]:
    """One sentence naming the images that were skipped and why."""
    if not ranking.failures:
        return []
    n = len(ranking.failures)
    names = "; ".join(f"{f.name} ({f.reason})" for f in ranking.failures)
    return [
        f"{n} image{'s' if n != 1 else ''} could not be scored and {'were' if n != 1 else 'was'} skipped: {names}. The others are ranked."
    ]


def api_response(ranking: Ranking, notes: Sequence[str], label: str) -> dict[str, Any]:
    """The `/score` endpoint's JSON: everything the page shows.

    `{"ranked": [{"rank", "name", "score", "precision"}, ...] best first, "skipped": [{"name", "reason"}],
    "notes": [sentences], "model": label, "seconds": float}`; with other judges each row also has `"scores"`
    and `"ranks"` by judge, and the response `"judges"` (names, ImageReward first) and `"agreement"`:
    `{judge: {"same": pairs it orders as ImageReward does, "pairs": pairs both order strictly}}`."""
    response: dict[str, Any] = {
        "ranked": [item.row() for item in ranking.ranked],
        "skipped": [{"name": f.name, "reason": f.reason} for f in ranking.failures],
        "notes": list(notes),
        "model": label,
        "seconds": round(ranking.seconds, 4),
    }
    if ranking.judges:
        response["judges"] = list(ranking.judges)
        response["agreement"] = {j: {"same": same, "pairs": n} for j, (same, n) in ranking.agreement().items()}
    return response


def shown_rows(ranked: Any, table: Any, roots: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The ranking a page shows, read back from its gallery (images, best first) and table (columns `image`,
    `score`): `{"name", "score", "path"}` per image. These values come from the client, so only files inside
    `roots` are kept."""
    records = table.to_dict("records") if hasattr(table, "to_dict") else []
    real_roots = [os.path.realpath(r) for r in roots]
    rows = []
    for k, (path, record) in enumerate(zip(gallery_paths(ranked), records)):
        try:
            path = allowed_file(path, real_roots, f"image {k + 1}")
            rows.append({"name": str(record["image"]), "score": float(record["score"]), "path": path})
        except (ImageLoadError, KeyError, TypeError, ValueError):
            continue
    return rows


def reordered(ranked: Any, table: Any, judge: str, roots: Sequence[str | Path]) -> tuple[list, dict[str, Any]]:
    """The shown gallery and table (read back from the client; only files inside `roots` are kept) in
    `judge`'s order: by its rank column (`rank` for ImageReward, `<judge> rank` for the others; images it
    could not score last), captions showing its rank and score.

    Returns:
        (gallery items, table value with headers and rows).
    """
    import math

    records = table.to_dict("records") if hasattr(table, "to_dict") else []
    headers = [str(h) for h in getattr(table, "columns", [])]
    rank_col, score_col = ("rank", "score") if judge == PRIMARY else (f"{judge} rank", f"{judge} score")
    real_roots = [os.path.realpath(r) for r in roots]
    rows = []
    for k, (path, record) in enumerate(zip(gallery_paths(ranked), records)):
        try:
            rows.append((allowed_file(path, real_roots, f"image {k + 1}"), record))
        except ImageLoadError:
            continue

    def number(value: Any) -> float | None:
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
        return None if math.isnan(value) else value

    rows.sort(key=lambda row: (number(row[1].get(rank_col)) is None, number(row[1].get(rank_col)) or 0))
    gallery = []
    for path, record in rows:
        rank, score = number(record.get(rank_col)), number(record.get(score_col))
        name = str(record.get("image", ""))
        gallery.append(
            (path, f"#{int(rank)} · {score:.2f} · {name}" if rank and score is not None else f"not scored · {name}")
        )
    data = [
        [None if isinstance(v, float) and math.isnan(v) else v for v in (r.get(h) for h in headers)] for _, r in rows
    ]
    return gallery, {"headers": headers, "data": data}


def read_examples(folder: Path) -> list[list[Any]]:
    """`examples/examples.json` as rows of [prompt, [image paths]] for `gr.Examples`."""
    entries = json.loads((folder / "examples.json").read_text(encoding="utf-8"))
    return [[e["prompt"], [str(folder / "images" / name) for name in e["images"]]] for e in entries]
