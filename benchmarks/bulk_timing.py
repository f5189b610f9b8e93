"""Where a bulk run's time goes: when each decoding task and each model-actor call ran, read back as a report.

    with timed(bulk, work_dir) as timeline:
        bulk.bulk_score(...)
    report = timeline.report()

`timed` swaps `imagereward.bulk`'s decoding function and model actor for wrappers that append one line per
decoding task / actor start / actor call to files in `work_dir` (wall-clock times, so that every process's lines
compare), and puts them back afterwards. Ray ships the wrappers to its workers by value: nothing of this folder
needs to be importable there. The cost is one short file append per task or call.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator


def timed_decode(batch: dict, preprocessings: list[str], log: str, decode: Callable) -> dict:
    start = time.time()
    out = decode(batch, preprocessings)
    with open(log, "a") as f:
        f.write(f"{start} {time.time()} {os.getpid()} {len(batch['id'])}\n")
    return out


def timed_actor(base: type, log: str) -> type:
    """`base` (a bulk model actor class) logging its construction and each call's start, end and rows."""

    class Timed(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any) -> None:
            start = time.time()
            super().__init__(*args)
            with open(log, "a") as f:
                f.write(f"init {start} {time.time()} 0\n")

        def __call__(self, batch: dict) -> dict:
            start = time.time()
            out = super().__call__(batch)
            with open(log, "a") as f:
                f.write(f"call {start} {time.time()} {len(batch['id'])}\n")
            return out

    Timed.__name__ = Timed.__qualname__ = base.__name__  # Ray Data names the operator after it
    return Timed


@dataclass
class Timeline:
    folder: Path
    began: float = field(default_factory=time.time)
    ended: float = 0.0

    def report(self) -> dict[str, Any]:
        """Decoding: tasks, peak and mean concurrency, images/s from the first start to the last end, when the
        first started and the last ended relative to the run. The actor(s): when construction began and ended,
        calls, rows, seconds busy, rows per busy second (the model side's own rate), the first call's seconds."""
        tasks = [line.split() for line in _lines(self.folder / "decode.log")]
        spans = [(float(start), float(end)) for start, end, *_ in tasks]
        actor = [line.split() for line in _lines(self.folder / "actor.log")]
        report: dict[str, Any] = {"decode": concurrency(spans)}  # type: ignore[arg-type]
        if spans:
            report["decode"]["first_start_after_s"] = min(s for s, _ in spans) - self.began
            report["decode"]["last_end_before_end_s"] = self.ended - max(e for _, e in spans)
        inits = [(float(a), float(b)) for kind, a, b, _ in actor if kind == "init"]
        calls = sorted((float(a), float(b), int(n)) for kind, a, b, n in actor if kind == "call")
        if inits and calls:
            busy = sum(b - a for a, b, _ in calls)
            report["actor"] = {
                "actors": len(inits),
                "construction_began_after_s": min(a for a, _ in inits) - self.began,
                "ready_after_s": max(b for _, b in inits) - self.began,
                "construction_s": max(b - a for a, b in inits),
                "calls": len(calls),
                "rows": sum(n for *_, n in calls),
                "busy_s": busy,
                "rows_per_busy_s": sum(n for *_, n in calls) / busy if busy else None,
                "first_call_s": calls[0][1] - calls[0][0],
                "last_call_end_before_end_s": self.ended - max(b for _, b, _ in calls),
            }
            ready = max(b for _, b in inits)
            report["decode"]["rows_decoded_before_actor_ready"] = sum(
                int(rows) for _, end, _, rows in tasks if float(end) <= ready
            )
        return report


def steady_rate(arrivals: list[tuple[float, int]], wall: float) -> float | None:
    """Images/s read off result batches' arrivals `(time, rows written so far)`: the rows after the first batch
    over the time since (start-up and the first batch's latency left out, as a steady rate leaves out load and
    warm-up). None unless the batches arrived spread over at least a fifth of the run's `wall` seconds: Ray may
    hand a small run's results over at once."""
    if len(arrivals) < 3:
        return None
    (t0, rows0), (t1, rows1) = arrivals[0], arrivals[-1]
    return (rows1 - rows0) / (t1 - t0) if t1 - t0 >= 0.2 * wall else None


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def concurrency(spans: list[tuple[float, float]]) -> dict[str, Any]:
    """Peak and mean (while any ran) number of spans running at once, and the first start to the last end."""
    if not spans:
        return {"tasks": 0}
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    busy = weighted = 0.0
    last = events[0][0]
    for t, step in events:
        if running:
            busy += t - last
            weighted += running * (t - last)
        running += step
        peak = max(peak, running)
        last = t
    return {
        "tasks": len(spans),
        "peak": peak,
        "mean_while_decoding": weighted / busy if busy else 0.0,
        "first_start_to_last_end_s": max(e for _, e in spans) - min(s for s, _ in spans),
    }


@contextmanager
def timed(bulk: ModuleType, folder: Path, actor: type | None = None) -> Iterator[Timeline]:
    """Times `bulk`'s decoding tasks and model actor (`actor`, default `bulk.ScoreActor`) while inside."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(__import__(__name__))
    folder.mkdir(parents=True, exist_ok=True)
    decode, score_actor = bulk.decode_batch, bulk.ScoreActor
    bulk.decode_batch = partial(timed_decode, log=str(folder / "decode.log"), decode=decode)
    bulk.ScoreActor = timed_actor(actor or score_actor, str(folder / "actor.log"))
    timeline = Timeline(folder)
    try:
        yield timeline
    finally:
        timeline.ended = time.time()
        bulk.decode_batch, bulk.ScoreActor = decode, score_actor
