"""What Gradio's batching buys a pipeline: `/score_pairs` from 16 concurrent clients x 4 pairs, against the same
calls one at a time, on the real app (`python app.py`, started here on 127.0.0.1).

    python benchmarks/bench_pairs.py                         # full-size model (random weights), CPU
    python benchmarks/bench_pairs.py --model tests/fixtures/parity --repeat 1   # quick, the tiny model

Each call is 4 (prompt, image) pairs, each image with its own prompt, uploaded with gradio_client's
`handle_file` as a pipeline would. Every image of every run is a different picture (a fixture image with a
mark of its own in the middle), so that the app's embedding cache never serves one. Reports the wall time of
each phase, pairs per second, the ratio, how many calls each device call scored (each answer's `batched`), and
the machine (CPU model, cores, torch). Writes benchmarks/runs/pairs.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from bench import PARITY, ROOT, make_checkpoint  # noqa: E402
from machine import describe  # noqa: E402

from appserver import running_app  # noqa: E402

CLIENTS, PAIRS = 16, 4


def marked_images(folder: Path, count: int, start: int) -> list[str]:
    """`count` distinct pictures: fixture images, each with an 8 x 8 mark of its own colour in the middle."""
    from PIL import Image, ImageDraw

    fixtures = sorted((PARITY / "images").iterdir())
    fixtures = [f for f in fixtures if "tiny" not in f.name]  # the 7 x 5 image has no middle to mark
    paths = []
    for i in range(start, start + count):
        with Image.open(fixtures[i % len(fixtures)]) as image:
            picture = image.convert("RGB")
        w, h = picture.size
        colour = ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)
        ImageDraw.Draw(picture).rectangle([w // 2 - 4, h // 2 - 4, w // 2 + 4, h // 2 + 4], fill=colour)
        path = folder / f"{i:04d}.png"
        picture.save(path)
        paths.append(str(path))
    return paths


def prompts_for(count: int, start: int) -> list[str]:
    subjects = ["a red fox", "a lighthouse", "a bowl of ramen", "a city at night", "an old tree", "a sailboat"]
    styles = ["oil painting", "photograph, 35mm", "watercolor", "digital art, detailed"]
    return [
        f"{subjects[i % len(subjects)]}, {styles[(i // 3) % len(styles)]}, number {i}"
        for i in range(start, start + count)
    ]


def one_phase(client, folder: Path, start: int, parallel: bool) -> dict:
    from gradio_client import handle_file

    images = marked_images(folder, CLIENTS * PAIRS, start)
    prompts = prompts_for(CLIENTS * PAIRS, start)
    calls = [
        (prompts[k * PAIRS : (k + 1) * PAIRS], [handle_file(p) for p in images[k * PAIRS : (k + 1) * PAIRS]])
        for k in range(CLIENTS)
    ]

    def send(call):
        return client.predict(call[0], call[1], [], api_name="/score_pairs")

    t = time.perf_counter()
    if parallel:
        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = list(pool.map(send, calls))
    else:
        answers = [send(call) for call in calls]
    seconds = time.perf_counter() - t
    errors = [r["error"] for a in answers for r in a["rows"] if r["error"]]
    assert not errors and all(len(a["rows"]) == PAIRS for a in answers), errors[:3]
    batched = sorted(a["batched"] for a in answers)
    return {
        "seconds": seconds,
        "pairs": CLIENTS * PAIRS,
        "pairs_per_second": CLIENTS * PAIRS / seconds,
        "calls_per_device_call": batched,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a model folder (default: the full-size benchmark checkpoint)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "runs" / "pairs.json"))
    args = ap.parse_args()
    from gradio_client import Client

    model = args.model or str(make_checkpoint(Path.home() / ".cache" / "imagereward-bench"))
    machine = describe(peaks=False)
    env = {"IMAGEREWARD_MODEL": model, "IMAGEREWARD_JUDGES": "none", "IMAGEREWARD_DEVICE": "cpu"}
    if args.dtype:
        env["IMAGEREWARD_DTYPE"] = args.dtype
    results: dict[str, list[dict]] = {"one_at_a_time": [], "concurrent": []}
    with tempfile.TemporaryDirectory() as tmp, running_app(Path(tmp), **env) as url:
        folder = Path(tmp) / "images"
        folder.mkdir()
        client = Client(url, verbose=False)
        one_phase(client, folder, 10_000, parallel=True)  # warm-up: threads, allocator, first batches
        start = 0
        for _ in range(args.repeat):
            for phase, parallel in (("one_at_a_time", False), ("concurrent", True)):
                print(f"{phase} …", file=sys.stderr)
                results[phase].append(one_phase(client, folder, start, parallel))
                start += CLIENTS * PAIRS
    best = {phase: max(runs, key=lambda r: r["pairs_per_second"]) for phase, runs in results.items()}
    ratio = best["concurrent"]["pairs_per_second"] / best["one_at_a_time"]["pairs_per_second"]
    report = {
        "machine": machine,
        "model": Path(model).name,
        "dtype": args.dtype or "fp32",
        "clients": CLIENTS,
        "pairs_per_call": PAIRS,
        "runs": results,
        "best": best,
        "throughput_ratio": ratio,
    }
    print(
        f"\n{machine['cpu_model']}, {machine['cores']} cores, torch {machine['torch']}; model {report['model']} "
        f"({report['dtype']}); {CLIENTS} calls x {PAIRS} pairs, best of {args.repeat}:\n"
        f"  one at a time: {best['one_at_a_time']['seconds']:.2f} s, {best['one_at_a_time']['pairs_per_second']:.2f} pairs/s\n"
        f"  concurrent:    {best['concurrent']['seconds']:.2f} s, {best['concurrent']['pairs_per_second']:.2f} pairs/s; "
        f"calls per device call {best['concurrent']['calls_per_device_call']}\n"
        f"  throughput ratio {ratio:.2f}x"
    )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
