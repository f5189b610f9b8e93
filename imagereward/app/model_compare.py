"""A "Compare models" request's steps: a zip of generations (`generations_zip`) becomes (prompt, image) pair calls
that the device scores as `/score_pairs` calls are scored (one device call, every judge on each decoded image),
then the benchmark's tables, its summary (win rates and intervals over prompts, rankings) and its report: the
same as `imagereward benchmark` makes, shown on the page and offered as files. The generations written out are
removed once the report is made; the report keeps its thumbnails inside itself.
"""

from __future__ import annotations

import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..benchmark import Benchmark, summarize, write_summary
from ..benchmark.report import render, render_fragment
from ..benchmark.table import from_arrays
from ..images.decoding import Decoder
from ..judges import primary, spec
from ..judges.base import Scored
from .generations_zip import ZipGenerations, read_zip
from .judge_pool import JudgePool
from .pairs import PairCall, PairScores, prepare_pairs
from .remote import Receiver
from .settings import Settings

BOOTSTRAP = 1000  # draws, as the command line's default
GENERATIONS = "generations"


@dataclass
class Comparison:
    """A zip read and its pairs checked and decoded, ready for the device."""

    found: ZipGenerations
    calls: list[PairCall]  # call c holds generations [c * step, (c + 1) * step)
    step: int
    folder: Path
    seconds: float


@dataclass
class Compared:
    """What the page shows of a comparison: a status line, the report, and the files to take away."""

    status: str
    html: str
    files: list[str]


def prepare_comparison(
    zip_path: str,
    folder: Path,
    model,  # noqa: ANN001 - the loaded ImageReward
    judges: Sequence[str],
    settings: Settings,
    receiver: Receiver,
    pool: JudgePool | None,
    decoder: Decoder | None,
) -> Comparison:
    """The zip's generations written into `folder/generations` and decoded as pair calls of at most
    `settings.max_images` each (each within the page's pixel budget).

    Raises:
        InputError: the zip cannot be taken (the sentence says why and what to do).
    """
    start = time.perf_counter()
    images = folder / GENERATIONS
    images.mkdir(parents=True, exist_ok=True)
    found = read_zip(zip_path, images, settings.compare_images)
    text = {p.id: p.prompt for p in found.prompts}
    calls = []
    step = settings.max_images
    for s in range(0, len(found.generations), step):
        part = found.generations[s : s + step]
        prompts = [text[g.prompt_id] for g in part]
        paths = [str(g.path) for g in part]
        calls.append(prepare_pairs(model, prompts, paths, [str(images)], settings, receiver, judges, pool, decoder))
    return Comparison(found, calls, step, folder, time.perf_counter() - start)


def finish_comparison(comparison: Comparison, scores: Sequence[PairScores]) -> Compared:
    """The tables from the device's scores, the summary, the report (page and file) and the files."""
    found = comparison.found
    models = found.models
    ids = list(dict.fromkeys(g.prompt_id for g in found.generations))
    order = {p.id: n for n, p in enumerate(found.prompts)}
    ids.sort(key=order.__getitem__)
    prompts = [found.prompts[order[i]] for i in ids]
    depth = max(g.k for g in found.generations) + 1
    place = {(g.model, g.prompt_id, g.k): n for n, g in enumerate(found.generations)}
    model_row, prompt_row = {m: k for k, m in enumerate(models)}, {i: k for k, i in enumerate(ids)}
    found_at = np.zeros((len(models), len(prompts), depth), dtype=bool)
    for g in found.generations:
        found_at[model_row[g.model], prompt_row[g.prompt_id], g.k] = True
    labels = list(dict.fromkeys(label for scored in scores for label in scored.results))
    results: dict[str, list] = {label: [None] * len(found.generations) for label in labels}
    for c, (call, scored) in enumerate(zip(comparison.calls, scores)):
        first = c * comparison.step
        for label in labels:
            per_slot = scored.results.get(label, call.problem or "not scored")
            for k in range(min(comparison.step, len(found.generations) - first)):
                slot = call.slots[k] if k < len(call.slots) else None
                if isinstance(per_slot, str):
                    results[label][first + k] = per_slot
                elif slot is None:
                    results[label][first + k] = call.errors.get(k, call.problem or "not read")
                else:
                    results[label][first + k] = per_slot[slot]
    tables = {}
    unavailable = []
    for label, per_generation in results.items():
        name = primary().name if label == primary().label else spec(label).name
        if all(isinstance(r, str) for r in per_generation) and len(set(per_generation)) == 1 and per_generation:
            unavailable.append(f"{label}: {per_generation[0]}")
            continue
        data = np.full(found_at.shape, np.nan)
        errors: dict[tuple[int, int], list[str]] = {}
        for (model, prompt_id, k), n in place.items():
            m, p = model_row[model], prompt_row[prompt_id]
            result = per_generation[n]
            if isinstance(result, Scored):
                data[m, p, k] = result.score
            else:
                reason = result if isinstance(result, str) else getattr(result, "reason", "not scored")
                errors.setdefault((m, p), []).append(f"{prompt_id}_{k}: {reason}")
        tables[name] = from_arrays(name, models, prompts, data, found_at, errors)
    bench = Benchmark(prompts, models, tables)
    summary = summarize(bench, BOOTSTRAP, 0)
    folder = comparison.folder
    written = write_summary(bench, folder, summary)
    images = folder / GENERATIONS
    (folder / "report.html").write_text(render(bench, summary, images), encoding="utf-8")
    html = render_fragment(bench, summary, images)
    results_zip = folder / "original-result-files.zip"
    with zipfile.ZipFile(results_zip, "w", zipfile.ZIP_DEFLATED) as z:
        for path in written[: len(tables)]:
            z.write(path, path.name)
        for name in tables:
            for path in sorted((folder / name).iterdir()):
                z.write(path, f"{name}/{path.name}")
    shutil.rmtree(images, ignore_errors=True)
    for name in tables:
        shutil.rmtree(folder / name, ignore_errors=True)
    for path in written[: len(tables)]:
        path.unlink(missing_ok=True)
    files = [folder / "report.html", folder / "summary.json", folder / "summary.md", results_zip]
    status = _status(found, bench, unavailable)
    return Compared(status, html, [str(f) for f in files])


def _status(found: ZipGenerations, bench: Benchmark, unavailable: list[str]) -> str:
    lines = [
        f"**{len(bench.models)} models, {len(bench.prompts)} prompts, {len(found.generations)} generations** "
        f"compared by {', '.join(bench.tables)}. The report below; take it away as a file with the summary."
    ]
    if found.left_out:
        shown = ", ".join(found.left_out[:5]) + (" …" if len(found.left_out) > 5 else "")
        lines.append(f"Left out of the zip ({len(found.left_out)}): {shown}")
    for line in unavailable:
        lines.append(f"Not judged: {line}")
    return "\n\n".join(lines)
