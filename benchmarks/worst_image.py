"""What one image can cost the server at most: decoding and preprocessing time and peak memory of the worst
images the limits admit, and of the extreme shape the resize bound refuses, each in a fresh process.

    python benchmarks/worst_image.py [--json out.json]

The worst admitted images: the pixel limit (`images.MAX_IMAGE_PIXELS`) at the aspect-ratio bound
(`images.MAX_RESIZE_FACTOR`, 64:1), and a square at the pixel limit, as PNGs that fit the page's 20 MB upload
limit; each preprocessed by the three preprocessings (ImageReward's resize-crop, PickScore's, HPSv2.1's
letterbox). The extreme shape is the 100,000 x 5 PNG that issue 21 measured: its cost without the bound
(`images.to_pixels` called directly, as before) and with it (refused from its header).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _make(path: Path, width: int, height: int) -> None:
    """A structured RGB PNG (a gradient with a pattern: a few hundred kB however many pixels)."""
    import numpy as np
    from PIL import Image

    x = (np.arange(width, dtype=np.uint32) % 251).astype(np.uint8)
    row = np.stack([x, x[::-1], x * 3], axis=-1)  # uint8 wraps
    rows = []
    for start in range(0, height, 256):
        block = np.repeat(row[None], min(256, height - start), axis=0)
        block[:, :, 2] ^= (np.arange(start, start + block.shape[0]) % 256).astype(np.uint8)[:, None]
        rows.append(block)
    Image.fromarray(np.concatenate(rows)).save(path, compress_level=6)


def _child(path: str, kind: str, bounded: bool) -> None:
    """In a fresh process: one image through one preprocessing; prints time, peak memory and the outcome."""
    from imagereward.errors import ImageLoadError
    from imagereward.images import reading as images
    from imagereward.images.transforms import Preprocessing

    base = _rss_mb("VmRSS")
    start = time.perf_counter()
    try:
        if bounded:
            Preprocessing(kind, 224).load(path, Path(path).name)
        else:
            with images.open_image(path, Path(path).name) as opened:
                images.to_pixels(opened)
        outcome = "preprocessed"
    except ImageLoadError as e:
        outcome = f"refused: {e.reason}"
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_mb": _rss_mb("VmHWM") - base, "outcome": outcome}))


def measure(path: Path, kind: str, bounded: bool = True) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(path), kind, "1" if bounded else "0"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], args.child[2] == "1")
        return
    from imagereward.images.reading import MAX_IMAGE_PIXELS, MAX_RESIZE_FACTOR

    height = math.isqrt(MAX_IMAGE_PIXELS // MAX_RESIZE_FACTOR)
    wide = (MAX_RESIZE_FACTOR * height, height)
    side = math.isqrt(MAX_IMAGE_PIXELS)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("extreme", (100_000, 5)), ("wide", wide), ("square", (side, side))]
        for label, (w, h) in cases:
            path = Path(tmp) / f"{label}_{w}x{h}.png"
            _make(path, w, h)
            size_mb = path.stat().st_size / 2**20
            runs = [("resize-crop", True)]
            if label == "extreme":
                runs.insert(0, ("resize-crop", False))
            else:
                runs += [("rgb-resize-crop", True), ("letterbox", True)]
            for kind, bounded in runs:
                result = {
                    "image": f"{w}x{h}",
                    "file_mb": round(size_mb, 2),
                    "preprocessing": kind,
                    "bounded": bounded,
                    **measure(path, kind, bounded),
                }
                results.append(result)
                print(
                    f"{result['image']:>12} {size_mb:6.2f} MB  {kind:16} {'bound' if bounded else 'no bound':8} "
                    f"{result['seconds']:7.2f} s  {result['peak_mb']:8.0f} MB  {result['outcome'][:60]}",
                    flush=True,
                )
    report = {"cpu": platform.processor() or platform.machine(), "results": results}
    try:
        report["cpu"] = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
