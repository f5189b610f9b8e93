"""One page or `/score` request's steps: its prompts planned, its files admitted and decoded once (`intake`),
the model's work done in one device call, and every prompt ranked.

A request is handled in three steps so that only the model's work runs on a (ZeroGPU) GPU worker:
`prepare_request` (CPU: plan the prompts, admit the files, decode every file once per preprocessing its judges
need), `score_prepared` (the device: every judge's scores for every prompt) and `finish` (CPU: rank each
prompt, name what was skipped, collect the notes). Everything that crosses between them pickles.

The prompts: each non-empty line of the prompt box, scored against every image; or, with the box empty, each
image against the prompt its own file carries (one prompt per distinct prompt). At most `max_images` images
and `MAX_PROMPTS` prompts, and at most `tokenizer.MAX_PROMPT_CHARS` characters of each prompt tokenized; what
the files may cost is `intake`'s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from ..errors import ImageError, ImageLoadError, InputError
from ..images.decoding import Decoder, Decoding
from ..images.transforms import Preprocessing
from ..judges import primary
from ..judges.base import Result
from ..judges.imagereward import ImageReward
from ..judges.reading import Reading
from ..model.tokenizer import MAX_PROMPT_CHARS, PromptTokens, encode_prompt
from ..ranking import Ranking, add_judges, check_prompt, rank_results, unique_names
from .intake import Intake, PixelBudget, Roots, gallery_paths, sent_name
from .judge_pool import JudgePool
from .settings import Settings

MAX_PROMPTS = 8


# ---------------------------------------------------------------------------------------- the prompts
@dataclass(frozen=True)
class PromptGroup:
    """One prompt of a request and the gallery items scored against it (their indices)."""

    prompt: str
    images: list[int]


def count_prompts(text: str) -> int:
    """The non-blank lines of the prompt box (its prompts), however long it is: a pass over the text, as long as
    the one that received it."""
    return sum(1 for line in text.splitlines() if line and not line.isspace())


def plan_prompts(
    prompt_text: Any, raw: Sequence[Any], roots: Roots | Sequence[str | Path], max_prompts: int = MAX_PROMPTS
) -> tuple[list[PromptGroup], list[ImageError], list[str]]:
    """The prompts one request scores, over the gallery items' paths `raw`, and what could not be planned.

    Each non-empty line of the prompt box is a prompt, scored against every image (at most `max_prompts`,
    with a note past that; only as much of the box is split into lines as `max_prompts` prompts can use,
    each read to at most `MAX_PROMPT_CHARS` characters anyway). With an empty box, each image is scored
    against the prompt its file carries (`metadata.embedded_prompt`, read only from files inside `roots`), one
    group per distinct prompt; images that carry none are returned as errors.

    Raises:
        InputError: an empty box and no image that carries a prompt.
    """
    from ..images.metadata import embedded_prompt

    text = prompt_text[: max_prompts * (MAX_PROMPT_CHARS + 1)] if isinstance(prompt_text, str) else ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    notes: list[str] = []
    if lines:
        if len(lines) > max_prompts:
            total = count_prompts(prompt_text) if len(text) < len(prompt_text) else len(lines)
            notes.append(f"Only the first {max_prompts} of {total:,} prompts were scored (one prompt per line).")
        everything = list(range(len(raw)))
        return [PromptGroup(line, everything) for line in lines[:max_prompts]], [], notes
    roots = Roots.of(roots)
    groups: dict[str, PromptGroup] = {}
    errors: list[ImageError] = []
    for k, path in enumerate(raw):
        name = sent_name(path, k)
        try:
            found = embedded_prompt(roots.allowed(path, name))
        except ImageLoadError as e:
            errors.append(e)
            continue
        if found is None:
            errors.append(ImageLoadError(name, "carries no prompt in its file, and the prompt box is empty"))
        else:
            groups.setdefault(found.prompt, PromptGroup(found.prompt, [])).images.append(k)
    if not groups:
        raise InputError("Type a prompt first: the score says how well each image fits the prompt.")
    if len(groups) > max_prompts:
        notes.append(f"Only the first {max_prompts} of {len(groups)} prompts the images carry were scored.")
    if len(groups) > 1:
        notes.append(f"The images carry {len(groups)} different prompts: each image is ranked against its own.")
    return list(groups.values())[:max_prompts], errors, notes


# ------------------------------------------------------------------------------------- the three steps
@dataclass
class Prompt:
    """One prompt of a prepared request: its tokens, the request's images it is scored against (indices into
    `Request.names`), and its gallery items that were refused."""

    text: str
    tokens: PromptTokens
    images: list[int]
    refused: list[ImageError] = field(default_factory=list)
    readings: dict[str, Reading] = field(default_factory=dict)  # what each judge read of it, by label


@dataclass
class Request:
    """A request checked and decoded on the CPU, ready for the device: what crosses to a ZeroGPU worker.

    `pixels` holds every admitted image as each preprocessing of the request's judges makes it (ImageReward's
    first), decoded once; `unplanned` the images no prompt could be found for; `seconds` the CPU half's time."""

    prompts: list[Prompt]
    names: list[str]
    sources: list[str]
    pixels: dict[Preprocessing, list[Decoding]]
    judges: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)
    unplanned: list[ImageError] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Scores:
    """What the device computed for a request: by judge label (the primary judge's first), one list of
    results per prompt, or one sentence saying why that judge is unavailable; and each prompt's seconds."""

    results: dict[str, list[list[Result]] | str]
    seconds: list[float]


