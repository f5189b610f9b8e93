"""Benchmarking generative models with the judges: the original's `test-benchmark.py`, exact (its figures and
its result files), and what it lacks: win rates between models with 95% intervals (bootstrap over prompts),
each judge's ranking and where judges disagree, and the correlation with a human ranking.

`imagereward benchmark` runs it; `run_benchmark` is the same from Python.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .layout import Generations, Prompt, find_generations, load_prompts, models_in
from .scores import ModelScores, markdown_table, score_model, write_original_results
from .stats import WinRate, disagreements, ranking, score_interval, spearman, win_rate

__all__ = [
    "Benchmark",
    "Generations",
    "ModelScores",
    "Prompt",
    "WinRate",
    "find_generations",
    "load_prompts",
    "models_in",
    "original_dtype",
    "run_benchmark",
    "summarize",
]


# The precision the original's `test-benchmark.py` runs each judge in, on every device: ImageReward and BLIP
# in float32 (`RM.load` and `load_score` keep the weights' float32), CLIP and Aesthetic's CLIP tower in float16
# (`clip.load` keeps OpenAI's float16 weights on a GPU, and on the CPU too: the script passes
# `torch.device("cpu")`, which the baselines' `device == "cpu"` does not match).
ORIGINAL_DTYPES = {"BLIP": "fp32", "CLIP": "fp16", "Aesthetic": "fp16"}


def original_dtype(judge: str) -> str | None:
    """The precision the original's benchmark runs `judge` in (ImageReward: float32), or None for the judges
    it does not run (their default then)."""
    from ..judges import spec

    try:
        found = spec(judge)
    except ValueError:
        return None
    return "fp32" if found.primary else ORIGINAL_DTYPES.get(found.name)


@dataclass
class Benchmark:
    """A benchmark's results: per judge, each model's scores (`ModelScores`), and the summary (`summarize`)."""

    prompts: list[Prompt]
    models: list[str]
    results: dict[str, list[ModelScores]] = field(default_factory=dict)  # judge -> one per model, in `models` order


def run_benchmark(
    images_dir: str | Path,
    judges: Sequence[tuple[str, Any]],
    prompts: Sequence[Prompt],
    models: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Benchmark:
    """Every model's generations scored by every judge (`judges`: (name, loaded judge)); `models` default every
    folder of `images_dir`."""
    models = list(models) if models else models_in(images_dir)
    generations = [find_generations(images_dir, m, prompts) for m in models]
    bench = Benchmark(list(prompts), models)
    for name, judge in judges:
        bench.results[name] = [score_model(judge, name, prompts, g, progress) for g in generations]
    return bench


def summarize(
    bench: Benchmark, samples: int = 1000, seed: int = 0, human: Sequence[str] | None = None
) -> dict[str, Any]:
    """The benchmark as JSON: per judge, each model's score, its 95% interval, the prompts it covers and what
    is missing or unreadable; every pair's win rates with their intervals; each judge's ranking, where judges
    disagree, and Spearman's correlation with `human` (a ranking of the models, best first) when given."""
    judges: dict[str, Any] = {}
    rankings = {}
    for name, results in bench.results.items():
        rankings[name] = ranking(results)
        judges[name] = {
            "models": {
                r.model: {
                    "score": r.score,
                    "interval": list(score_interval(r, samples, seed)),
                    "prompts_covered": len(r.covered),
                    "missing": r.missing,
                    "unreadable": r.unreadable,
                }
                for r in results
            },
            "ranking": rankings[name],
            "win_rates": [
                {
                    "a": w.a,
                    "b": w.b,
                    "prompt_win_rate": w.rate,
                    "interval": list(w.interval),
                    "wins": w.wins,
                    "losses": w.losses,
                    "ties": w.ties,
                    "generation_win_rate": w.generation_rate,
                    "generation_wins": w.generation_wins,
                    "generation_losses": w.generation_losses,
                    "generation_ties": w.generation_ties,
                }
                for a, b in _pairs(results)
                for w in [win_rate(a, b, samples, seed)]
            ],
        }
        if human:
            judges[name]["spearman_with_human"] = spearman(rankings[name], human)
    return {
        "prompts": len(bench.prompts),
        "models": bench.models,
        "bootstrap": {"samples": samples, "seed": seed, "over": "prompts"},
        "judges": judges,
        "disagreements": [{"judges": [j1, j2], "models": [a, b]} for j1, j2, a, b in disagreements(rankings)],
    }


def _pairs(results: Sequence[ModelScores]) -> list[tuple[ModelScores, ModelScores]]:
    return [(a, b) for i, a in enumerate(results) for b in results[i + 1 :]]


def write_summary(bench: Benchmark, output_dir: str | Path, summary: dict[str, Any]) -> list[Path]:
    """The original's result files per judge, `summary.json`, and `summary.md` (each judge's table, as the
    original prints it, with the intervals beside); returns the paths written."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = [write_original_results(output_dir, name, results) for name, results in bench.results.items()]
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    lines = []
    for name, results in bench.results.items():
        lines += [markdown_table(name, results), ""]
        models = summary["judges"][name]["models"]
        lines.append("| model | score | 95% interval | prompts |")
        lines.append("|---|---:|---|---:|")
        for r in results:
            low, high = models[r.model]["interval"]
            lines.append(f"| {r.model} | {r.score:.4f} | {low:.4f} – {high:.4f} | {len(r.covered)} |")
        lines.append("")
    (output_dir / "summary.md").write_text("\n".join(lines))
    return [*written, output_dir / "summary.json", output_dir / "summary.md"]
