"""How fast `imagereward benchmark --from-scores` summarises bulk's Parquet output, and in how much memory.

    python benchmarks/benchmark_summary.py [--rows 1000000 10000000] [--judges 1]

Synthetic scores in bulk's one result schema (`id`, `prompt`, `image` = `gens/<model>/<id>_<k>.png`, `score`,
`score_<judge>`, `precision`, `model`, `error`; written by a streaming Parquet writer in 64k-row groups): 10
models x 10 generations x rows / 100 prompts, a few rows in a thousand with an error. Each size is summarised
in a fresh process (`read_bulk_scores`, then `summarize` with 1000 bootstrap draws, then the original's result
files, summary.json and report.html), timing each phase; the peak memory is the process's maximum resident set
(`ru_maxrss`), beside the resident set after the imports (torch, which the judges' records import) and the
bytes of the scores themselves (8 per score). Writes
benchmarks/runs/benchmark_summary.json with the CPU named.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402

MODELS = 10
PER_PROMPT = 10
GROUP = 1 << 16


def write_scores(path: Path, rows: int, judges: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    prompts = rows // (MODELS * PER_PROMPT)
    rng = np.random.default_rng(0)
    skill = rng.normal(0, 0.3, MODELS)
    columns = ["score", *[f"score_J{j}" for j in range(1, judges)]]
    schema = pa.schema(
        {
            "id": pa.string(),
            "prompt": pa.string(),
            "image": pa.string(),
            **{c: pa.float64() for c in columns},
            "precision": pa.string(),
            "model": pa.string(),
            "error": pa.string(),
        }
    )
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, GROUP):
            n = np.arange(start, min(rows, start + GROUP))
            model = n // (prompts * PER_PROMPT)
            prompt = (n // PER_PROMPT) % prompts
            k = n % PER_PROMPT
            names = [f"m{m:02d}/{p:07d}_{g}" for m, p, g in zip(model, prompt, k)]
            difficulty = np.sin(prompt * 0.7)
            data = {
                "id": names,
                "prompt": [f"prompt number {p}" for p in prompt],
                "image": [f"gens/{x}.png" for x in names],
            }
            for c in columns:
                data[c] = skill[model] + difficulty + rng.normal(0, 1, n.size)
            error = np.where(rng.random(n.size) < 0.002, "unreadable: synthetic", None)
            data["precision"] = ["float32"] * n.size
            data["model"] = ["ImageReward-v1.0"] * n.size
            data["error"] = error.tolist()
            for c in columns:
                data[c][error != None] = np.nan  # noqa: E711 - numpy's elementwise comparison
            writer.write_table(pa.table(data, schema=schema), row_group_size=GROUP)


def summarise(path: str, out: str) -> dict[str, float]:
    """In this process: read, summarise, write; the phases' seconds and the peak resident set, and the resident
    set before reading (the imports: the judges' records import torch)."""
    t = time.perf_counter()
    from imagereward.benchmark import Benchmark, summarize, write_summary
    from imagereward.benchmark.bulk_scores import read_bulk_scores
    from imagereward.benchmark.report import write_report
    from imagereward.judges import specs

    specs()
    imports = time.perf_counter() - t
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    found = read_bulk_scores([path])
    t1 = time.perf_counter()
    first = next(iter(found.tables.values()))
    bench = Benchmark(first.prompts, first.models, found.tables)
    summary = summarize(bench, 1000, 0)
    t2 = time.perf_counter()
    write_summary(bench, out, summary)
    write_report(bench, summary, out)
    t3 = time.perf_counter()
    score_bytes = sum(t.rewards.nbytes for t in found.tables.values())
    return {
        "rows": found.rows,
        "imports_s": imports,
        "rss_after_imports_mb": before,
        "read_s": t1 - t0,
        "summarize_s": t2 - t1,
        "write_s": t3 - t2,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "score_arrays_mb": score_bytes / 2**20,
        "prompts": len(first.prompts),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--judges", type=int, default=1)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(summarise(*args.child)))
        return
    results = []
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "scores.parquet"
            t = time.perf_counter()
            write_scores(path, rows, args.judges)
            made = time.perf_counter() - t
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(path), str(Path(folder) / "out")],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result.update(
                judges=args.judges,
                parquet_mb=path.stat().st_size / 2**20,
                write_synthetic_s=made,
                rows_per_s=rows / (result["read_s"] + result["summarize_s"]),
            )
            print(json.dumps(result), flush=True)
            results.append(result)
    out = ROOT / "benchmarks" / "runs" / "benchmark_summary.json"
    out.write_text(json.dumps({"machine": describe(peaks=False), "runs": results}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