def prepare_request(
    model: ImageReward,
    prompt_text: Any,
    images: Sequence[Any] | None,
    roots: Roots | Sequence[str | Path],
    settings: Settings,
    judges: Sequence[str] = (),
    pool: JudgePool | None = None,
    decoder: Decoder | None = None,
) -> Request:
    """Plans a request's prompts, admits its files and decodes what may be decoded (`intake.Intake`), once
    per preprocessing among ImageReward and the `judges` asked for (from `pool`, which loads them on first use).

    Args:
        model: ImageReward, the ranking judge.
        prompt_text: the prompt box (a prompt per line; empty: each image's own).
        images: the gallery as the page or the API sends it (`gallery_paths`).
        roots: the only folders files may be named in.
        settings: the limits (`max_images`, `pixel_budget`).
        judges: the other judges asked for, by name; `pool` holds them.
        decoder: the decoding threads to use (default: threads of its own, shut down after).

    Returns:
        The request, ready for the device (it pickles).

    Raises:
        InputError: no prompt, or no images.
    """
    start = time.perf_counter()
    raw = gallery_paths(images)
    notes = []
    if len(raw) > settings.max_images:
        notes.append(too_many_images(len(raw), settings.max_images))
        raw = raw[: settings.max_images]
    if isinstance(prompt_text, str) and prompt_text.strip() and not raw:
        raise InputError("Add at least one image to score.")
    groups, unplanned, plan_notes = plan_prompts(prompt_text, raw, roots)
    if not raw:
        raise InputError("Add at least one image to score.")
    loaded, _ = split_judges(pool, judges)
    kinds = [model.preprocessing, *(j.preprocessing for j in loaded.values())]
    names = unique_names([sent_name(r, i) for i, r in enumerate(raw)])
    intake = Intake(roots, PixelBudget(settings.pixel_budget, kinds))
    for k in sorted({k for g in groups for k in g.images}):
        intake.take(k, raw[k], names[k])
    pixels = intake.decode(decoder)
    readers = [model, *loaded.values()]
    prompts = [
        Prompt(
            check_prompt(g.prompt),
            encode_prompt(g.prompt),
            [intake.slots[k] for k in g.images if k in intake.slots],
            [intake.refused[k] for k in g.images if k in intake.refused],
            {judge.spec.label: judge.reading(g.prompt) for judge in readers},
        )
        for g in groups
    ]
    return Request(
        prompts,
        intake.names,
        intake.sources,
        pixels,
        judges=tuple(judges),
        notes=notes + plan_notes,
        unplanned=unplanned,
        seconds=time.perf_counter() - start,
    )


def score_prepared(model: ImageReward, request: Request, pool: JudgePool | None = None) -> Scores:
    """The device half: every judge's scores (or errors) of every prompt's decoded images, ImageReward's first.
    The other judges come from `pool` and score the same decoded pixels (nothing is decoded again)."""
    label = primary().label
    results: dict[str, list[list[Result]] | str] = {label: []}
    seconds = []
    judges, unavailable = split_judges(pool, request.judges)
    for name in request.judges:
        results[judges[name].spec.label if name in judges else name] = [] if name in judges else unavailable[name]
    for prompt in request.prompts:
        start = time.perf_counter()
        names = [request.names[i] for i in prompt.images]
        pixels = [request.pixels[model.preprocessing][i] for i in prompt.images]
        results[label].append(model.score_decoded(prompt.tokens, pixels, names) if pixels else [])  # type: ignore[union-attr]
        for judge in judges.values():
            theirs = [request.pixels[judge.preprocessing][i] for i in prompt.images]
            results[judge.spec.label].append(judge.score_decoded(prompt.text, theirs, names) if theirs else [])  # type: ignore[union-attr]
        seconds.append(time.perf_counter() - start)
    return Scores(results, seconds)


