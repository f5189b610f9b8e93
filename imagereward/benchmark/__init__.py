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

from .human_wins import HumanVerdicts
from .layout import Generations, Prompt, find_generations, load_prompts, models_in
from .original_files import markdown_table, write_original_results
from .scores import ModelScores, score_models
from .stats import WinRate, disagreements, ranking, score_interval, spearman, win_rate
from .table import JudgeTable, from_model_scores

__all__ = [
    "Benchmark",
    "Generations",
    "HumanVerdicts",
    "JudgeTable",
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


def original_dtype(judge: str) -> str | None:
    """The precision the original's benchmark runs `judge` in (its record's `benchmark_dtype`), or None for an
    unknown name or a judge the original does not benchmark (its default then)."""
    from ..judges import spec

    try:
        return spec(judge).benchmark_dtype
    except ValueError:
        return None


@dataclass
class Benchmark:
    """A benchmark's scores: per judge, the table of every model's generations (`JudgeTable`)."""

    prompts: list[Prompt]
    models: list[str]
    tables: dict[str, JudgeTable] = field(default_factory=dict)  # judge -> its table, models in `models` order


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
    for name, results in score_models(judges, prompts, generations, progress).items():
        bench.tables[name] = from_model_scores(name, list(prompts), results)
    return bench


def summarize(
    bench: Benchmark,
    samples: int = 1000,
    seed: int = 0,
    human: Sequence[str] | None = None,
    verdicts: HumanVerdicts | None = None,
) -> dict[str, Any]:
    """The benchmark as JSON: per judge, each model's score, its 95% interval, the prompts it covers and what
    is missing or unreadable; every pair's win rates with their intervals; each judge's ranking, where judges
    disagree, Spearman's correlation with `human` (a ranking of the models, best first) when given, and
    people's win rates from their verdicts on pairs (`human_wins.py`) when given."""
    judges: dict[str, Any] = {}
    rankings = {}
    for name, table in bench.tables.items():
        rankings[name] = ranking(table)
        judges[name] = {
            "models": {
                model: {
                    "score": table.score(model),
                    "interval": list(score_interval(table, model, samples, seed)),
                    "prompts_covered": table.prompts_covered(model),
                    "missing": table.missing[m],
                    "unreadable": table.unreadable[m],
                }
                for m, model in enumerate(table.models)
            },
            "ranking": rankings[name],
            "win_rates": [win_rate_json(win_rate(table, a, b, samples, seed)) for a, b in _pairs(table.models)],
        }
        if human:
            judges[name]["spearman_with_human"] = spearman(rankings[name], human)
    out = {
        "prompts": len(bench.prompts),
        "models": bench.models,
        "bootstrap": {"samples": samples, "seed": seed, "over": "prompts"},
        "judges": judges,
        "disagreements": [{"judges": [j1, j2], "models": [a, b]} for j1, j2, a, b in disagreements(rankings)],
    }
    if human:
        out["human_ranking"] = list(human)
    if verdicts is not None:
        out["human_verdicts"] = verdicts.as_json()
    return out


def win_rate_json(w: WinRate) -> dict[str, Any]:
    return {
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


def _pairs(models: Sequence[str]) -> list[tuple[str, str]]:
    return [(a, b) for i, a in enumerate(models) for b in models[i + 1 :]]


def write_summary(bench: Benchmark, output_dir: str | Path, summary: dict[str, Any]) -> list[Path]:
    """The original's result files per judge, `summary.json`, and `summary.md` (each judge's table, as the
    original prints it, with the intervals beside); returns the paths written."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = [write_original_results(output_dir, table) for table in bench.tables.values()]
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    (output_dir / "summary.md").write_text(summary_markdown(bench, summary))
    return [*written, output_dir / "summary.json", output_dir / "summary.md"]


def summary_markdown(bench: Benchmark, summary: dict[str, Any]) -> str:
    """Each judge's table as the original prints it, then the models with their intervals, for a paper."""
    lines = []
    for name, table in bench.tables.items():
        lines += [markdown_table(table), ""]
        models = summary["judges"][name]["models"]
        lines.append("| model | score | 95% interval | prompts |")
        lines.append("|---|---:|---|---:|")
        for model in table.models:
            low, high = models[model]["interval"]
            row = models[model]
            lines.append(f"| {model} | {row['score']:.4f} | {low:.4f} – {high:.4f} | {row['prompts_covered']} |")
        lines.append("")
    if "human_verdicts" in summary:
        lines += [
            "People's verdicts:",
            "",
            "| pair | people prefer the first | 95% interval | decided |",
            "|---|---:|---|---:|",
        ]
        for pair in summary["human_verdicts"]["pairs"]:
            rate, (low, high) = pair["win_rate"], pair["interval"]
            shown = f"{100 * rate:.1f}%" if rate is not None else "–"
            lines.append(
                f"| {pair['a']} over {pair['b']} | {shown} | {100 * low:.1f}% – {100 * high:.1f}% | {pair['decided']} |"
            )
        lines.append("")
    return "\n".join(lines)
