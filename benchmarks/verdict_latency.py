"""How long the server takes to record a person's verdict and redraw the agreement, with many visitors at once:
the page's own handler (`Page.verdict`: the checks, hashing the two images, the store's commit when one is kept,
the agreement over the visitor's verdicts, the next pair), timed server-side.

    python benchmarks/verdict_latency.py [--visitors 64] [--each 20]

64 visitors (threads, as Gradio runs handlers) each give 20 verdicts on their own ranking of three of the
examples' images, each sending back the verdicts so far (as the browser does). Paced: each visitor looks at the
new pair for a while between verdicts (exponential, mean `--think` seconds, 1 by default: three times the pace
of "twenty verdicts in a minute"); stressed: no pause at all, all 64 at once (the service time shows as
throughput, and the latency is then mostly waiting for the others). Each with the store (`IMAGEREWARD_VERDICTS_DB`,
a SQLite file in a temporary folder: every verdict fsynced before it is acknowledged) and without. The model is
the tiny test model: a verdict scores nothing, so the model's size does not enter. Writes
benchmarks/runs/verdict_latency.json with the CPU named.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402


def run(visitors: int, each: int, store: bool, think: float) -> dict[str, float]:
    from imagereward.app.page import Page
    from imagereward.app.settings import Settings, load_for_serving

    folder = Path(tempfile.mkdtemp())
    examples = sorted((ROOT / "examples" / "images").iterdir())[:3]
    db = str(folder / "verdicts.db") if store else None
    # one process, no requests: every visitor counts as one, so the hourly share is lifted for the run
    settings = Settings(
        model=str(ROOT / "tests/fixtures/parity"), device="cpu", judges=(), verdicts_db=db, verdicts_per_hour=10**6
    )
    page = Page(settings, [str(ROOT / "examples")], folder, load_for_serving(settings))
    shown = page.score("a photograph", [(str(p), None) for p in examples])
    gallery, table, prompt = shown[3], shown[4], shown[8]
    import pandas as pd

    frame = pd.DataFrame(table["data"], columns=table["headers"])
    names = [str(r[1]) for r in table["data"]]
    times: list[float] = []
    lock = threading.Lock()

    def visitor(k: int) -> None:
        given: list = []
        pause = random.Random(k)
        for n in range(each):
            if think:
                time.sleep(pause.expovariate(1 / think))
            a, b = names[n % 3], names[(n + 1) % 3]
            start = time.perf_counter()
            out = page.verdict("ab"[n % 2], given, gallery, frame, prompt, a, b)
            took = time.perf_counter() - start
            given = out[0]
            with lock:
                times.append(took)

    threads = [threading.Thread(target=visitor, args=(k,)) for k in range(visitors)]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall
    page.close()
    times.sort()
    return {
        "verdicts": len(times),
        "p50_ms": 1000 * statistics.median(times),
        "p95_ms": 1000 * times[int(0.95 * (len(times) - 1))],
        "max_ms": 1000 * times[-1],
        "verdicts_per_s": len(times) / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=64)
    parser.add_argument("--each", type=int, default=20)
    parser.add_argument("--think", type=float, default=1.0, help="mean seconds between a visitor's verdicts")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "runs" / "verdict_latency.json"))
    args = parser.parse_args()
    result = {
        "machine": describe(peaks=False),
        "visitors": args.visitors,
        "each": args.each,
        "think_s": args.think,
        "paced_with_store": run(args.visitors, args.each, True, args.think),
        "paced_without_store": run(args.visitors, args.each, False, args.think),
        "stressed_with_store": run(args.visitors, args.each, True, 0.0),
        "stressed_without_store": run(args.visitors, args.each, False, 0.0),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(result["machine"]["cpu_model"])
    for kind in ("paced_with_store", "paced_without_store", "stressed_with_store", "stressed_without_store"):
        r = result[kind]
        print(
            f"{kind}: {r['verdicts']} verdicts, p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, "
            f"max {r['max_ms']:.1f} ms, {r['verdicts_per_s']:.0f} verdicts/s"
        )


if __name__ == "__main__":
    main()