def finish(request: Request, scores: Scores) -> tuple[list[tuple[str, Ranking]], list[str]]:
    """Ranks every prompt's images by ImageReward, adds every other judge's scores and ranks, and collects the
    notes to show once: the skipped images (of the first prompt, and those no prompt was found for), then each
    distinct note.

    Raises:
        InputError: nothing could be scored; the message says why.
    """
    label = primary().label
    rankings: list[tuple[str, Ranking]] = []
    notes = list(request.notes)
    unavailable = [f"{r}." for r in scores.results.values() if isinstance(r, str)]
    for k, prompt in enumerate(request.prompts):
        names = [request.names[i] for i in prompt.images]
        sources = [request.sources[i] for i in prompt.images]
        seconds = scores.seconds[k] + (request.seconds if k == 0 else 0.0)  # decoding counts with the first
        try:
            ranking = rank_results(scores.results[label][k], names, sources, prompt.tokens, seconds, prompt.refused)  # type: ignore[index]
        except InputError as e:
            if len(request.prompts) == 1:
                raise
            notes.append(f"Nothing was scored for the prompt “{prompt.text[:60]}”: {e}")
            continue
        others = {j: r[k] for j, r in scores.results.items() if j != label and not isinstance(r, str)}
        if others:
            ranking = add_judges(ranking, label, others, names)
        ranking = replace(ranking, readings=prompt.readings)
        judge_notes = [f"{judge} could not score {e.name}: {e.reason}." for judge, e in ranking.judge_failures]
        found = prompt_notes(ranking) + precision_notes(ranking) + unavailable + judge_notes
        notes += [n for n in found if n not in notes]
        rankings.append((prompt.text, ranking))
    if not rankings:
        raise InputError("None of the images could be scored for any of the prompts.")
    first = rankings[0][1]
    return rankings, skipped_note(replace(first, failures=[*request.unplanned, *first.failures])) + notes


def rank_request(
    model: ImageReward,
    prompt_text: Any,
    images: Sequence[Any] | None,
    roots: Roots | Sequence[str | Path],
    settings: Settings | None = None,
    judges: Sequence[str] = (),
    pool: JudgePool | None = None,
    decoder: Decoder | None = None,
) -> tuple[list[tuple[str, Ranking]], list[str]]:
    """A whole request in this process: `prepare_request`, `score_prepared`, `finish` (the page runs the device
    step through its own device function instead).

    Args:
        model, prompt_text, images, roots, settings, judges, pool, decoder: as `prepare_request` (`settings`
            default `Settings()`).

    Returns:
        (every prompt with its ranking, the notes to show once).

    Raises:
        InputError: nothing to score (no prompt, no images, none readable); the message says what to do.
    """
    request = prepare_request(model, prompt_text, images, roots, settings or Settings(), judges, pool, decoder)
    return finish(request, score_prepared(model, request, pool))


def split_judges(pool: JudgePool | None, names: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """`JudgePool.split` of `names`; without a pool, none offered."""
    if pool is None:
        return {}, {name: f"{name} is not offered here" for name in names}
    return pool.split(names)


def too_many_images(sent: int, limit: int) -> str:
    """The note of a request that sent more images than it may."""
    return f"Only the first {limit} of {sent} images were scored: the limit is {limit} per request. Score the rest in another run."


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
    unknown = [n for n in requested if n not in offered and n != primary().label]
    if unknown:
        raise InputError(
            f"Unknown judge{'s' if len(unknown) > 1 else ''} {', '.join(map(str, unknown))[:200]}; "
            f"offered here: {', '.join(offered) or 'none besides ' + primary().label}."
        )
    return tuple(n for n in offered if n in requested)


def gpu_duration(request: Request) -> int:
    """Seconds to ask ZeroGPU for (`@spaces.GPU(duration=...)`): the weights' move to the GPU and a margin,
    plus the images (a few ms each on the GPU; generous for a cold one), per judge."""
    return (1 + len(request.judges)) * (10 + (len(request.names) + 3) // 4)


# ------------------------------------------------------------------------------------------- the notes
def prompt_notes(ranking: Ranking) -> list[str]:
    """A note when the model reads only part of the prompt."""
    if not ranking.prompt_truncated:
        return []
    if ranking.prompt_complete:
        return [
            f"The prompt is {ranking.prompt_tokens} tokens long; the model reads only the first "
            f"{primary().prompt_tokens}, its start and end markers included ({primary().prompt_tokens - 2} of the "
            f"prompt's own {ranking.prompt_tokens - 2}), so the rest, greyed under the prompt, did not count."
        ]
    return [
        "The prompt is longer than the model reads; the model reads only the first "
        f"{primary().prompt_tokens} tokens, so the rest did not count."
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
