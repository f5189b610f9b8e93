"""The original's result files and printed table, from a judge's table.

The original writes, under `--output-dir` (its `--result_dir`): `<judge>-benchmark-results.json`
(`{model: score}`) and `<judge>/<judge>-benchmark-<model>-result.json` (`[{"id", "prompt", "mean_score",
"rewards"}]`, the covered prompts), both with `indent=4`; these are written alike, so existing scripts keep
reading them, and its table (`| Model | Score |`) printed alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .table import JudgeTable


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
