"""What one heavy call of the page costs in memory over the loaded model: the figure the app's one limit on
heavy work is sized by (`settings.HEAVY_CALL_BYTES`, `admission.heavy_calls`).

    python benchmarks/memory_per_call.py                          # full-size model (random weights), CPU
    python benchmarks/memory_per_call.py --model tests/fixtures/parity   # quick, the tiny model

Each kind runs in a fresh process: the page is built (model loaded, warmed up), its resident memory read
(VmRSS), one call made, and the peak (VmHWM) read after it:

- `score`: the page's ranking of 32 distinct images that together use the whole pixel budget (268 M decoded
  pixels, 2896 x 2896 each: what a hostile visitor can ask of one call);
- `explain`: one explanation of a 640 x 480 image (the words and the 14 x 14 map's backward passes).

Writes benchmarks/runs/memory_per_call.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import ROOT, make_checkpoint  # noqa: E402

PROMPT = "a red fox in the snow, golden hour, detailed fur, 35mm photograph"


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(field)


def images(folder: Path, count: int, side: int) -> list[str]:
    """`count` distinct smooth pictures (small JPEGs that decode to side x side)."""
    import numpy as np
    from PIL import Image

    paths = []
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    for k in range(count):
        rgb = np.stack(
            [np.add.outer(ramp, ramp * 0) % 256, np.add.outer(ramp * 0, ramp), np.full((side, side), 8.0 * k)], -1
        )
        paths.append(str(folder / f"{k}.jpg"))
        Image.fromarray(rgb.astype(np.uint8)).save(paths[-1], quality=90)
    return paths


def one_kind(kind: str, model: str) -> dict:
    """Runs in the child process: the page, one call of `kind`, the memory."""
    from imagereward.app.page import Page
    from imagereward.app.settings import DEFAULT_PIXEL_BUDGET, Settings

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = Settings(model=model, device="cpu", judges=())
        page = Page(settings, roots=[str(folder)], upload_folder=folder)
        if kind == "score":
            side = int((DEFAULT_PIXEL_BUDGET // 32) ** 0.5)
            paths = images(folder, 32, side)
        else:
            side, paths = 640, images(folder, 1, 640)
        before = status_mb("VmRSS")
        if kind == "score":
            rankings, _ = page.rank(PROMPT, paths, [])
            ranking = rankings[0][1]
            assert len(ranking.ranked) == 32, [f.reason for f in ranking.failures][:2]
        else:
            done, refused = page.explain(PROMPT, paths)
            assert done and not refused
        peak = status_mb("VmHWM")
    return {"kind": kind, "rss_before_mb": before, "peak_mb": peak, "added_mb": peak - before, "side": side}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a model folder (default: the full-size benchmark checkpoint)")
    ap.add_argument("--kind", choices=["score", "explain"], help=argparse.SUPPRESS)  # the child's
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "runs" / "memory_per_call.json"))
    args = ap.parse_args()
    model = args.model or str(make_checkpoint(Path.home() / ".cache" / "imagereward-bench"))
    if args.kind:
        print(json.dumps(one_kind(args.kind, model)))
        return
    from machine import describe

    runs = []
    for kind in ("score", "explain"):
        out = subprocess.run(
            [sys.executable, __file__, "--kind", kind, "--model", model], capture_output=True, text=True, check=True
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"{kind}: +{runs[-1]['added_mb']:,.0f} MB over {runs[-1]['rss_before_mb']:,.0f} MB", file=sys.stderr)
    report = {"machine": describe(peaks=False), "model": Path(model).name, "runs": runs}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
