"""`/score_pairs`: (prompt, image) pairs, each image with its own prompt, as a fine-tuning pipeline sends them.

A call is checked and decoded on the CPU as a `/score` request is (`prepare_pairs`: the same `intake.Intake`; images may also come as URLs or base64, `remote`); then the calls Gradio's batching
merged are scored in one device call (`score_pair_calls`: every pair of every call in one `score_pairs` per
judge, so one image-encoder pass runs over all their images in batches of the model's `batch_size`), and each
call gets its rows back in its own order (`pair_answer`): one row per pair (`rows.pair_row`), `error` in place
of the scores for a pair that could not be scored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..errors import ImageLoadError
from ..images.decoding import Decoder, Decoding
from ..judges import primary
from ..judges.base import Result, Scored
from ..judges.imagereward import ImageReward
from ..ranking import unique_names
from ..rows import pair_row
from .intake import Intake, PixelBudget, Roots, gallery_paths, sent_name
from .judge_pool import JudgePool
from .remote import NOT_SENT, Receiver, is_remote, remote_name
from .scoring import split_judges
from .settings import Settings


@dataclass(eq=False)
class PairCall:
    """One `/score_pairs` call checked and decoded: what crosses to a ZeroGPU worker (it pickles).

    `prompts` and `names` hold every pair, in the call's order; `slots[k]` is pair k's index among the decoded
    images (None when it was refused: `errors[k]` says why); `pixels` the decoded images by preprocessing."""

    prompts: list[str]
    names: list[str]
    slots: list[int | None]
    errors: dict[int, str]
    pixels: dict[Any, list[Decoding]]
    judges: tuple[str, ...] = ()
    problem: str | None = None  # the whole call was refused (the rest is empty)
    seconds: float = 0.0


@dataclass
class PairScores:
    """A call's results by judge label (the primary judge's first), one per decoded image, or one sentence
    saying why that judge is unavailable."""

    results: dict[str, list[Result] | str] = field(default_factory=dict)


def refused_call(problem: str) -> PairCall:
    return PairCall([], [], [], {}, {}, problem=problem)


def prepare_pairs(
    model: ImageReward,
    prompts: Any,
    images: Any,
    roots: Roots | Sequence[str],
    settings: Settings,
    receiver: Receiver,
    judges: Sequence[str] = (),
    pool: JudgePool | None = None,
    decoder: Decoder | None = None,
) -> PairCall:
    """Checks and decodes one call. Never raises: a call that cannot be taken at all (not two lists of equal
    length, too many pairs) comes back with `problem` set; a pair that cannot be scored with its `error`."""
    start = time.perf_counter()
    if not isinstance(prompts, list) or not isinstance(images, list):
        return refused_call("Send `prompts` and `images` as two lists of equal length, one prompt per image.")
    if len(prompts) != len(images):
        return refused_call(f"{len(prompts)} prompts for {len(images)} images: send one prompt per image.")
    if not images:
        return refused_call("Send at least one (prompt, image) pair.")
    if len(images) > settings.max_images:
        return refused_call(
            f"{len(images)} pairs in one call: the limit is {settings.max_images}; split them over several calls "
            "(calls sent together are scored together)."
        )
    raw = gallery_paths(images)
    names = unique_names(
        [remote_name(item, k) if is_remote(item) else sent_name(r, k) for k, (item, r) in enumerate(zip(images, raw))]
    )
    loaded, _ = split_judges(pool, judges)
    kinds = [model.preprocessing, *(j.preprocessing for j in loaded.values())]
    intake = Intake(roots, PixelBudget(settings.pixel_budget, kinds))
    with receiver.receive(images) as received:
        for k, prompt in enumerate(prompts):
            if not isinstance(prompt, str) or not prompt.strip():
                intake.refuse(k, ImageLoadError(names[k], "its prompt is empty: each image needs its prompt"))
            elif k in received.refused:
                intake.refuse(k, received.refused[k].renamed(names[k]))
            else:  # a file this call's receiver wrote, or an upload (any other path: this route's own sentence)
                path = received.files[k].path if k in received.files else None
                intake.take(k, raw[k], names[k], path, refusal=NOT_SENT)
        pixels = intake.decode(decoder)
    slots = [intake.slots.get(k) for k in range(len(prompts))]
    errors = {k: e.reason for k, e in intake.refused.items()}
    texts = [p if isinstance(p, str) else "" for p in prompts]
    return PairCall(texts, names, slots, errors, pixels, tuple(judges), seconds=time.perf_counter() - start)


def score_pair_calls(model: ImageReward, calls: Sequence[PairCall], pool: JudgePool | None = None) -> list[PairScores]:
    """The device half for calls batched together: per judge, one `score_pairs` over every decoded pair of
    every call that asked for it (ImageReward: all of them), split back per call."""
    label = primary().label
    out = [PairScores({label: []}) for _ in calls]
    wanted = list(dict.fromkeys(j for call in calls for j in call.judges))
    loaded, unavailable = split_judges(pool, wanted)
    for name in [label, *wanted]:
        members = [i for i, call in enumerate(calls) if name == label or name in call.judges]
        if name in unavailable:
            for i in members:
                out[i].results[name] = unavailable[name]
            continue
        judge = model if name == label else loaded[name]
        prompts, decoded, names, owner = [], [], [], []
        for i in members:
            call = calls[i]
            for k, slot in enumerate(call.slots):
                if slot is None:
                    continue
                pixels = call.pixels[judge.preprocessing][slot]
                if isinstance(pixels, ImageLoadError):
                    continue
                prompts.append(call.prompts[k])
                decoded.append(pixels)
                names.append(call.names[k])
                owner.append((i, slot))
        results = judge.score_pairs(prompts, decoded, names) if decoded else []
        key = judge.spec.label
        for i in members:
            out[i].results[key] = [None] * len(calls[i].pixels.get(judge.preprocessing, []))  # type: ignore[list-item]
        for (i, slot), result in zip(owner, results):
            out[i].results[key][slot] = result  # type: ignore[index]
    return out


def pair_answer(
    call: PairCall, scores: PairScores, model_name: str, label: str, seconds: float, batched: int = 1
) -> dict[str, Any]:
    """A call's answer: `{"rows": [one per pair, in order], "model", "seconds", "batched", "judges"}` (see the
    module doc; `batched`: the calls scored in the same device call); `{"error": sentence, "rows": []}` for a
    call refused whole."""
    if call.problem is not None:
        return {"error": call.problem, "rows": [], "model": label}
    main = primary().label
    others = [j for j in scores.results if j != main]
    rows = []
    for k, slot in enumerate(call.slots):
        prompt, name = call.prompts[k], call.names[k]
        if slot is None:
            rows.append(pair_row(prompt, name, model_name, None, None, {j: None for j in others}, call.errors[k]))
            continue
        first = _result(scores.results[main], slot)
        pixels = call.pixels[next(iter(call.pixels))][slot]
        if isinstance(pixels, ImageLoadError):
            error = pixels.reason
        elif isinstance(first, Scored):
            error = None
        else:
            error = getattr(first, "reason", "it could not be scored")
        values = {}
        for judge in others:
            value = _result(scores.results[judge], slot)
            values[judge] = value.score if isinstance(value, Scored) else None
        scored = first if isinstance(first, Scored) and error is None else None
        rows.append(
            pair_row(
                prompt,
                name,
                model_name,
                scored.score if scored else None,
                scored.precision if scored else None,
                values,
                error,
            )
        )
    answer: dict[str, Any] = {"rows": rows, "model": label, "seconds": round(seconds, 4), "batched": batched}
    if others:
        answer["judges"] = [main, *others]
        answer["unavailable"] = {j: r for j, r in scores.results.items() if isinstance(r, str)}
    return answer


def _result(results: list[Result] | str, slot: int) -> Result | None:
    return None if isinstance(results, str) else results[slot]


def pairs_duration(calls: Sequence[PairCall]) -> int:
    """Seconds to ask ZeroGPU for: a base, and a little per decoded pair."""
    return 15 + sum(len(call.slots) for call in calls) // 8
