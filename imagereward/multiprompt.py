"""The prompts of one page request: each line of the prompt box scored against every image, or, with the box
empty, each image against the prompt its own file carries; and every one of them ranked."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import ImageError, ImageLoadError, InputError
from .judge_pool import JudgePool
from .ranking import Ranking
from .reward import ImageReward
from .serving import (
    DEFAULT_MAX_IMAGES,
    JudgeResults,
    PreparedRequest,
    Settings,
    allowed_file,
    gallery_paths,
    item_name,
    prepare_request,
    request_budget,
    score_and_finish,
    skipped_note,
    with_prompt,
)
from .tokenizer import MAX_PROMPT_CHARS

MAX_PROMPTS = 8


@dataclass(frozen=True)
class PromptGroup:
    """One prompt of a request and the gallery items scored against it."""

    prompt: str
    images: list[Any]


def plan_prompts(
    prompt_text: Any,
    images: Sequence[Any] | None,
    roots: Sequence[str | Path],
    max_prompts: int = MAX_PROMPTS,
    max_images: int = DEFAULT_MAX_IMAGES,
) -> tuple[list[PromptGroup], list[ImageError], list[str]]:
    """The prompts one request scores, and what could not be planned.

    Each non-empty line of the prompt box is a prompt, scored against every image (at most `max_prompts`,
    with a note past that). With an empty box, each image is scored against the prompt its file carries
    (`metadata.embedded_prompt`, read only from files inside `roots`, at most `max_images` of them), one group
    per distinct prompt; images that carry none are returned as errors. Only as much of the box is split into
    lines as `max_prompts` prompts can use (each is read to at most `MAX_PROMPT_CHARS` characters anyway).

    Raises:
        InputError: an empty box and no image that carries a prompt.
    """
    from .metadata import embedded_prompt

    text = prompt_text[: max_prompts * (MAX_PROMPT_CHARS + 1)] if isinstance(prompt_text, str) else ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    notes: list[str] = []
    if lines:
        if len(lines) > max_prompts:
            total = count_prompts(prompt_text) if len(text) < len(prompt_text) else len(lines)
            notes.append(f"Only the first {max_prompts} of {total:,} prompts were scored (one prompt per line).")
        shared = list(images or [])  # one list for every line: `rank_prompts` decodes it once
        return [PromptGroup(line, shared) for line in lines[:max_prompts]], [], notes
    real_roots = [os.path.realpath(r) for r in roots]
    groups: dict[str, PromptGroup] = {}
    errors: list[ImageError] = []
    items = list(images or [])
    if len(items) > max_images:
        notes.append(
            f"Only the first {max_images} of {len(items)} images were scored: the limit is {max_images} per request."
        )
        items = items[:max_images]
    raw = gallery_paths(items)
    for k, (item, path) in enumerate(zip(items, raw)):
        name = item_name(path, k)
        try:
            found = embedded_prompt(allowed_file(path, real_roots, name))
        except ImageLoadError as e:
            errors.append(e)
            continue
        if found is None:
            errors.append(ImageLoadError(name, "carries no prompt in its file, and the prompt box is empty"))
        else:
            groups.setdefault(found.prompt, PromptGroup(found.prompt, [])).images.append(item)
    if not groups:
        raise InputError("Type a prompt first: the score says how well each image fits the prompt.")
    if len(groups) > max_prompts:
        notes.append(f"Only the first {max_prompts} of {len(groups)} prompts the images carry were scored.")
    if len(groups) > 1:
        notes.append(f"The images carry {len(groups)} different prompts: each image is ranked against its own.")
    return list(groups.values())[:max_prompts], errors, notes


def count_prompts(text: str) -> int:
    """The non-blank lines of the prompt box (its prompts), however long it is: a pass over the text, as long as
    the one that received it."""
    return sum(1 for line in text.splitlines() if line and not line.isspace())


def rank_prompts(
    model: ImageReward,
    prompt_text: Any,
    images: Sequence[Any] | None,
    roots: Sequence[str | Path],
    settings: Settings,
    on_device: Callable[[PreparedRequest], JudgeResults] | None = None,
    judges: Sequence[str] = (),
    pool: JudgePool | None = None,
) -> tuple[list[tuple[str, Ranking]], list[str]]:
    """Every prompt of a request (`plan_prompts`) ranked, each through `prepare_request` (once per set of
    images: the lines of the box share one, checked and decoded once), `on_device` (default `score_prepared`
    here; the app passes its ZeroGPU function) and `finish_request`; and the notes to show once
    (the skipped images of the first ranking and of the plan, then each distinct note).

    Raises:
        InputError: nothing could be scored; the message says why.
    """
    groups, errors, notes = plan_prompts(prompt_text, images, roots, max_images=settings.max_images)
    # One budget for the whole request: every prompt's images count against it, so that splitting the images
    # over prompts (each file carrying its own) admits no more than one prompt would.
    budget = request_budget(model, settings.pixel_budget, judges, pool)
    rankings: list[tuple[str, Ranking]] = []
    prepared: dict[int, PreparedRequest] = {}  # by image list: the lines of the box share theirs
    for group in groups:
        try:
            if id(group.images) in prepared:
                request = with_prompt(prepared[id(group.images)], group.prompt)
            else:
                request = prepared[id(group.images)] = prepare_request(
                    model,
                    group.prompt,
                    group.images,
                    roots,
                    settings.max_images,
                    judges=judges,
                    pool=pool,
                    budget=budget,
                )
            ranking, group_notes = score_and_finish(model, request, on_device)
        except InputError as e:
            if len(groups) == 1:
                raise
            notes.append(f"Nothing was scored for the prompt “{group.prompt[:60]}”: {e}")
            continue
        rankings.append((group.prompt, ranking))
        notes += [n for n in group_notes if n not in notes]
    if not rankings:
        raise InputError("None of the images could be scored for any of the prompts.")
    first = rankings[0][1]
    return rankings, skipped_note(replace(first, failures=[*errors, *first.failures])) + notes
