"""Scoring a benchmark as the original's `test-benchmark.py` does, and writing its result files.

Per judge and model: each prompt's generations are scored, the prompt's `mean_score` is the mean of their
rewards, and the model's score is the mean over prompts of those means (`numpy.mean`, in float64, as the
original computes them). The original writes, under `--output-dir` (its `--result_dir`):
`<judge>-benchmark-results.json` (`{model: score}`) and `<judge>/<judge>-benchmark-<model>-result.json`
(`[{"id", "prompt", "mean_score", "rewards"}]`), both with `indent=4`; these are written alike, so existing
scripts keep reading them. A prompt with a missing or unreadable generation is left out of its model's figure
(the original stops there) and named, with the file and why, in `missing` and `unreadable`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..errors import ImageError
from .layout import Generations, Prompt

if TYPE_CHECKING:
    from .table import JudgeTable


@dataclass
class ModelScores:
    """One judge's scores of one model's generations."""

    judge: str
    model: str
    items: list[dict[str, Any]] = field(default_factory=list)  # the original's result rows, for covered prompts
    missing: dict[str, list[str]] = field(default_factory=dict)  # prompt id -> files not found
    unreadable: dict[str, list[str]] = field(default_factory=dict)  # prompt id -> "file: why"

    @property
    def covered(self) -> list[str]:
        """The prompt ids the model's figure covers (every generation scored)."""
        return [item["id"] for item in self.items]

    @property
    def score(self) -> float:
        """The mean over covered prompts of the mean over their generations (NaN when none is covered)."""
        return float(np.mean([item["mean_score"] for item in self.items])) if self.items else float("nan")

    @property
    def rewards(self) -> dict[str, list[float]]:
        """Each covered prompt's rewards, by id."""
        return {item["id"]: list(item["rewards"]) for item in self.items}


def score_model(
    judge: Any,
    judge_name: str,
    prompts: Sequence[Prompt],
    generations: Generations,
    progress: Callable[[int], None] | None = None,
) -> ModelScores:
    """One model's generations scored by one judge (see the module doc)."""
    out = ModelScores(judge_name, generations.model, missing=dict(generations.missing))
    for prompt in prompts:
        files = generations.files.get(prompt.id, [])
        if prompt.id in generations.missing or not files:
            continue
        rewards = judge.try_rewards(prompt.prompt, [str(f) for f in files], names=[f.name for f in files])
        if progress is not None:
            progress(len(files))
        errors = [r for r in rewards if isinstance(r, ImageError)]
        if errors:
            out.unreadable[prompt.id] = [f"{e.name}: {e.reason}" for e in errors]
            continue
        out.items.append(
            {"id": prompt.id, "prompt": prompt.prompt, "mean_score": float(np.mean(rewards)), "rewards": rewards}
        )
    return out


def write_original_results(output_dir: str | Path, table: JudgeTable) -> Path:
    """The original's result files for one judge (see the module doc), written as `json.dump(..., indent=4)`
    writes them, one prompt at a time (a benchmark of a million prompts is never one list in memory); returns
    the summary file's path."""
    output_dir = Path(output_dir)
    folder = output_dir / table.judge
    folder.mkdir(parents=True, exist_ok=True)
    for m, model in enumerate(table.models):
        with open(folder / f"{table.judge}-benchmark-{model}-result.json", "w") as f:
            first = True
            for p in np.flatnonzero(table.covered[m]):
                row = table.rewards[m, p]
                item = {
                    "id": table.prompts[p].id,
                    "prompt": table.prompts[p].prompt,
                    "mean_score": float(table.means[m, p]),
                    "rewards": row[~np.isnan(row)].tolist(),
                }
                text = json.dumps(item, indent=4, ensure_ascii=False).replace("\n", "\n    ")
                f.write(("[\n    " if first else ",\n    ") + text)
                first = False
            f.write("[]" if first else "\n]")
    summary = output_dir / f"{table.judge}-benchmark-results.json"
    with open(summary, "w") as f:
        json.dump(table.scores(), f, indent=4, ensure_ascii=False)
    return summary


def markdown_table(table: JudgeTable, digits: int = 4) -> str:
    """The original's printed table (`| Model | Score |`), one row per model."""
    width = max(len(m) for m in table.models)
    lines = [f"{table.judge} Benchmark Results:", f"|{'Model':^{width + 2}s}|{'Score':^{digits + 5}}|"]
    lines.append(f"|{'-' * (width + 1)}:|:{'-' * (digits + 3)}:|")
    lines += [f"| {m:>{width}s} | {s:^{digits + 3}.{digits}f} |" for m, s in table.scores().items()]
    return "\n".join(lines)
